"""Shared by the tests of AWS-shaped event sources (SQS, Kinesis, DynamoDB Streams, S3, SNS,
PostgreSQL changes): a function that records what it receives, and ways to read it back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from conftest import python_function, unique

# Records every batch as the list of its items' "n" (an int), keeps the raw events, and
# fails items asked to ("fail": "once" the first time, "always" every time, "raise" fails
# the whole batch); an item's "mark" is printed before it sleeps its "sleep".
# {"read": true} returns the batches, {"events": true} the raw events.
HANDLER = """
import base64, json, time

seen = []
events = []
failed_once = set()


def item(r):
    src = r.get("eventSource") or r.get("EventSource")
    if src == "aws:sqs":
        return r["messageId"], json.loads(r["body"])
    if src == "aws:kinesis":
        return r["kinesis"]["sequenceNumber"], json.loads(base64.b64decode(r["kinesis"]["data"]))
    if src == "aws:dynamodb":
        d = r["dynamodb"]
        image = d.get("NewImage") or d.get("OldImage") or d["Keys"]
        return d["SequenceNumber"], {k: list(v.values())[0] for k, v in image.items()}
    if src == "aws:sns":
        return r["Sns"]["MessageId"], json.loads(r["Sns"]["Message"])
    if src == "aws:s3":
        return r["s3"]["object"]["key"], {"n": r["s3"]["object"]["key"]}
    return "x", {"n": -1}


def handler(event, context):
    if event.get("read"):
        return seen
    if event.get("events"):
        return events
    events.append(event)
    batch, fails = [], []
    for r in event.get("Records", []):
        ident, body = item(r)
        n = body.get("n", -1)
        try:
            n = int(n)
        except (TypeError, ValueError):
            pass
        batch.append(n)
        mode = body.get("fail")
        if mode == "always" or (mode == "once" and ident not in failed_once):
            failed_once.add(ident)
            fails.append(ident)
        if body.get("mark"):
            print(body["mark"], flush=True)
        if body.get("sleep"):
            time.sleep(float(body["sleep"]))
    seen.append(batch)
    if any(item(r)[1].get("fail") == "raise" for r in event.get("Records", [])):
        raise RuntimeError("this batch fails")
    return {"batchItemFailures": [{"itemIdentifier": i} for i in fails]}
"""


def consumer(lam: Any, name: str | None = None, timeout_s: int = 30) -> str:
    """A recording function with one environment (its state is what tests read)."""
    name = name or unique("src")
    python_function(lam, name, HANDLER, Timeout=timeout_s)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    return name


def _call(lam: Any, name: str, ask: dict[str, Any]) -> Any:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(ask))
    return json.loads(resp["Payload"].read())


def read_seen(
    lam: Any, name: str, done: Callable[[list[Any]], bool], timeout_s: float = 30.0
) -> list[Any]:
    """The recorded batches once ``done`` holds for them (or the last seen at the deadline)."""
    deadline = time.monotonic() + timeout_s
    got: list[Any] = []
    while time.monotonic() < deadline:
        try:
            got = _call(lam, name, {"read": True})
            if done(got):
                return got
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TooManyRequestsException":
                raise
        time.sleep(0.2)
    return got


def read_events(lam: Any, name: str, count: int, timeout_s: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    got: list[Any] = []
    while time.monotonic() < deadline:
        try:
            got = _call(lam, name, {"events": True})
            if len(got) >= count:
                return got
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TooManyRequestsException":
                raise
        time.sleep(0.2)
    return got


def flat(batches: list[list[Any]]) -> list[Any]:
    return [n for b in batches for n in b]


def wait_until(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "") -> Any:
    """``check()`` once it returns something true, polled with a deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.1)
