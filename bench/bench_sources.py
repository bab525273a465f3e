"""Event sources: records per second drained from SQS, Kinesis, DynamoDB Streams and a
PostgreSQL table by a mapping, each next to the source's own raw read rate in the same run
(the same client library reading the same number of records with no function).

    python bench/bench_sources.py [--records 10000] [--sqs-records 300] [--sandbox unsandboxed]

SQS, Kinesis and DynamoDB Streams are moto's server (started here, on loopback): a
stand-in for AWS whose own speed bounds both figures, so read the ratio, not the rate.
PostgreSQL is the server on this machine (a database made and dropped here).

- SQS: drained = from CreateEventSourceMapping until the queue is empty (messages are
  deleted after the function succeeded), BatchSize 10, 5 pollers; raw = one client
  receiving 10 at a time and deleting them in batches. (moto's SQS answers a receive in
  about 1 s on a deep queue, hence fewer records.)
- Streams: drained = from CreateEventSourceMapping (TRIM_HORIZON, BatchSize 500) until the
  function has counted every record (one environment); raw = GetRecords from the start
  (PostgreSQL: reading the rows by primary key, 500 at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_triggers import _call, create_mapping, wait_until  # noqa: E402
from run import FireboxServer, choose_sandbox, free_port, log, running, zip_of  # noqa: E402

Row = tuple[str, float, str]
COUNTER = """
count = 0


def handler(event, context):
    global count
    if "count" in event:
        return count
    count += len(event.get("Records", []))
    return {}
"""
PG_SERVER = os.environ.get("FIREBOX_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/", timeout=1):
                return proc, endpoint
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto's server did not start") from None
            time.sleep(0.1)


def client(endpoint: str, service: str) -> Any:
    import boto3

    return boto3.session.Session().client(service, endpoint_url=endpoint, region_name="us-east-1")


def counter_function(srv: FireboxServer, name: str) -> None:
    _call(srv, srv.create_request(name, "python3.11", "app.handler", zip_of({"app.py": COUNTER})))
    _call(
        srv,
        srv.request(
            "PUT",
            f"/2017-10-31/functions/{name}/concurrency",
            json.dumps({"ReservedConcurrentExecutions": 1}).encode(),
        ),
    )
    wait_until(
        lambda: (
            _call(srv, srv.request("GET", f"/2015-03-31/functions/{name}/configuration")).get(
                "State"
            )
            == "Active"
        ),
        30,
    )


def counted(srv: FireboxServer, name: str) -> int:
    try:
        return int(_call(srv, srv.invoke_request(name, json.dumps({"count": 1}).encode())))
    except RuntimeError:  # 429 while the one environment runs a batch
        return -1


def drain_rate(srv: FireboxServer, fn: str, n: int, **mapping: Any) -> float:
    counter_function(srv, fn)
    t0 = time.perf_counter()
    create_mapping(srv, fn, **mapping)
    wait_until(lambda: counted(srv, fn) >= n)
    return n / (time.perf_counter() - t0)


def sqs_rows(srv: FireboxServer, endpoint: str, n: int) -> list[Row]:
    sqs = client(endpoint, "sqs")
    body = json.dumps({"k": "v" * 100})

    def fill(name: str) -> tuple[str, str]:
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        for i in range(0, n, 10):
            sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(j), "MessageBody": body} for j in range(min(10, n - i))],
            )
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return url, arn

    raw_url, _ = fill(f"raw-{time.time_ns()}")
    t0 = time.perf_counter()
    got = 0
    while got < n:
        msgs = sqs.receive_message(QueueUrl=raw_url, MaxNumberOfMessages=10).get("Messages", [])
        if msgs:
            sqs.delete_message_batch(
                QueueUrl=raw_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
                ],
            )
        got += len(msgs)
    raw = n / (time.perf_counter() - t0)
    url, arn = fill(f"esm-{time.time_ns()}")
    _call(
        srv,
        srv.create_request("sqsbench", "python3.11", "app.handler", zip_of({"app.py": COUNTER})),
    )
    t0 = time.perf_counter()
    create_mapping(srv, "sqsbench", EventSourceArn=arn, BatchSize=10)

    def empty() -> bool:
        a = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])
            == 0
        )

    wait_until(empty)
    rate = n / (time.perf_counter() - t0)
    return [
        ("SQS drained", rate, f"{rate / raw:.2f}x raw, batch 10, 5 pollers"),
        ("SQS raw", raw, "boto3 receive 10 + delete batch, one client"),
    ]


def kinesis_rows(srv: FireboxServer, endpoint: str, n: int) -> list[Row]:
    kinesis = client(endpoint, "kinesis")
    name = f"bench-{time.time_ns()}"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    data = json.dumps({"k": "v" * 100}).encode()
    for i in range(0, n, 500):
        kinesis.put_records(
            StreamName=name,
            Records=[{"Data": data, "PartitionKey": str(j)} for j in range(min(500, n - i))],
        )
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    t0 = time.perf_counter()
    it = kinesis.get_shard_iterator(
        StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    got = 0
    while got < n:
        reply = kinesis.get_records(ShardIterator=it, Limit=500)
        got += len(reply["Records"])
        it = reply["NextShardIterator"]
    raw = n / (time.perf_counter() - t0)
    rate = drain_rate(
        srv, "kinbench", n, EventSourceArn=arn, StartingPosition="TRIM_HORIZON", BatchSize=500
    )
    return [
        ("Kinesis drained", rate, f"{rate / raw:.2f}x raw, batch 500, 1 shard"),
        ("Kinesis raw", raw, "boto3 GetRecords 500 at a time"),
    ]


def dynamodb_rows(srv: FireboxServer, endpoint: str, n: int) -> list[Row]:
    ddb, streams = client(endpoint, "dynamodb"), client(endpoint, "dynamodbstreams")
    name = f"bench-{time.time_ns()}"
    arn = ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    for i in range(0, n, 25):
        ddb.batch_write_item(
            RequestItems={
                name: [
                    {"PutRequest": {"Item": {"id": {"S": str(j)}, "v": {"S": "v" * 100}}}}
                    for j in range(i, min(i + 25, n))
                ]
            }
        )
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    t0 = time.perf_counter()
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    got = 0
    while got < n:
        reply = streams.get_records(ShardIterator=it, Limit=500)
        got += len(reply["Records"])
        it = reply["NextShardIterator"]
    raw = n / (time.perf_counter() - t0)
    rate = drain_rate(
        srv, "ddbbench", n, EventSourceArn=arn, StartingPosition="TRIM_HORIZON", BatchSize=500
    )
    return [
        ("DynamoDB Streams drained", rate, f"{rate / raw:.2f}x raw, batch 500"),
        ("DynamoDB Streams raw", raw, "boto3 GetRecords 500 at a time"),
    ]


def postgres_rows(srv: FireboxServer, n: int) -> list[Row]:
    import psycopg

    db = f"fbbench_{os.getpid()}_{time.time_ns() % 10**6}"
    with psycopg.connect(PG_SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    url = PG_SERVER.rsplit("/", 1)[0] + "/" + db
    insert = "INSERT INTO items SELECT g, repeat('v', 100) FROM generate_series(0, %s) g"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
            t0 = time.perf_counter()
            conn.execute(insert, (n - 1,))
            plain_insert = n / (time.perf_counter() - t0)
            last, got = -1, 0
            t0 = time.perf_counter()
            while got < n:
                rows = conn.execute(
                    "SELECT id, v FROM items WHERE id > %s ORDER BY id LIMIT 500", (last,)
                ).fetchall()
                got += len(rows)
                last = rows[-1][0]
            raw = n / (time.perf_counter() - t0)
            conn.execute("TRUNCATE items")
        counter_function(srv, "pgbench")
        create_mapping(
            srv,
            "pgbench",
            EventSourceArn=f"arn:aws:postgres:::{url}",
            Topics=["public.items"],
            StartingPosition="LATEST",
            BatchSize=500,
        )
        with psycopg.connect(url, autocommit=True) as conn:
            t0 = time.perf_counter()
            conn.execute(insert, (n - 1,))
            captured_insert = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        wait_until(lambda: counted(srv, "pgbench") >= n)
        rate = n / (time.perf_counter() - t0)
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return [
        ("PostgreSQL changes drained", rate, f"{rate / raw:.2f}x raw, batch 500, from the commit"),
        ("PostgreSQL raw", raw, "psycopg SELECT by primary key, 500 at a time"),
        (
            "PostgreSQL insert, captured",
            captured_insert,
            f"{captured_insert / plain_insert:.2f}x without the trigger (one statement)",
        ),
        ("PostgreSQL insert, plain", plain_insert, "the same INSERT, no trigger"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--sqs-records", type=int, default=300)
    ap.add_argument("--sandbox", default=None, help="process or unsandboxed")
    ap.add_argument("--only", default="sqs,kinesis,dynamodb,postgres", help="comma list")
    args = ap.parse_args()
    only = set(args.only.split(","))
    sandbox, why = choose_sandbox(args.sandbox)
    log(f"sandbox {sandbox}: {why}")
    moto, endpoint = start_moto()
    for service in ("SQS", "SNS", "KINESIS", "DYNAMODB", "DYNAMODB_STREAMS"):
        os.environ[f"AWS_ENDPOINT_URL_{service}"] = endpoint
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDBENCH")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory(prefix="firebox-bench-") as tmp:
            srv = FireboxServer(Path(tmp) / "data", sandbox).start()
            with running(srv):
                for name, fn in (
                    ("sqs", lambda: sqs_rows(srv, endpoint, args.sqs_records)),
                    ("kinesis", lambda: kinesis_rows(srv, endpoint, args.records)),
                    ("dynamodb", lambda: dynamodb_rows(srv, endpoint, args.records)),
                    ("postgres", lambda: postgres_rows(srv, args.records)),
                ):
                    if name not in only:
                        continue
                    log(name)
                    try:
                        rows += fn()
                    except Exception as exc:  # noqa: BLE001 - a source that is not there
                        rows.append((f"{name} skipped", 0.0, f"{type(exc).__name__}: {exc}"))
    finally:
        moto.terminate()
        moto.wait(10)
    print(f"{'figure':<28} {'per second':>11}  notes")
    for figure, rate, note in rows:
        print(f"{figure:<28} {rate:>11.0f}  {note}")
    for figure, rate, note in rows:
        print(
            json.dumps(
                {"figure": figure, "per_s": round(rate, 1), "notes": note, "sandbox": sandbox}
            )
        )


if __name__ == "__main__":
    main()
