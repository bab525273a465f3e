"""Firebox as a fleet: several `firebox serve` processes sharing state.

Two shapes: ``--processes 2`` on the embedded defaults (SQLite and files in one data
dir, one port), and separate nodes with their own data dirs sharing a PostgreSQL
database and an S3-compatible store (radosgw), some with only some roles. Each node is a
real server process; nothing is shared but the stores.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import threading
import time
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from conftest import Server, invoke_json, needs_root, python_function, unique

ECHO = "import os\ndef handler(e, c):\n    return {'v': 1, 'e': e}\n"
SLOW = "import time\ndef handler(e, c):\n    time.sleep(e.get('s', 0))\n    return 'ok'\n"
TOKEN = "def handler(e, c):\n    print('token', e['t'])\n    return e['t']\n"


def metrics(server: Server) -> str:
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=10) as resp:
        return resp.read().decode()


def invocations_by_node(text: str, function: str) -> dict[str, float]:
    found: dict[str, float] = {}
    pattern = re.compile(r"^firebox_invocations_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
    for line in text.splitlines():
        m = pattern.match(line)
        if m and f'function="{function}"' in m["labels"]:
            node = re.search(r'node="([^"]*)"', m["labels"])
            assert node is not None, line
            found[node[1]] = found.get(node[1], 0) + float(m["value"])
    return found


def wait_for(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --- several processes on one machine, embedded defaults ------------------------------


@pytest.fixture
def two_processes(server_factory: Any) -> Server:
    return server_factory(processes=2)


def test_processes_share_the_port_and_each_serves(two_processes: Server) -> None:
    srv = two_processes
    lam = srv.client("lambda")
    name = unique("shared")
    python_function(lam, name, ECHO)

    # Each new connection goes to one process or the other (SO_REUSEPORT): with fresh
    # clients, both processes end up answering invokes.
    def both() -> dict[str, float] | None:
        for _ in range(4):
            invoke_json(srv.client("lambda"), name, {"i": 1})
        counts = invocations_by_node(metrics(srv), name)
        return counts if len(counts) == 2 else None

    counts = wait_for(both, 60, "invocations answered by both processes")
    assert all(v >= 1 for v in counts.values()), counts


def test_reserved_concurrency_counts_once_across_processes(two_processes: Server) -> None:
    srv = two_processes
    lam = srv.client("lambda")
    name = unique("reserved")
    python_function(lam, name, SLOW, Timeout=30)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    invoke_json(lam, name, {"s": 0})  # both processes know the function

    def one(_: int) -> str:
        client = srv.client("lambda")  # a connection of its own: either process
        try:
            invoke_json(client, name, {"s": 3})
            return "ok"
        except ClientError as exc:
            return exc.response["Error"]["Code"]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))
    assert results.count("ok") == 2, results
    assert results.count("TooManyRequestsException") == 4, results


def test_control_plane_writes_from_both_processes_never_collide(two_processes: Server) -> None:
    """Read-modify-write (publish reads the last version number, then writes the next)
    is serialised across the processes sharing the data dir."""
    srv = two_processes
    name = unique("versions")
    python_function(srv.client("lambda"), name, ECHO)

    def publish(i: int) -> str:
        lam = srv.client("lambda")  # a connection of its own: either process
        lam.update_function_configuration(FunctionName=name, Description=f"d{i}")
        lam.get_waiter("function_updated_v2").wait(FunctionName=name)
        return str(lam.publish_version(FunctionName=name, Description=f"v{i}")["Version"])

    arn = srv.client("lambda").get_function(FunctionName=name)["Configuration"]["FunctionArn"]

    def tag(i: int) -> None:
        srv.client("lambda").tag_resource(Resource=arn, Tags={f"k{i}": str(i)})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(tag, range(48)))
        numbers = list(pool.map(publish, range(16)))
    # Tagging reads the tags and writes them back: no tag is lost to a concurrent one.
    tags = srv.client("lambda").list_tags(Resource=arn)["Tags"]
    assert tags == {f"k{i}": str(i) for i in range(48)}, sorted(tags)
    listed = [
        v["Version"]
        for v in srv.client("lambda").list_versions_by_function(FunctionName=name)["Versions"]
        if v["Version"] != "$LATEST"
    ]
    # Every version listed once, numbered without a gap; every answer names one of them.
    assert sorted(map(int, listed)) == list(range(1, len(listed) + 1)), listed
    assert set(numbers) <= set(listed), (numbers, listed)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if int(fields[1]) == pid and b"firebox" in cmdline and b"serve" in cmdline:
            found.append(int(entry))
    return found


def test_a_killed_process_is_replaced_while_the_other_serves(two_processes: Server) -> None:
    srv = two_processes
    assert srv.proc is not None
    lam = srv.client("lambda")
    name = unique("survivor")
    python_function(lam, name, ECHO)

    def both_answer() -> list[int] | None:
        # Both processes are up and serving (not just started) before one is killed.
        invoke_json(srv.client("lambda"), name, {"i": 0})
        counts = invocations_by_node(metrics(srv), name)
        kids = _children(srv.proc.pid)  # type: ignore[union-attr]
        return kids if len(counts) == 2 and len(kids) == 2 else None

    first = wait_for(both_answer, 60, "two processes serving")
    os.kill(first[0], signal.SIGKILL)
    # A request already queued on the killed process's socket is lost with it (never
    # acknowledged); once it is gone, every invoke is answered — by the survivor, or the
    # replacement once it is up.
    wait_for(lambda: not os.path.exists(f"/proc/{first[0]}"), 10, "the killed process to go")
    for i in range(20):
        assert invoke_json(srv.client("lambda"), name, {"i": i})[0]["e"] == {"i": i}
    again = wait_for(
        lambda: len(_children(srv.proc.pid)) == 2 and _children(srv.proc.pid), 30, "a replacement"
    )
    assert first[0] not in again


# --- separate nodes on PostgreSQL and an S3-compatible store --------------------------


class Fleet:
    """Nodes sharing one database and one bucket, each with its own data dir and port."""

    def __init__(self, factory: Any, pg_url: str, bucket: str) -> None:
        self.factory = factory
        self.common = {
            "database_url": pg_url,
            "code_store_url": f"s3://{bucket}/code",
            "heartbeat_s": 0.2,
        }

    def node(self, **settings: Any) -> Server:
        return self.factory(**self.common, **settings)


@pytest.fixture
def fleet(pg_url: str, s3_bucket: str, s3_env: Any, server_factory: Any) -> Fleet:
    # s3_env: the standard AWS variables, which the nodes inherit, point at radosgw. The
    # servers (server_factory) come last: they stop before the database goes.
    return Fleet(server_factory, pg_url, s3_bucket)


def test_a_function_created_on_one_node_is_invoked_on_another(fleet: Fleet) -> None:
    a, b = fleet.node(), fleet.node()
    name = unique("across")
    python_function(a.client("lambda"), name, ECHO)
    out, resp = invoke_json(b.client("lambda"), name, {"x": 1})
    assert out == {"v": 1, "e": {"x": 1}}
    assert (
        b.client("lambda").get_function(FunctionName=name)["Configuration"]["FunctionName"] == name
    )


def test_new_code_from_one_node_is_served_by_the_other_within_a_second(fleet: Fleet) -> None:
    from conftest import make_zip

    a, b = fleet.node(), fleet.node()
    lam_a, lam_b = a.client("lambda"), b.client("lambda")
    name = unique("update")
    python_function(lam_a, name, ECHO)
    assert invoke_json(lam_b, name)[0]["v"] == 1  # b caches it and keeps a warm environment
    lam_a.update_function_code(
        FunctionName=name, ZipFile=make_zip({"app.py": ECHO.replace("'v': 1", "'v': 2")})
    )
    changed = time.monotonic()
    wait_for(lambda: invoke_json(lam_b, name)[0]["v"] == 2, 5, "new code on node b")
    assert time.monotonic() - changed < 1.5


def test_reserved_concurrency_counts_once_across_two_nodes(fleet: Fleet) -> None:
    a, b = fleet.node(), fleet.node()
    name = unique("limit")
    python_function(a.client("lambda"), name, SLOW, Timeout=30)
    a.client("lambda").put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    invoke_json(b.client("lambda"), name, {"s": 0})

    def one(i: int) -> str:
        node = (a, b)[i % 2]
        try:
            invoke_json(node.client("lambda"), name, {"s": 3})
            return "ok"
        except ClientError as exc:
            return exc.response["Error"]["Code"]

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(3)))
    assert results.count("ok") == 2 and results.count("TooManyRequestsException") == 1, results


def test_front_end_sends_invokes_to_worker_nodes(fleet: Fleet) -> None:
    front = fleet.node(role="api")
    w1 = fleet.node(role="worker")
    w2 = fleet.node(role="worker")
    lam = front.client("lambda")
    name = unique("placed")
    python_function(lam, name, ECHO)
    for i in range(20):
        assert invoke_json(lam, name, {"i": i})[0]["e"] == {"i": i}
    by_node = invocations_by_node(metrics(front), name)
    assert sum(by_node.values()) == 20, by_node
    # Sticky: one cold start, then warm hits on the worker that holds the environment.
    text = metrics(front)
    cold = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("firebox_cold_starts_total{") and f'function="{name}"' in line
    )
    assert cold == 1, text
    del w1, w2


def test_a_worker_killed_mid_load_loses_no_accepted_async_event(fleet: Fleet) -> None:
    front = fleet.node(role="api,poller")
    w1 = fleet.node(role="worker")
    fleet.node(role="worker")
    lam = front.client("lambda")
    logs = front.client("logs")
    name = unique("survive")
    python_function(lam, name, TOKEN)
    total = 200
    for t in range(total):
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"t": t}))

    def tokens() -> set[int]:
        seen: set[int] = set()
        kwargs: dict[str, Any] = {"logGroupName": f"/aws/lambda/{name}", "filterPattern": "token"}
        while True:
            try:
                page = logs.filter_log_events(**kwargs)
            except logs.exceptions.ResourceNotFoundException:
                return seen  # the group appears with the first lines written
            for e in page["events"]:
                seen.add(int(e["message"].split()[1]))
            if not page.get("nextToken"):
                return seen
            kwargs["nextToken"] = page["nextToken"]

    # Mid-load, proven by what has run, not by a sleep.
    wait_for(lambda: len(tokens()) >= 20, 60, "the first events to run")
    w1.kill9()
    try:
        wait_for(lambda: tokens() >= set(range(total)), 120, "every accepted event to run")
    finally:
        print("missing", sorted(set(range(total)) - tokens()), metrics(front)[-3000:])


def test_a_worker_at_its_lease_end_drains_without_failing_an_invoke(fleet: Fleet) -> None:
    front = fleet.node(role="api")
    fleet.node(role="worker", worker_max_lifetime_s=1.5)
    lam = front.client("lambda")
    name = unique("drain")
    python_function(lam, name, SLOW, Timeout=30)
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        client = front.client("lambda")
        while not stop.is_set():
            try:
                invoke_json(client, name, {"s": 0.05})
            except ClientError as exc:
                failures.append(exc.response["Error"]["Code"])

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    # Several leases end while the load runs: count the generations by cold starts.
    try:
        wait_for(
            lambda: _count(metrics(front), "firebox_cold_starts_total", name) >= 6,
            60,
            "two lease ends under load",
        )
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []


def _count(text: str, family: str, function: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(family + "{") and f'function="{function}"' in line
    )


@needs_root
def test_a_schedule_fires_once_per_period_across_two_nodes(fleet: Fleet) -> None:
    a = fleet.node(schedule_time_scale=60, schedule_tick_s=0.1)
    b = fleet.node(schedule_time_scale=60, schedule_tick_s=0.1)
    lam, events = a.client("lambda"), b.client("events")
    name = unique("tick")
    arn = python_function(lam, name, "def handler(e, c):\n    print('tick', e['time'])\n")[
        "FunctionArn"
    ]
    lam.add_permission(
        FunctionName=name,
        StatementId="events",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
    )
    events.put_rule(Name=name, ScheduleExpression="rate(1 minute)")  # once a second here
    events.put_targets(Rule=name, Targets=[{"Id": "1", "Arn": arn}])
    logs = a.client("logs")

    def ticks() -> list[dict[str, Any]]:
        try:
            page = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}", filterPattern="tick")
        except logs.exceptions.ResourceNotFoundException:
            return []  # the group appears with the first lines written
        return sorted(page["events"], key=lambda e: e["timestamp"])

    found = wait_for(lambda: (lambda t: len(t) >= 5 and t)(ticks()), 30, "five ticks")
    # Once a second: five ticks span about four seconds; fired by both nodes, about two.
    span_ms = found[4]["timestamp"] - found[0]["timestamp"]
    assert span_ms >= 3000, [e["message"] for e in found]


def test_a_mapping_consumes_each_message_once_across_two_nodes(fleet: Fleet) -> None:
    redis = pytest.importorskip("redis")
    a, b = fleet.node(), fleet.node()
    lam = a.client("lambda")
    name = unique("consume")
    handler = (
        "def handler(e, c):\n    for r in e['records']:\n        print('got', r['fields']['n'])\n"
    )
    python_function(lam, name, handler)
    stream = unique("fleetstream")
    db = redis.Redis(host="127.0.0.1", port=6379)
    lam.create_event_source_mapping(
        FunctionName=name,
        EventSourceArn="arn:aws:redis:::redis://127.0.0.1:6379/0",
        Topics=[stream],
        BatchSize=10,
        StartingPosition="TRIM_HORIZON",
    )
    total = 100
    try:
        for n in range(total):
            db.xadd(stream, {"n": str(n)})
        logs = b.client("logs")

        def got() -> list[int]:
            try:
                pages = logs.get_paginator("filter_log_events").paginate(
                    logGroupName=f"/aws/lambda/{name}", filterPattern='"got"'
                )
                return [int(e["message"].split()[1]) for p in pages for e in p["events"]]
            except logs.exceptions.ResourceNotFoundException:
                return []

        seen = wait_for(lambda: (lambda s: len(set(s)) == total and s)(got()), 60, "every message")
        # Both nodes run pollers; one holds the mappings' lease: no message is consumed
        # twice, and every batch was taken by one node (the consumer group alone would
        # spread batches over both).
        assert sorted(seen) == list(range(total)), sorted(seen)
        by_node = invocations_by_node(metrics(a), name)
        assert len(by_node) == 1, by_node
    finally:
        db.delete(stream)


def test_usage_counts_every_processs_invokes(two_processes: Server) -> None:
    from test_metering import usage

    srv = two_processes
    name = unique("metered")
    python_function(srv.client("lambda"), name, ECHO)

    def both() -> dict[str, float] | None:
        invoke_json(srv.client("lambda"), name, {"i": 1})
        counts = invocations_by_node(metrics(srv), name)
        return counts if len(counts) == 2 else None

    counts = wait_for(both, 60, "invocations answered by both processes")
    invoked = int(sum(counts.values()))

    def metered() -> int:
        status, report = usage(srv, f"function={name}")
        assert status == 200, report
        return int(sum(r["requests"] for r in report["functions"] if r["function"] == name))

    # Either process answers the report, with every process's requests (the store is
    # shared; each flushes its own counts).
    wait_for(lambda: metered() == invoked, 20, f"{invoked} requests metered")


def test_a_sync_invoke_on_a_worker_that_dies_fails_clearly(fleet: Fleet) -> None:
    front = fleet.node(role="api")
    worker = fleet.node(role="worker")
    lam = front.client("lambda")
    name = unique("doomed")
    python_function(
        lam,
        name,
        "import time\ndef handler(e, c):\n    print('started')\n    time.sleep(60)\n",
        Timeout=120,
    )
    logs = front.client("logs")
    errors: list[Any] = []

    def call() -> None:
        try:
            lam.invoke(FunctionName=name, Payload=b"{}")
        except ClientError as exc:
            errors.append(exc.response)

    t = threading.Thread(target=call)
    t.start()

    def started() -> bool:
        try:
            page = logs.filter_log_events(
                logGroupName=f"/aws/lambda/{name}", filterPattern='"started"'
            )
        except logs.exceptions.ResourceNotFoundException:
            return False
        return bool(page["events"])

    wait_for(started, 60, "the invocation to run on the worker")
    worker.kill9()
    t.join(30)
    assert not t.is_alive()
    assert len(errors) == 1, errors
    error = errors[0]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert error["Error"]["Code"] == "ServiceException"
    assert "was lost during the invocation" in error["Error"]["Message"]


def test_a_killed_processs_async_events_run_again_when_it_is_replaced(
    two_processes: Server,
) -> None:
    srv = two_processes
    lam = srv.client("lambda")
    name = unique("replaced")
    python_function(
        lam,
        name,
        "import time\ndef handler(e, c):\n    print('begin', e['t'])\n    time.sleep(1)\n"
        "    print('token', e['t'])\n",
        Timeout=30,
    )
    total = 24
    for t in range(total):
        srv.client("lambda").invoke(
            FunctionName=name, InvocationType="Event", Payload=json.dumps({"t": t})
        )

    def lines(word: str) -> set[int]:
        # A client of its own each time: a kept-alive connection may be to the process
        # this test kills.
        logs = srv.client("logs")
        try:
            pages = logs.get_paginator("filter_log_events").paginate(
                logGroupName=f"/aws/lambda/{name}", filterPattern=f'"{word}"'
            )
            return {int(e["message"].split()[1]) for p in pages for e in p["events"]}
        except logs.exceptions.ResourceNotFoundException:
            return set()
        except ConnectionClosedError:
            return set()  # accepted by the process just killed: ask again

    # Kill a process while events run (some begun, not all done): its leased events come
    # back when its replacement starts (it releases its predecessor's leases), not when
    # their 16-minute lease ends.
    wait_for(lambda: len(lines("begin")) >= 4, 60, "events to be running")
    assert srv.proc is not None
    os.kill(_children(srv.proc.pid)[0], signal.SIGKILL)
    wait_for(lambda: lines("token") >= set(range(total)), 90, "every event to finish")
