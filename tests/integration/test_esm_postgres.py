"""Changes of a PostgreSQL table as DynamoDB-Streams-shaped records (a trigger-based change
table), against the real PostgreSQL on this machine, in a database of the test's own."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from aws_sources import consumer, flat, read_events, read_seen, wait_until
from conftest import Server, unique, wait_for_log

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def db(pg_url: str) -> Any:
    conn = psycopg.connect(pg_url, autocommit=True)
    conn.execute(
        "CREATE TABLE public.orders (id int PRIMARY KEY, n int, note text, price numeric(12,4),"
        " sleep float, mark text, fail text)"
    )
    yield conn
    conn.close()


def _arn(url: str) -> str:
    return f"arn:aws:postgres:::{url}"


def test_pg_changes_shape_order_and_removal(server_factory: Any, db: Any, pg_url: str) -> None:
    srv = server_factory(esm_retry_delay_s=0.3)
    lam = srv.client("lambda")
    fn = consumer(lam)
    db.execute("INSERT INTO orders (id, n) VALUES (100, -1)")  # before: LATEST skips it
    mapping = lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=_arn(pg_url),
        Topics=["public.orders"],
        StartingPosition="LATEST",
        BatchSize=10,
        MaximumBatchingWindowInSeconds=1,
    )
    assert mapping["Topics"] == ["public.orders"] and mapping["StartingPosition"] == "LATEST"
    with db.transaction():
        db.execute("INSERT INTO orders (id, n, note, price) VALUES (1, 1, 'a', 12.3400)")
        db.execute("INSERT INTO orders (id, n) VALUES (2, 2)")
    db.execute("UPDATE orders SET n = 3, note = NULL WHERE id = 1")
    db.execute("DELETE FROM orders WHERE id = 2")
    with pytest.raises(psycopg.errors.UniqueViolation), db.transaction():
        db.execute("INSERT INTO orders (id, n) VALUES (1, 99)")  # rolled back: never seen
    records = wait_until(
        lambda: (r := [r for e in read_events(lam, fn, 1) for r in e["Records"]])[3:] and r,
        what="four records",
    )
    assert [r["eventName"] for r in records] == ["INSERT", "INSERT", "MODIFY", "REMOVE"]
    insert, _, modify, remove = records
    assert insert["eventSource"] == "aws:dynamodb" and insert["eventVersion"] == "1.1"
    assert insert["eventSourceARN"] == _arn(pg_url) and insert["awsRegion"] == "us-east-1"
    body = insert["dynamodb"]
    assert body["Keys"] == {"id": {"N": "1"}}
    assert body["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert body["NewImage"]["price"] == {"N": "12.3400"}  # numbers keep their digits
    assert body["NewImage"]["note"] == {"S": "a"} and body["NewImage"]["sleep"] == {"NULL": True}
    assert "OldImage" not in body
    assert isinstance(body["ApproximateCreationDateTime"], float)
    assert isinstance(body["SizeBytes"], int) and body["SizeBytes"] > 0
    assert modify["dynamodb"]["OldImage"]["n"] == {"N": "1"}
    assert modify["dynamodb"]["NewImage"]["note"] == {"NULL": True}
    assert remove["dynamodb"]["Keys"] == {"id": {"N": "2"}} and "NewImage" not in remove["dynamodb"]
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    # Deleting the mapping removes the trigger and, the last mapping gone, the schema.
    lam.delete_event_source_mapping(UUID=mapping["UUID"])
    wait_until(
        lambda: (
            db.execute(
                "SELECT count(*) FROM pg_namespace WHERE nspname = 'firebox_cdc'"
            ).fetchone()[0]
            == 0
        ),
        what="the capture schema to be dropped",
    )
    assert (
        db.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'firebox_cdc'").fetchone()[0]
        == 0
    )


def test_pg_changes_nothing_lost_when_down_killed_or_disconnected(
    server_factory: Any, db: Any, pg_url: str
) -> None:
    srv = server_factory(esm_retry_delay_s=0.3)
    lam = srv.client("lambda")
    fn = consumer(lam)
    lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=_arn(pg_url),
        Topics=["public.orders"],
        StartingPosition="TRIM_HORIZON",
        BatchSize=10,
    )
    db.execute("INSERT INTO orders (id, n) VALUES (1, 1)")
    assert flat(read_seen(lam, fn, lambda s: 1 in flat(s))) == [1]
    # Killed in the middle of a batch: the batch had no checkpoint, it runs again.
    mark = unique("in-batch")
    db.execute(f"INSERT INTO orders (id, n, sleep, mark) VALUES (2, 2, 3, '{mark}')")
    wait_for_log(srv, fn, mark)
    srv.kill9()
    # Changes made while Firebox is down are kept by the database.
    db.execute("INSERT INTO orders (id, n) VALUES (3, 3)")
    db.execute("UPDATE orders SET n = 4 WHERE id = 3")
    srv.start()
    assert flat(read_seen(lam, fn, lambda s: 4 in flat(s))) == [2, 3, 4]
    # The database drops Firebox's connections (as a restart does): it reconnects.
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    db.execute("INSERT INTO orders (id, n) VALUES (5, 5)")
    assert flat(read_seen(lam, fn, lambda s: 5 in flat(s))) == [2, 3, 4, 5]


def test_pg_changes_failures_go_to_on_failure_with_payload(
    server_factory: Any, db: Any, pg_url: str
) -> None:
    from test_events import recorder, seen

    srv = server_factory(esm_retry_delay_s=0.3)
    lam = srv.client("lambda")
    fn = consumer(lam)
    dest = recorder(lam)
    dest_arn = lam.get_function(FunctionName=dest)["Configuration"]["FunctionArn"]
    mapping = lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=_arn(pg_url + "?view=NEW_IMAGE"),
        Topics=["public.orders"],
        StartingPosition="TRIM_HORIZON",
        BatchSize=10,
        MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": dest_arn}},
    )
    with db.transaction():
        db.execute("INSERT INTO orders (id, n) VALUES (1, 1)")
        db.execute("INSERT INTO orders (id, n, fail) VALUES (2, 2, 'always')")
        db.execute("INSERT INTO orders (id, n) VALUES (3, 3)")
    [record] = seen(lam, dest, 1)
    info = record["DDBStreamBatchInfo"]
    assert info["batchSize"] == 2 and info["streamArn"] == mapping["EventSourceArn"]
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    # The change table keeps nothing once read: the record carries the records.
    assert [r["dynamodb"]["NewImage"]["n"] for r in record["payload"]["Records"]] == [
        {"N": "2"},
        {"N": "3"},
    ]
    assert all("OldImage" not in r["dynamodb"] for r in record["payload"]["Records"])
    # Tried, then retried from the failed record on, then given up: nothing after it.
    got = read_seen(lam, fn, lambda s: len(s) >= 2)
    assert got == [[1, 2, 3], [2, 3]], got
    db.execute("INSERT INTO orders (id, n) VALUES (4, 4)")
    assert read_seen(lam, fn, lambda s: [4] in s) == [[1, 2, 3], [2, 3], [4]]


def test_pg_mapping_validation(server_factory: Any, db: Any, pg_url: str) -> None:
    srv: Server = server_factory()
    lam = srv.client("lambda")
    fn = consumer(lam)
    for topics, bad_table in ((["orders"], "orders"), (["public.nope"], None)):
        with pytest.raises(ClientError) as exc:
            lam.create_event_source_mapping(
                FunctionName=fn, EventSourceArn=_arn(pg_url), Topics=topics
            )
        error = exc.value.response["Error"]
        assert error["Code"] == "InvalidParameterValueException", error
        if bad_table:
            assert (
                error["Message"] == f"Topics must name one table as schema.table, got {bad_table!r}"
            )
        else:
            assert "public.nope" in error["Message"], error
    assert (
        json.loads(json.dumps(lam.list_event_source_mappings(FunctionName=fn)))[
            "EventSourceMappings"
        ]
        == []
    )
