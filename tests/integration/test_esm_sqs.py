"""SQS event source mappings, against an AWS-compatible server (moto) named the standard way
(AWS_ENDPOINT_URL_SQS), kept to what AWS documents."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from aws_sources import consumer, flat, read_events, read_seen, wait_until
from conftest import Server, unique, wait_for_log
from services import Moto


@pytest.fixture
def srv(server_factory: Any, aws_env: Moto) -> Server:
    return server_factory(esm_retry_delay_s=0.3)


def _queue(sqs: Any, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=unique("q"), Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def test_sqs_event_shape_batch_and_delete(srv: Server, aws_env: Moto) -> None:
    lam, sqs = srv.client("lambda"), aws_env.client("sqs")
    fn = consumer(lam)
    url, arn = _queue(sqs)
    mapping = lam.create_event_source_mapping(
        FunctionName=fn, EventSourceArn=arn, BatchSize=10, MaximumBatchingWindowInSeconds=1
    )
    assert mapping["BatchSize"] == 10 and mapping["EventSourceArn"] == arn
    sqs.send_message(
        QueueUrl=url,
        MessageBody=json.dumps({"n": 1}),
        MessageAttributes={"colour": {"DataType": "String", "StringValue": "blue"}},
    )
    sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(n), "MessageBody": json.dumps({"n": n})} for n in (2, 3)],
    )
    got = read_seen(lam, fn, lambda s: sorted(flat(s)) == [1, 2, 3])
    assert sorted(flat(got)) == [1, 2, 3]
    record = next(
        r for e in read_events(lam, fn, 1) for r in e["Records"] if json.loads(r["body"])["n"] == 1
    )
    # Lambda's aws:sqs record, field for field.
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "md5OfMessageAttributes",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == arn
    assert record["awsRegion"] == "us-east-1"
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId"} <= set(record["attributes"])
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"] == {
        "colour": {
            "stringValue": "blue",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
    }
    # Deleted once the function succeeded.
    wait_until(lambda: _depth(sqs, url) == 0, what="the queue to be empty")
    cfg = lam.get_event_source_mapping(UUID=mapping["UUID"])
    assert cfg["State"] == "Enabled" and cfg["LastProcessingResult"] == "OK"


def test_sqs_partial_failure_visibility_and_redrive(srv: Server, aws_env: Moto) -> None:
    """A failed message is left to the queue: visible again after its visibility timeout,
    then moved to the queue's dead-letter queue by its redrive policy."""
    lam, sqs = srv.client("lambda"), aws_env.client("sqs")
    fn = consumer(lam)
    dlq_url, dlq_arn = _queue(sqs)
    url, arn = _queue(
        sqs,
        VisibilityTimeout="2",
        RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
    )
    sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "a", "MessageBody": json.dumps({"n": 1})},
            {"Id": "b", "MessageBody": json.dumps({"n": 2, "fail": "always"})},
            {"Id": "c", "MessageBody": json.dumps({"n": 3, "fail": "once"})},
        ],
    )
    lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=arn,
        BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    dead = wait_until(
        lambda: sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get("Messages"),
        what="the failed message in the dead-letter queue",
    )
    assert [json.loads(m["Body"])["n"] for m in dead] == [2]
    got = flat(read_seen(lam, fn, lambda s: flat(s).count(3) == 2))
    # 1 succeeded at once and was deleted; 3 failed once and succeeded when it came back;
    # 2 came back once more, failed again, and the queue moved it aside.
    assert got.count(1) == 1 and got.count(3) == 2 and got.count(2) == 2, got
    wait_until(lambda: _depth(sqs, url) == 0, what="the queue to be empty")


def test_sqs_killed_mid_batch_loses_nothing(server_factory: Any, aws_env: Moto) -> None:
    srv = server_factory(esm_retry_delay_s=0.3)
    lam, sqs = srv.client("lambda"), aws_env.client("sqs")
    fn = consumer(lam)
    url, arn = _queue(sqs, VisibilityTimeout="2")
    lam.create_event_source_mapping(FunctionName=fn, EventSourceArn=arn, BatchSize=10)
    mark = unique("in-batch")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 1, "sleep": 3, "mark": mark}))
    wait_for_log(srv, fn, mark)
    srv.kill9()
    # Not deleted: it comes back once its visibility timeout ends.
    assert _depth(sqs, url) == 1
    srv.start()
    got = read_seen(lam, fn, lambda s: 1 in flat(s))
    assert 1 in flat(got)
    wait_until(lambda: _depth(sqs, url) == 0, what="the queue to be empty")


def test_sqs_large_batches_and_concurrency(srv: Server, aws_env: Moto) -> None:
    lam, sqs = srv.client("lambda"), aws_env.client("sqs")
    fn = consumer(lam)
    url, arn = _queue(sqs)
    for start in range(0, 50, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "MessageBody": json.dumps({"n": n})}
                for n in range(start, start + 10)
            ],
        )
    mapping = lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=arn,
        BatchSize=50,
        MaximumBatchingWindowInSeconds=2,
        ScalingConfig={"MaximumConcurrency": 2},
    )
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 2}
    got = read_seen(lam, fn, lambda s: sorted(flat(s)) == list(range(50)))
    assert sorted(flat(got)) == list(range(50))
    # More than SQS's 10 per receive went into one invoke.
    assert max(len(b) for b in got) > 10, [len(b) for b in got]


def test_sqs_mapping_validation(srv: Server, aws_env: Moto) -> None:
    lam, sqs = srv.client("lambda"), aws_env.client("sqs")
    fn = consumer(lam)
    _, arn = _queue(sqs)
    with pytest.raises(ClientError) as exc:
        lam.create_event_source_mapping(FunctionName=fn, EventSourceArn=arn, BatchSize=100)
    assert exc.value.response["Error"] == {
        "Code": "InvalidParameterValueException",
        "Message": "Maximum batch window in seconds must be greater than 0 if maximum batch "
        "size is greater than 10",
    }
    with pytest.raises(ClientError) as exc:
        lam.create_event_source_mapping(
            FunctionName=fn, EventSourceArn=arn, StartingPosition="LATEST"
        )
    assert exc.value.response["Error"] == {
        "Code": "InvalidParameterValueException",
        "Message": f"Unsupported starting position for arn type: {arn}",
    }


def test_sqs_queue_missing_shows_and_recovers(srv: Server, aws_env: Moto) -> None:
    lam, sqs = srv.client("lambda"), aws_env.client("sqs")
    fn = consumer(lam)
    name = unique("later")
    arn = f"arn:aws:sqs:us-east-1:123456789012:{name}"
    mapping = lam.create_event_source_mapping(FunctionName=fn, EventSourceArn=arn)
    cfg = wait_until(
        lambda: (
            (c := lam.get_event_source_mapping(UUID=mapping["UUID"]))[
                "LastProcessingResult"
            ].startswith("PROBLEM")
            and c
        ),
        what="the mapping to show the problem",
    )
    assert (
        "NonExistentQueue" in cfg["LastProcessingResult"]
        or "QueueDoesNotExist" in (cfg["LastProcessingResult"])
    ), cfg
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 9}))
    assert 9 in flat(read_seen(lam, fn, lambda s: 9 in flat(s)))
    time.sleep(0)  # (the mapping recovered by itself: no update was made)
