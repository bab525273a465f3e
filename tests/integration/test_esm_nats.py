"""Event source mappings on NATS JetStream streams, against the real NATS server."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
from test_esm_redis import Proxy, consumer, read_seen, wait_mapping

from conftest import Server, missing_service, unique, wait_for_log

nats = pytest.importorskip("nats")

NATS_PORT = 4222


def _arn(port: int = NATS_PORT) -> str:
    return f"arn:aws:nats:::nats://127.0.0.1:{port}"


def js_call(fn: Any) -> Any:
    async def run() -> Any:
        nc = await nats.connect(
            f"nats://127.0.0.1:{NATS_PORT}", connect_timeout=2, allow_reconnect=False
        )
        try:
            return await fn(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(run())


def make_stream() -> tuple[str, str]:
    name = unique("S").replace("-", "_")
    subject = name.lower() + ".events"

    async def go(js: Any) -> None:
        await js.add_stream(name=name, subjects=[subject])

    js_call(go)
    return name, subject


def publish(subject: str, bodies: list[dict[str, Any]]) -> list[int]:
    async def go(js: Any) -> list[int]:
        return [int((await js.publish(subject, json.dumps(b).encode())).seq) for b in bodies]

    return list(js_call(go))


def pending(stream: str, durable: str) -> tuple[int, int]:
    async def go(js: Any) -> tuple[int, int]:
        info = await js.consumer_info(stream, durable)
        return int(info.num_pending), int(info.num_ack_pending)

    result: tuple[int, int] = js_call(go)
    return result


@pytest.fixture
def jetstream() -> None:
    try:
        js_call(lambda js: js.account_info())
    except Exception as exc:  # noqa: BLE001
        missing_service(f"no NATS JetStream on 127.0.0.1:4222 (.ci/run starts one): {exc}")


@pytest.fixture
def nserver(server_factory: Any) -> Server:
    return server_factory(esm_retry_delay_s=0.3)


def test_batch_partial_failure_filter_and_on_failure(nserver: Server, jetstream: None) -> None:
    from test_events import recorder, seen

    lam = nserver.client("lambda")
    fn = consumer(lam)
    dlq = recorder(lam)
    dlq_arn = lam.get_function(FunctionName=dlq)["Configuration"]["FunctionArn"]
    stream, subject = make_stream()
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
            "Filters": [{"Pattern": json.dumps({"data": {"skip": [{"exists": False}]}})}]
        },
    )
    seqs = publish(
        subject,
        [
            {"n": 0},
            {"n": 1},
            {"n": 2, "fail": "once"},
            {"n": 3},
            {"n": 4, "fail": "always"},
            {"n": 5, "skip": True},
        ],
    )
    got = read_seen(lam, fn, lambda s: len(s) >= 3)
    assert got == [[0, 1, 2, 3, 4], [2, 4], [4]], got
    failures = seen(lam, dlq, 1)
    assert len(failures) == 1
    payload = failures[0]["payload"]
    assert payload["eventSource"] == "firebox:nats"
    (record,) = payload["records"]
    assert record["sequence"] == seqs[4] and record["subject"] == subject
    # Retried in process, never redelivered by JetStream: its first delivery.
    assert record["stream"] == stream and record["deliveryCount"] == 1
    assert json.loads(base64.b64decode(record["data"])) == {"n": 4, "fail": "always"}
    deadline = time.monotonic() + 5
    while pending(stream, mapping["UUID"]) != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pending(stream, mapping["UUID"]) == (0, 0)
    assert lam.get_event_source_mapping(UUID=mapping["UUID"])["LastProcessingResult"] == "OK"


def test_server_killed_mid_batch_loses_nothing(server_factory: Any, jetstream: None) -> None:
    srv = server_factory(esm_retry_delay_s=0.3)
    lam = srv.client("lambda")
    fn = consumer(lam)
    stream, subject = make_stream()
    mapping = lam.create_event_source_mapping(
        FunctionName=fn, EventSourceArn=_arn(), Topics=[stream], BatchSize=10
    )
    mark = unique("in-batch")
    publish(subject, [{"n": 1, "sleep": 3, "mark": mark}, {"n": 2}])
    # The handler's marker: the batch is in the function, unacknowledged. Kill now.
    wait_for_log(srv, fn, mark)
    assert pending(stream, mapping["UUID"])[1] == 2
    srv.kill9()
    srv.start()
    # JetStream redelivers once the ack wait of the dead poller's messages ran out.
    assert [1, 2] in read_seen(lam, fn, lambda s: [1, 2] in s, timeout_s=40)


def test_broker_down_shows_and_recovers(nserver: Server, jetstream: None) -> None:
    lam = nserver.client("lambda")
    fn = consumer(lam)
    stream, subject = make_stream()
    proxy = Proxy(NATS_PORT)
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
    publish(subject, [{"n": 5}])
    proxy.start()
    try:
        assert [5] in read_seen(lam, fn, lambda s: [5] in s)
    finally:
        proxy.stop()
