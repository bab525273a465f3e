"""Event source mappings on Redis Streams, against the real Redis on this machine.

The shared helpers here (the recording function, a TCP proxy that plays a broker going
down) are used by the RabbitMQ and NATS tests too.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import Server, free_port, missing_service, python_function, unique, wait_for_log

redis = pytest.importorskip("redis")

REDIS_PORT = 6379

# Records every batch as the list of its "n" values; fails items asked to fail ("once":
# the first time, "always": every time), prints an item's "mark" before it sleeps its
# "sleep"; {"read": true} returns what it saw.
HANDLER = """
import base64, json, time

seen = []
failed_once = set()


def items(event):
    source = event.get("eventSource")
    if source == "firebox:redis":
        return [(r["id"], r["fields"]) for r in event["records"]]
    if source == "aws:rmq":
        return [(m["basicProperties"]["messageId"], json.loads(base64.b64decode(m["data"])))
                for msgs in event["rmqMessagesByQueue"].values() for m in msgs]
    if source == "firebox:nats":
        return [(r["id"], json.loads(base64.b64decode(r["data"]))) for r in event["records"]]
    return [("x", {"n": -1, "event": event})]


def handler(event, context):
    if event.get("read"):
        return seen
    batch, fails = [], []
    for ident, body in items(event):
        batch.append(int(body.get("n", -1)))
        mode = body.get("fail")
        if mode == "always" or (mode == "once" and ident not in failed_once):
            failed_once.add(ident)
            fails.append(ident)
        if body.get("mark"):
            print(body["mark"], flush=True)
        if body.get("sleep"):
            time.sleep(float(body["sleep"]))
    seen.append(batch)
    if any(b.get("fail") == "raise" for _, b in items(event)):
        raise RuntimeError("this batch fails")
    return {"batchItemFailures": [{"itemIdentifier": i} for i in fails]}
"""


def consumer(lam: Any, name: str | None = None) -> str:
    name = name or unique("esm")
    python_function(lam, name, HANDLER, Timeout=30)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    return name


def read_seen(
    lam: Any, name: str, done: Callable[[list[Any]], bool], timeout_s: float = 30.0
) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    got: list[Any] = []
    while time.monotonic() < deadline:
        try:
            resp = lam.invoke(FunctionName=name, Payload=json.dumps({"read": True}))
            got = json.loads(resp["Payload"].read())
            if done(got):
                return got
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TooManyRequestsException":
                raise
        time.sleep(0.2)
    return got


def wait_mapping(
    lam: Any, uuid: str, ok: Callable[[dict[str, Any]], bool], timeout_s: float = 20.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    cfg = lam.get_event_source_mapping(UUID=uuid)
    while time.monotonic() < deadline and not ok(cfg):
        time.sleep(0.2)
        cfg = lam.get_event_source_mapping(UUID=uuid)
    return dict(cfg)


class Proxy:
    """A TCP forwarder to a broker that tests can take down and bring back."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Proxy:
        self._stop.clear()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._thread = threading.Thread(target=self._serve, args=(listener,), daemon=True)
        self._thread.start()
        return self

    def _serve(self, listener: socket.socket) -> None:
        pairs: dict[socket.socket, socket.socket] = {}
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([listener, *pairs], [], [], 0.1)
                for sock in ready:
                    if sock is listener:
                        client, _ = listener.accept()
                        try:
                            upstream = socket.create_connection(("127.0.0.1", self.target))
                        except OSError:
                            client.close()
                            continue
                        pairs[client], pairs[upstream] = upstream, client
                        continue
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    other = pairs.get(sock)
                    if not data or other is None:
                        for s in (sock, other):
                            if s is not None:
                                pairs.pop(s, None)
                                s.close()
                        continue
                    try:
                        other.sendall(data)
                    except OSError:
                        pass
        finally:
            listener.close()
            for s in pairs:
                s.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


@pytest.fixture
def rserver(server_factory: Any) -> Server:
    return server_factory(esm_retry_delay_s=0.3)


@pytest.fixture
def rdb() -> Iterator[Any]:
    client = redis.Redis(port=REDIS_PORT)
    try:
        client.ping()
    except redis.ConnectionError:
        missing_service("no Redis on 127.0.0.1:6379 (.ci/run starts one)")
    yield client
    client.close()


def _arn(port: int = REDIS_PORT) -> str:
    return f"arn:aws:redis:::redis://127.0.0.1:{port}/0"


def test_mapping_api(rserver: Server) -> None:
    lam = rserver.client("lambda")
    fn = consumer(lam)
    stream = unique("stream")
    created = lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=_arn(),
        Topics=[stream],
        BatchSize=5,
        StartingPosition="TRIM_HORIZON",
        Enabled=False,
        SelfManagedKafkaEventSourceConfig={"ConsumerGroupId": "grp"},
    )
    assert created["State"] == "Creating"
    assert created["FunctionArn"].endswith(f":function:{fn}")
    assert created["EventSourceMappingArn"].endswith(created["UUID"])
    got = lam.get_event_source_mapping(UUID=created["UUID"])
    assert got["State"] == "Disabled" and got["BatchSize"] == 5 and got["Topics"] == [stream]
    assert got["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": "grp"}
    upd = lam.update_event_source_mapping(UUID=created["UUID"], BatchSize=7, Enabled=True)
    assert upd["BatchSize"] == 7
    listed = lam.list_event_source_mappings(FunctionName=fn)["EventSourceMappings"]
    assert [m["UUID"] for m in listed] == [created["UUID"]]
    assert lam.list_event_source_mappings(EventSourceArn=_arn(1))["EventSourceMappings"] == []
    assert lam.delete_event_source_mapping(UUID=created["UUID"])["State"] == "Deleting"
    with pytest.raises(ClientError) as exc:
        lam.get_event_source_mapping(UUID=created["UUID"])
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    for bad in (
        {"EventSourceArn": "arn:aws:kafka:us-east-1:000000000000:cluster/c/1", "Topics": ["st"]},
        {"EventSourceArn": _arn()},
        {"EventSourceArn": "arn:aws:redis:::http://x", "Topics": ["st"]},
        {
            "EventSourceArn": _arn(),
            "Topics": ["st"],
            "FilterCriteria": {"Filters": [{"Pattern": "not json"}]},
        },
    ):
        with pytest.raises(ClientError) as exc:
            lam.create_event_source_mapping(FunctionName=fn, **bad)
        assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException", bad
    with pytest.raises(ClientError) as exc:
        lam.create_event_source_mapping(
            FunctionName=unique("nofn"), EventSourceArn=_arn(), Topics=["st"]
        )
    # Lambda's answer for a mapping to a function that does not exist.
    assert exc.value.response["Error"] == {
        "Code": "InvalidParameterValueException",
        "Message": "Function does not exist",
    }


def test_batch_partial_failure_filter_and_on_failure(rserver: Server, rdb: Any) -> None:
    from test_events import recorder, seen

    lam = rserver.client("lambda")
    fn = consumer(lam)
    dlq = recorder(lam)
    dlq_arn = lam.get_function(FunctionName=dlq)["Configuration"]["FunctionArn"]
    stream = unique("stream")
    mapping = lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=_arn(),
        Topics=[stream],
        BatchSize=10,
        MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": dlq_arn}},
        FilterCriteria={
            "Filters": [{"Pattern": json.dumps({"fields": {"skip": [{"exists": False}]}})}]
        },
    )
    group = mapping["UUID"]
    pipe = rdb.pipeline()
    pipe.xadd(stream, {"n": "0"})
    pipe.xadd(stream, {"n": "1"})
    pipe.xadd(stream, {"n": "2", "fail": "once"})
    pipe.xadd(stream, {"n": "3"})
    pipe.xadd(stream, {"n": "4", "fail": "always"})
    pipe.xadd(stream, {"n": "5", "skip": "yes"})
    ids = [i.decode() for i in pipe.execute()]
    got = read_seen(lam, fn, lambda s: len(s) >= 3)
    # The whole batch once, then only the failed items, until item 4 runs out of retries.
    assert got == [[0, 1, 2, 3, 4], [2, 4], [4]], got
    failures = seen(lam, dlq, 1)
    assert len(failures) == 1
    record = failures[0]
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["payload"]["eventSource"] == "firebox:redis"
    assert [r["id"] for r in record["payload"]["records"]] == [ids[4]]
    assert record["payload"]["records"][0]["fields"] == {"n": "4", "fail": "always"}
    # Everything is acknowledged now, the filtered-out entry included.
    deadline = time.monotonic() + 5
    while rdb.xpending(stream, group)["pending"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rdb.xpending(stream, group)["pending"] == 0
    cfg = lam.get_event_source_mapping(UUID=group)
    assert cfg["State"] == "Enabled" and cfg["LastProcessingResult"] == "OK"
    # Nothing runs twice: a later entry comes next, with no earlier one before it.
    rdb.xadd(stream, {"n": "6"})
    assert read_seen(lam, fn, lambda s: [6] in s) == [*got, [6]]


def test_server_killed_mid_batch_loses_nothing(server_factory: Any, rdb: Any) -> None:
    srv = server_factory(esm_retry_delay_s=0.3)
    lam = srv.client("lambda")
    fn = consumer(lam)
    stream = unique("stream")
    mapping = lam.create_event_source_mapping(
        FunctionName=fn, EventSourceArn=_arn(), Topics=[stream], BatchSize=10
    )
    mark = unique("in-batch")
    rdb.xadd(stream, {"n": "1", "sleep": "3", "mark": mark})
    rdb.xadd(stream, {"n": "2"})
    # The handler's marker: the batch is in the function, unacknowledged. Kill now.
    wait_for_log(srv, fn, mark)
    assert rdb.xpending(stream, mapping["UUID"])["pending"] == 2
    srv.kill9()
    srv.start()
    got = read_seen(lam, fn, lambda s: [1, 2] in s)
    assert [1, 2] in got
    deadline = time.monotonic() + 5
    while rdb.xpending(stream, mapping["UUID"])["pending"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rdb.xpending(stream, mapping["UUID"])["pending"] == 0


def test_broker_down_shows_and_recovers(rserver: Server, rdb: Any) -> None:
    lam = rserver.client("lambda")
    fn = consumer(lam)
    proxy = Proxy(REDIS_PORT)
    stream = unique("stream")
    mapping = lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=_arn(proxy.port),
        Topics=[stream],
        StartingPosition="TRIM_HORIZON",
    )
    cfg = wait_mapping(
        lam, mapping["UUID"], lambda c: c["LastProcessingResult"].startswith("PROBLEM")
    )
    assert cfg["LastProcessingResult"].startswith("PROBLEM: Connection error"), cfg
    assert cfg["State"] == "Enabled"
    rdb.xadd(stream, {"n": "7"})
    proxy.start()
    try:
        assert [7] in read_seen(lam, fn, lambda s: [7] in s)
        cfg = wait_mapping(lam, mapping["UUID"], lambda c: c["LastProcessingResult"] == "OK")
        assert cfg["LastProcessingResult"] == "OK"
        # Down again mid-life: it notices, and comes back once more.
        proxy.stop()
        cfg = wait_mapping(
            lam, mapping["UUID"], lambda c: c["LastProcessingResult"].startswith("PROBLEM")
        )
        assert cfg["LastProcessingResult"].startswith("PROBLEM"), cfg
        rdb.xadd(stream, {"n": "8"})
        proxy.start()
        assert [8] in read_seen(lam, fn, lambda s: [8] in s)
    finally:
        proxy.stop()
    # Wrong credentials show as an authentication problem.
    bad = lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=_arn(),
        Topics=[stream],
        SourceAccessConfigurations=[{"Type": "BASIC_AUTH", "URI": "nobody:wrong"}],
    )
    cfg = wait_mapping(lam, bad["UUID"], lambda c: c["LastProcessingResult"].startswith("PROBLEM"))
    assert cfg["LastProcessingResult"].startswith("PROBLEM: Authentication error"), cfg


def test_function_error_retries_then_on_failure_and_disable(rserver: Server, rdb: Any) -> None:
    from test_events import recorder, seen

    lam = rserver.client("lambda")
    fn = consumer(lam)
    dlq = recorder(lam)
    dlq_arn = lam.get_function(FunctionName=dlq)["Configuration"]["FunctionArn"]
    stream = unique("stream")
    mapping = lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=_arn(),
        Topics=[stream],
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": dlq_arn}},
    )
    rdb.xadd(stream, {"n": "1", "fail": "raise"})
    # Without ReportBatchItemFailures an error fails the batch: one try, one retry.
    assert read_seen(lam, fn, lambda s: len(s) >= 2) == [[1], [1]]
    failures = seen(lam, dlq, 1)
    assert [r["fields"]["n"] for r in failures[0]["payload"]["records"]] == ["1"]
    cfg = wait_mapping(lam, mapping["UUID"], lambda c: "PROBLEM" in c["LastProcessingResult"])
    assert cfg["LastProcessingResult"].startswith("PROBLEM: Function call failed")

    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    assert lam.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Disabled"
    # A second, enabled mapping to the same function shows the pollers at work meanwhile:
    # once its later entry has run, the disabled one has had its chance to misbehave.
    other = unique("stream")
    rdb.xadd(stream, {"n": "2"})
    lam.create_event_source_mapping(
        FunctionName=fn, EventSourceArn=_arn(), Topics=[other], StartingPosition="TRIM_HORIZON"
    )
    rdb.xadd(other, {"n": "3"})
    assert read_seen(lam, fn, lambda s: [3] in s) == [[1], [1], [3]]
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
    assert read_seen(lam, fn, lambda s: [2] in s) == [[1], [1], [3], [2]]
