"""S3 object events from an S3-compatible store (Ceph's radosgw, tests/rgw.py): the store's
own bucket notifications push to Firebox, and each becomes an asynchronous invoke with
AWS's S3 event."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

import rgw
from aws_sources import consumer, flat, read_events, read_seen, wait_until
from conftest import Server
from services import s3_client


@pytest.fixture
def srv(server_factory: Any, s3_env: rgw.Rgw) -> Server:
    return server_factory(async_throttle_delay_s=0.2, async_throttle_max_delay_s=1)


def _ours(s3: Any, bucket: str) -> list[Any]:
    config = s3.get_bucket_notification_configuration(Bucket=bucket)
    return [c for c in config.get("TopicConfigurations", []) if c["Id"].startswith("firebox-")]


def test_s3_object_events_shape_filter_and_teardown(
    srv: Server, s3_env: rgw.Rgw, s3_bucket: str
) -> None:
    lam, s3 = srv.client("lambda"), s3_client(s3_env)
    fn = consumer(lam)
    mapping = lam.create_event_source_mapping(
        FunctionName=fn,
        EventSourceArn=f"arn:aws:s3:::{s3_bucket}",
        FilterCriteria={
            "Filters": [
                {
                    "Pattern": json.dumps(
                        {
                            "eventName": [{"prefix": "ObjectCreated:"}],
                            "s3": {"object": {"key": [{"prefix": "in/"}]}},
                        }
                    )
                }
            ]
        },
    )
    assert mapping["EventSourceArn"] == f"arn:aws:s3:::{s3_bucket}"
    [config] = _ours(s3, s3_bucket)
    assert set(config["Events"]) == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}
    put = s3.put_object(Bucket=s3_bucket, Key="in/a b.txt", Body=b"hello")
    s3.put_object(Bucket=s3_bucket, Key="other/b.txt", Body=b"x")
    s3.delete_object(Bucket=s3_bucket, Key="in/a b.txt")
    s3.put_object(Bucket=s3_bucket, Key="in/c.txt", Body=b"second")
    got = read_seen(lam, fn, lambda s: len(s) >= 2)
    # One invoke per notification; only the created objects under in/ passed the filter.
    assert sorted(flat(got)) == ["in/a+b.txt", "in/c.txt"], got
    [event] = [
        e for e in read_events(lam, fn, 2) if e["Records"][0]["s3"]["object"]["key"] == "in/a+b.txt"
    ]
    [record] = event["Records"]
    assert record["eventVersion"] == "2.1" and record["eventSource"] == "aws:s3"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["awsRegion"] == "us-east-1" and record["eventTime"]
    assert record["s3"]["bucket"]["name"] == s3_bucket
    assert record["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{s3_bucket}"
    obj = record["s3"]["object"]
    assert obj["size"] == 5 and obj["eTag"] == put["ETag"].strip('"') and obj["sequencer"]
    assert set(record) == {
        "eventVersion",
        "eventSource",
        "awsRegion",
        "eventTime",
        "eventName",
        "userIdentity",
        "requestParameters",
        "responseElements",
        "s3",
    }
    # Deleting the mapping removes its configuration from the bucket.
    lam.delete_event_source_mapping(UUID=mapping["UUID"])
    wait_until(lambda: not _ours(s3, s3_bucket), what="the notification to be removed")


def test_s3_push_endpoint_refuses_strangers(srv: Server, s3_env: rgw.Rgw, s3_bucket: str) -> None:
    lam = srv.client("lambda")
    fn = consumer(lam)
    mapping = lam.create_event_source_mapping(
        FunctionName=fn, EventSourceArn=f"arn:aws:s3:::{s3_bucket}"
    )
    body = json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}).encode()
    for path in (
        f"/_firebox/push/s3/{mapping['UUID']}/guessed",
        "/_firebox/push/s3/no-such-mapping/x",
        f"/_firebox/push/sns/{mapping['UUID']}/guessed",
    ):
        request = urllib.request.Request(srv.endpoint + path, data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(request, timeout=10)
        assert exc.value.code == 403, path


@pytest.mark.xfail(
    strict=False,
    reason="radosgw 16.2 (Debian 12) was seen not to push again, within 4 minutes, a "
    "persistent notification whose push found Firebox down; it passes when the store's "
    "first push comes after the restart",
)
def test_s3_object_written_while_firebox_is_down_is_delivered(
    server_factory: Any, s3_env: rgw.Rgw, s3_bucket: str
) -> None:
    srv = server_factory(async_throttle_delay_s=0.2, async_throttle_max_delay_s=1)
    lam, s3 = srv.client("lambda"), s3_client(s3_env)
    fn = consumer(lam)
    lam.create_event_source_mapping(FunctionName=fn, EventSourceArn=f"arn:aws:s3:::{s3_bucket}")
    s3.put_object(Bucket=s3_bucket, Key="before", Body=b"1")
    assert flat(read_seen(lam, fn, lambda s: "before" in flat(s))) == ["before"]
    srv.kill9()
    s3.put_object(Bucket=s3_bucket, Key="while-down", Body=b"2")
    srv.start()
    # The store kept the notification (a persistent topic) and delivers it now.
    got = read_seen(lam, fn, lambda s: "while-down" in flat(s), timeout_s=60)
    assert "while-down" in flat(got), got
