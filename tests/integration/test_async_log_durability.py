"""A crash loses no record of finished work: after kill -9, the Logs API shows the output of
every accepted async event.

An async event is completed in the queue only once its invocation's log lines are on disk,
so every event is either complete with its lines stored, or still queued and run again
after the restart. The server is killed mid-stream, as soon as the queue's own figures show
that some events are complete and others are not: the moment when, before log lines were
made durable first, the last ~0.2 s of completed events had their lines only in memory.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from test_async import send_event

from conftest import python_function, unique

EVENTS = 150
# Events completed in the queue before the kill: well past the first, well before the end.
KILL_AFTER = 40

TOKEN_FN = """
import time
def handler(event, context):
    time.sleep(event["sleep"])
    print("token " + event["token"])
    return {}
"""


def token_lines(logs: Any, group: str) -> list[str]:
    """Every 'token …' line the Logs API has for the group (none while it does not exist)."""
    found: list[str] = []
    try:
        pages = logs.get_paginator("filter_log_events").paginate(
            logGroupName=group, filterPattern='"token "'
        )
        for page in pages:
            found += [e["message"] for e in page["events"]]
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [m.rstrip("\n") for m in found if m.startswith("token ")]


def test_kill9_loses_no_log_line_of_a_completed_async_event(server_factory: Any) -> None:
    srv = server_factory(async_pollers=4)
    lam = srv.client("lambda")
    name = unique("tokens")
    group = f"/aws/lambda/{name}"
    python_function(lam, name, TOKEN_FN)
    run = uuid.uuid4().hex[:8]
    tokens = [f"{run}-{i:03d}" for i in range(EVENTS)]

    clients = [srv.client("lambda") for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        # 50 ms each on 4 pollers: the stream lasts about 2 s, and the kill lands inside it.
        accepted = list(
            pool.map(
                lambda i: send_event(clients[i % 4], name, {"token": tokens[i], "sleep": 0.05}),
                range(EVENTS),
            )
        )
    assert len(set(accepted)) == EVENTS

    deadline = time.monotonic() + 60
    depth = EVENTS
    while depth > EVENTS - KILL_AFTER and time.monotonic() < deadline:
        time.sleep(0.01)
        depth = srv.signed_get("/_firebox/queues").get(name, {"depth": 0})["depth"]
    srv.kill9()
    assert depth <= EVENTS - KILL_AFTER, f"only {EVENTS - depth} events completed in 60 s"
    # Mid-stream: events were still queued or running when the server died.
    assert depth > 0, "every event had finished before the kill: nothing was tested"

    srv.start()
    logs = srv.client("logs")
    deadline = time.monotonic() + 120
    missing = set(tokens)
    while missing and time.monotonic() < deadline:
        missing = set(tokens) - {line.removeprefix("token ") for line in token_lines(logs, group)}
        if missing:
            time.sleep(0.2)
    assert not missing, f"{len(missing)} of {EVENTS} accepted events have no log line"
    lines = token_lines(logs, group)
    # Each line exactly as printed; an event in flight at the kill may have run twice.
    assert set(lines) == {f"token {t}" for t in tokens}
    assert len(lines) >= EVENTS
    assert srv.signed_get("/_firebox/queues").get(name, {}).get("dead_lettered", 0) == 0
