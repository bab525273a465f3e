"""Accepted async events survive kill -9: every one runs at least once after a restart.

The target function's success records go to a 'sink' function whose reserved concurrency
is 0 until the restart, so every record waits in the durable queue too (the sink keeps
what it receives in memory, which a kill would wipe). The server is killed while the
target runs one last, slow event: it prints a marker the test waits on, so the kill is
mid-invoke, not merely after the queue was written.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from test_async import SINK, TARGET, probe, send_event

from conftest import python_function, unique, wait_for_log


def test_accepted_events_survive_kill9(server_factory: Any) -> None:
    srv = server_factory(
        async_retry_delays_s=(0.2, 0.4),
        async_throttle_delay_s=0.1,
        async_throttle_max_delay_s=0.5,
        async_pollers=4,
    )
    lam = srv.client("lambda")
    sink = unique("sink")
    sink_arn = python_function(lam, sink, SINK)["FunctionArn"]
    lam.put_function_concurrency(FunctionName=sink, ReservedConcurrentExecutions=0)
    name = unique("durable")
    python_function(lam, name, TARGET)
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": sink_arn}}
    )

    clients = [srv.client("lambda") for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        accepted = set(
            pool.map(
                lambda i: send_event(clients[i % 4], name, {"sleep": 0.02, "i": i}), range(200)
            )
        )
    assert len(accepted) == 200
    # Its marker in the log means its event is leased and its handler is running: the kill
    # lands mid-invoke (the sleep only has to outlast the log writer's 0.2 s flush).
    mark = unique("running")
    accepted.add(send_event(lam, name, {"sleep": 2, "i": 200, "mark": mark}))
    wait_for_log(srv, name, mark, timeout_s=60)
    srv.kill9()

    srv.start()
    lam = srv.client("lambda")
    lam.put_function_concurrency(FunctionName=sink, ReservedConcurrentExecutions=1)
    deadline = time.monotonic() + 90
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = {r["requestContext"]["requestId"] for r in probe(lam, sink)}
        if accepted <= seen:
            break
        time.sleep(0.1)
    assert not accepted - seen, f"{len(accepted - seen)} accepted events never ran"
    records = probe(lam, sink)
    assert all(r["requestContext"]["condition"] == "Success" for r in records)
    assert {json.dumps(r["requestPayload"]["i"]) for r in records} == {str(i) for i in range(201)}
