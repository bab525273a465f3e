"""Kinesis and DynamoDB Streams mappings, against an AWS-compatible server (moto) named the
standard way (AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_DYNAMODB_STREAMS), kept to what
AWS documents: event shapes, order per shard, retries, bisect, OnFailure, checkpoints."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from aws_sources import consumer, flat, read_events, read_seen, wait_until
from conftest import Server, unique, wait_for_log
from services import Moto


@pytest.fixture
def srv(server_factory: Any, aws_env: Moto) -> Server:
    return server_factory(esm_retry_delay_s=0.3)


def _stream(kinesis: Any, shards: int = 1) -> tuple[str, str]:
    name = unique("st")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    wait_until(
        lambda: (
            kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
                "StreamStatus"
            ]
            == "ACTIVE"
        ),
        what="the stream",
    )
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    return name, arn


def _put(kinesis: Any, stream: str, items: list[dict[str, Any]], key: str = "k") -> list[str]:
    return [
        kinesis.put_record(StreamName=stream, Data=json.dumps(i).encode(), PartitionKey=key)[
            "SequenceNumber"
        ]
        for i in items
    ]


def _queue(sqs: Any) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=unique("dest"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _drain(sqs: Any, url: str, count: int) -> list[Any]:
    got: list[Any] = []

    def more() -> bool:
        for m in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            got.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return len(got) >= count

    wait_until(more, what=f"{count} messages in the destination queue")
    return got


def test_kinesis_shape_order_and_checkpoint_across_restart(
    server_factory: Any, aws_env: Moto
) -> None:
    srv = server_factory(esm_retry_delay_s=0.3)
    lam, kinesis = srv.client("lambda"), aws_env.client("kinesis")
    fn = consumer(lam)
    role = lam.get_function(FunctionName=fn)["Configuration"]["Role"]
    stream, arn = _stream(kinesis)
    seqs = _put(kinesis, stream, [{"n": n} for n in range(5)])
    mapping = lam.create_event_source_mapping(
        FunctionName=fn, EventSourceArn=arn, StartingPosition="TRIM_HORIZON", BatchSize=100
    )
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["ParallelizationFactor"] == 1 and mapping["MaximumRetryAttempts"] == -1
    assert flat(read_seen(lam, fn, lambda s: len(flat(s)) >= 5)) == [0, 1, 2, 3, 4]
    record = read_events(lam, fn, 1)[0]["Records"][0]
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    approx = record["kinesis"].pop("approximateArrivalTimestamp")
    assert isinstance(approx, float) and abs(approx - time.time()) < 120
    assert record == {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "k",
            "sequenceNumber": seqs[0],
            "data": record["kinesis"]["data"],
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{seqs[0]}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": role,
        "awsRegion": "us-east-1",
        "eventSourceARN": arn,
    }
    assert json.loads(__import__("base64").b64decode(record["kinesis"]["data"])) == {"n": 0}
    # A clean stop keeps the checkpoint: after it, only what came later runs (a fresh
    # environment records what it sees).
    srv.restart()
    _put(kinesis, stream, [{"n": n} for n in range(5, 8)])
    assert read_seen(lam, fn, lambda s: len(flat(s)) >= 3) == [[5, 6, 7]]


def test_kinesis_latest_parallelization_keeps_order_per_key(srv: Server, aws_env: Moto) -> None:
    lam, kinesis = srv.client("lambda"), aws_env.client("kinesis")
    fn = consumer(lam)
    stream, arn = _stream(kinesis)
    _put(kinesis, stream, [{"n": -5}])  # before the mapping: LATEST skips it
    mapping = lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=arn,
        StartingPosition="LATEST",
        ParallelizationFactor=4,
        BatchSize=10,
        MaximumBatchingWindowInSeconds=1,
    )
    assert mapping["ParallelizationFactor"] == 4
    for n in range(12):
        _put(kinesis, stream, [{"n": n}], key=f"key{n % 3}")
    got = read_seen(lam, fn, lambda s: set(flat(s)) >= set(range(12)))
    seen_n = flat(got)
    assert -5 not in seen_n and sorted(seen_n) == list(range(12)), got
    # Batches of different keys ran side by side; each key's records stayed in order.
    for k in range(3):
        assert [n for n in seen_n if n % 3 == k] == list(range(k, 12, 3)), got


def test_kinesis_bisect_retries_then_on_failure_to_sqs(srv: Server, aws_env: Moto) -> None:
    lam, kinesis, sqs = srv.client("lambda"), aws_env.client("kinesis"), aws_env.client("sqs")
    fn = consumer(lam)
    stream, arn = _stream(kinesis)
    dest_url, dest_arn = _queue(sqs)
    seqs = _put(kinesis, stream, [{"n": 0}, {"n": 1}, {"n": 2, "fail": "raise"}, {"n": 3}])
    mapping = lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=arn,
        StartingPosition="TRIM_HORIZON",
        BatchSize=4,
        MaximumBatchingWindowInSeconds=1,
        BisectBatchOnFunctionError=True,
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": dest_arn}},
    )
    [record] = _drain(sqs, dest_url, 1)
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["functionArn"] == mapping["FunctionArn"]
    info = record["KinesisBatchInfo"]
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    assert info["shardId"] == shard and info["streamArn"] == arn and info["batchSize"] == 1
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == seqs[2]
    assert set(info) == {
        "shardId",
        "startSequenceNumber",
        "endSequenceNumber",
        "approximateArrivalOfFirstRecord",
        "approximateArrivalOfLastRecord",
        "batchSize",
        "streamArn",
    }
    # Split until the bad record was alone; the others ran and were not run again.
    got = read_seen(lam, fn, lambda s: [3] in s)
    assert got == [[0, 1, 2, 3], [0, 1], [2, 3], [2], [3]], got
    cfg = lam.get_event_source_mapping(UUID=mapping["UUID"])
    assert cfg["DestinationConfig"] == {"OnFailure": {"Destination": dest_arn}}
    assert cfg["BisectBatchOnFunctionError"] is True


def test_kinesis_report_batch_item_failures_resume_from_failed(srv: Server, aws_env: Moto) -> None:
    lam, kinesis = srv.client("lambda"), aws_env.client("kinesis")
    fn = consumer(lam)
    stream, arn = _stream(kinesis)
    _put(kinesis, stream, [{"n": 0}, {"n": 1, "fail": "once"}, {"n": 2}])
    lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=arn,
        StartingPosition="TRIM_HORIZON",
        BatchSize=3,
        MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    # The lowest failed sequence number and everything after it, as Lambda retries.
    assert read_seen(lam, fn, lambda s: len(s) >= 2) == [[0, 1, 2], [1, 2]]


def test_kinesis_killed_mid_batch_replays_it(server_factory: Any, aws_env: Moto) -> None:
    srv = server_factory(esm_retry_delay_s=0.3)
    lam, kinesis = srv.client("lambda"), aws_env.client("kinesis")
    fn = consumer(lam)
    stream, arn = _stream(kinesis)
    mark = unique("in-batch")
    _put(kinesis, stream, [{"n": 0}, {"n": 1, "sleep": 3, "mark": mark}])
    lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=arn,
        StartingPosition="TRIM_HORIZON",
        BatchSize=10,
        MaximumBatchingWindowInSeconds=1,
    )
    wait_for_log(srv, fn, mark)
    srv.kill9()
    _put(kinesis, stream, [{"n": 2}])
    srv.start()
    # The batch in flight had no checkpoint: it runs again, then what followed.
    got = read_seen(lam, fn, lambda s: 2 in flat(s))
    assert flat(got) == [0, 1, 2], got


# --- DynamoDB Streams ----------------------------------------------------------------------


def _table(ddb: Any) -> tuple[str, str]:
    name = unique("tbl")
    reply = ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return name, reply["TableDescription"]["LatestStreamArn"]


def test_dynamodb_shape_insert_modify_remove_and_on_failure(srv: Server, aws_env: Moto) -> None:
    lam, ddb, sqs = srv.client("lambda"), aws_env.client("dynamodb"), aws_env.client("sqs")
    fn = consumer(lam)
    table, arn = _table(ddb)
    dest_url, dest_arn = _queue(sqs)
    mapping = lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=arn,
        StartingPosition="LATEST",
        BatchSize=10,
        MaximumBatchingWindowInSeconds=1,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": dest_arn}},
    )
    ddb.put_item(TableName=table, Item={"id": {"S": "a"}, "n": {"N": "1"}})
    ddb.update_item(
        TableName=table,
        Key={"id": {"S": "a"}},
        UpdateExpression="SET n = :n",
        ExpressionAttributeValues={":n": {"N": "2"}},
    )
    ddb.delete_item(TableName=table, Key={"id": {"S": "a"}})
    records = wait_until(
        lambda: (r := [r for e in read_events(lam, fn, 1) for r in e["Records"]])[2:] and r,
        what="three records",
    )
    assert [r["eventName"] for r in records[:3]] == ["INSERT", "MODIFY", "REMOVE"]
    insert, modify, remove = records[:3]
    assert set(insert) >= {
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
    }
    assert insert["eventSource"] == "aws:dynamodb" and insert["eventSourceARN"] == arn
    assert insert["dynamodb"]["Keys"] == {"id": {"S": "a"}}
    assert insert["dynamodb"]["NewImage"] == {"id": {"S": "a"}, "n": {"N": "1"}}
    assert "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"]["n"] == {"N": "1"}
    assert modify["dynamodb"]["NewImage"]["n"] == {"N": "2"}
    assert (
        remove["dynamodb"]["OldImage"]["n"] == {"N": "2"} and "NewImage" not in remove["dynamodb"]
    )
    assert isinstance(insert["dynamodb"]["ApproximateCreationDateTime"], int | float)
    assert insert["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    # A record the function always fails on: no retries (MaximumRetryAttempts 0), then
    # OnFailure gets the batch's description.
    ddb.put_item(TableName=table, Item={"id": {"S": "b"}, "n": {"N": "9"}, "fail": {"S": "raise"}})
    [record] = _drain(sqs, dest_url, 1)
    info = record["DDBStreamBatchInfo"]
    assert info["streamArn"] == arn and info["batchSize"] == 1
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert lam.get_event_source_mapping(UUID=mapping["UUID"])["MaximumRetryAttempts"] == 0


def test_dynamodb_killed_mid_batch_loses_nothing(server_factory: Any, aws_env: Moto) -> None:
    srv = server_factory(esm_retry_delay_s=0.3)
    lam, ddb = srv.client("lambda"), aws_env.client("dynamodb")
    fn = consumer(lam)
    table, arn = _table(ddb)
    lam.create_event_source_mapping(
        FunctionName=fn, EventSourceArn=arn, StartingPosition="TRIM_HORIZON", BatchSize=10
    )
    mark = unique("in-batch")
    ddb.put_item(
        TableName=table,
        Item={"id": {"S": "x"}, "n": {"N": "1"}, "sleep": {"N": "3"}, "mark": {"S": mark}},
    )
    wait_for_log(srv, fn, mark)
    srv.kill9()
    ddb.put_item(TableName=table, Item={"id": {"S": "y"}, "n": {"N": "2"}})
    srv.start()
    got = read_seen(lam, fn, lambda s: 2 in flat(s))
    assert flat(got) == [1, 2], got
