"""The PostgreSQL event queue: the server's async path on it (run, kill -9, restart), and two
nodes claiming from one queue with SKIP LOCKED never taking the same event.

Each test gets a fresh database (the pg_url fixture, tests/services.py).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from test_async import FAST, SINK, TARGET, probe, send_event, wait_records

from conftest import python_function, unique


def test_async_events_on_postgres_survive_kill9(server_factory: Any, pg_url: str) -> None:
    srv = server_factory(queue_url=pg_url, **FAST)
    lam = srv.client("lambda")
    sink = unique("sink")
    sink_arn = python_function(lam, sink, SINK)["FunctionArn"]
    lam.put_function_concurrency(FunctionName=sink, ReservedConcurrentExecutions=1)
    name = unique("pg")
    python_function(lam, name, TARGET)
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": sink_arn}}
    )
    rid = send_event(lam, name, {"first": True})
    (record,) = wait_records(lam, sink, 1)
    assert record["requestContext"]["requestId"] == rid
    assert not (srv.data_dir / "queue.db").exists()  # the queue is in PostgreSQL

    # Records wait in the queue (sink throttled) across a kill -9 and a restart.
    lam.put_function_concurrency(FunctionName=sink, ReservedConcurrentExecutions=0)
    accepted = {send_event(lam, name, {"sleep": 0.02, "i": i}) for i in range(40)}
    srv.kill9()
    srv.start()
    lam = srv.client("lambda")
    lam.put_function_concurrency(FunctionName=sink, ReservedConcurrentExecutions=1)
    deadline = time.monotonic() + 60
    seen: set[str] = set()
    while time.monotonic() < deadline and not accepted <= seen:
        time.sleep(0.3)
        seen = {r["requestContext"]["requestId"] for r in probe(lam, sink)}
    assert not accepted - seen, f"{len(accepted - seen)} accepted events never ran"


def test_two_nodes_never_claim_the_same_event(pg_url: str) -> None:
    from firebox.store.postgres import PostgresDatabase
    from firebox.store.queue.base import Completion, QueuedEvent
    from firebox.store.queue.postgres import PostgresEventQueue

    dbs = [PostgresDatabase(pg_url) for _ in range(3)]
    nodes = [PostgresEventQueue(dbs[i], f"node{i}") for i in range(2)]
    nodes[0].put([QueuedEvent(f"r{i}", "f", None, b"{}", time.time()) for i in range(300)])
    taken: list[list[str]] = [[], []]

    def drain(i: int) -> None:
        while batch := nodes[i].claim(5, 960.0, time.time()):
            for event in batch:
                nodes[i].complete(event, Completion())
                taken[i].append(event.request_id)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(taken[0]) & set(taken[1])
    assert sorted(taken[0] + taken[1]) == sorted(f"r{i}" for i in range(300))
    assert taken[0] and taken[1]

    # A node that dies leaves its leases; when it comes back it releases them at once.
    nodes[0].put([QueuedEvent("late", "f", None, b"{}", time.time())])
    (held,) = nodes[0].claim(1, 960.0, time.time())
    assert nodes[1].claim(1, 960.0, time.time()) == []
    nodes[0].close()
    again = PostgresEventQueue(dbs[2], "node0")
    assert [e.request_id for e in nodes[1].claim(1, 960.0, time.time())] == ["late"]
    # The old holder's completion is refused: the lease is someone else's now.
    again.complete(held, Completion())
    assert nodes[1].stats(time.time())["f"].depth == 1
    again.close()
    nodes[1].close()
    for db in dbs:
        db.close()
