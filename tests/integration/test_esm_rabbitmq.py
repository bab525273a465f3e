"""Event source mappings on RabbitMQ queues (the aws:rmq event), against the real broker."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
from test_esm_redis import Proxy, consumer, read_seen, wait_mapping

from conftest import Server, missing_service, unique, wait_for_log

aio_pika = pytest.importorskip("aio_pika")

AMQP_PORT = 5672


def _url(port: int = AMQP_PORT, creds: str = "guest:guest") -> str:
    return f"amqp://{creds}@127.0.0.1:{port}/"


def _arn(port: int = AMQP_PORT, creds: str = "guest:guest") -> str:
    return f"arn:aws:rabbitmq:::{_url(port, creds)}"


def amqp(coro_fn: Any) -> Any:
    async def run() -> Any:
        conn = await aio_pika.connect(_url())
        try:
            channel = await conn.channel()
            return await coro_fn(channel)
        finally:
            await conn.close()

    return asyncio.run(run())


def declare(queue: str) -> None:
    async def go(ch: Any) -> None:
        await ch.declare_queue(queue, durable=True)

    amqp(go)


def publish(queue: str, bodies: list[dict[str, Any]]) -> list[str]:
    ids = [unique("m") for _ in bodies]

    async def go(ch: Any) -> None:
        for mid, body in zip(ids, bodies, strict=True):
            await ch.default_exchange.publish(
                aio_pika.Message(
                    json.dumps(body).encode(),
                    message_id=mid,
                    content_type="application/json",
                    headers={"h": "v"},
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=queue,
            )

    amqp(go)
    return ids


def ready(queue: str) -> int:
    async def go(ch: Any) -> int:
        q = await ch.declare_queue(queue, passive=True)
        return int(q.declaration_result.message_count)

    return int(amqp(go))


def consumers(queue: str) -> int:
    async def go(ch: Any) -> int:
        q = await ch.declare_queue(queue, passive=True)
        return int(q.declaration_result.consumer_count)

    return int(amqp(go))


@pytest.fixture
def rabbit() -> None:
    try:
        declare("firebox-probe")
    except Exception as exc:  # noqa: BLE001
        missing_service(f"no RabbitMQ on 127.0.0.1:5672 (.ci/run starts one): {exc}")


@pytest.fixture
def rserver(server_factory: Any) -> Server:
    return server_factory(esm_retry_delay_s=0.3)


def test_batch_partial_failure_filter_and_on_failure(rserver: Server, rabbit: None) -> None:
    from test_events import recorder, seen

    lam = rserver.client("lambda")
    fn = consumer(lam)
    dlq = recorder(lam)
    dlq_arn = lam.get_function(FunctionName=dlq)["Configuration"]["FunctionArn"]
    queue = unique("q")
    declare(queue)
    mapping = lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=_arn(),
        Queues=[queue],
        BatchSize=10,
        MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": dlq_arn}},
        FilterCriteria={
            "Filters": [{"Pattern": json.dumps({"data": {"skip": [{"exists": False}]}})}]
        },
    )
    assert mapping["Queues"] == [queue]
    ids = publish(
        queue,
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
    assert payload["eventSource"] == "aws:rmq"
    ((key, messages),) = payload["rmqMessagesByQueue"].items()
    assert key == f"{queue}::/"
    assert [m["basicProperties"]["messageId"] for m in messages] == [ids[4]]
    msg = messages[0]
    assert json.loads(base64.b64decode(msg["data"])) == {"n": 4, "fail": "always"}
    assert msg["basicProperties"]["contentType"] == "application/json"
    assert msg["basicProperties"]["headers"] == {"h": "v"}
    assert msg["basicProperties"]["deliveryMode"] == 2
    assert msg["basicProperties"]["bodySize"] == len(base64.b64decode(msg["data"]))
    assert lam.get_event_source_mapping(UUID=mapping["UUID"])["LastProcessingResult"] == "OK"
    # Stop the mapping: anything not acknowledged would go back to the queue once its
    # consumer has gone.
    lam.delete_event_source_mapping(UUID=mapping["UUID"])
    deadline = time.monotonic() + 10
    while consumers(queue) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert consumers(queue) == 0
    assert ready(queue) == 0


def test_server_killed_mid_batch_loses_nothing(server_factory: Any, rabbit: None) -> None:
    srv = server_factory(esm_retry_delay_s=0.3)
    lam = srv.client("lambda")
    fn = consumer(lam)
    queue = unique("q")
    declare(queue)
    lam.create_event_source_mapping(
        FunctionName=fn, EventSourceArn=_arn(), Queues=[queue], BatchSize=10
    )
    mark = unique("in-batch")
    publish(queue, [{"n": 1, "sleep": 3, "mark": mark}, {"n": 2}])
    # The handler's marker: the batch is in the function, unacknowledged. Kill now.
    wait_for_log(srv, fn, mark)
    assert ready(queue) == 0
    srv.kill9()
    srv.start()
    assert [1, 2] in read_seen(lam, fn, lambda s: [1, 2] in s)


def test_broker_down_and_bad_credentials(rserver: Server, rabbit: None) -> None:
    lam = rserver.client("lambda")
    fn = consumer(lam)
    queue = unique("q")
    declare(queue)
    proxy = Proxy(AMQP_PORT)
    mapping = lam.create_event_source_mapping(
        FunctionName=fn, EventSourceArn=_arn(proxy.port), Queues=[queue]
    )
    cfg = wait_mapping(
        lam, mapping["UUID"], lambda c: c["LastProcessingResult"].startswith("PROBLEM")
    )
    assert cfg["LastProcessingResult"].startswith("PROBLEM: Connection error"), cfg
    publish(queue, [{"n": 9}])
    proxy.start()
    try:
        assert [9] in read_seen(lam, fn, lambda s: [9] in s)
    finally:
        proxy.stop()
    bad = lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=f"arn:aws:rabbitmq:::amqp://127.0.0.1:{AMQP_PORT}/",
        Queues=[queue],
        SourceAccessConfigurations=[{"Type": "BASIC_AUTH", "URI": "guest:wrong-password"}],
    )
    cfg = wait_mapping(lam, bad["UUID"], lambda c: c["LastProcessingResult"].startswith("PROBLEM"))
    assert cfg["LastProcessingResult"].startswith("PROBLEM: Authentication error"), cfg
