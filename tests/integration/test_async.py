"""Asynchronous invocation through boto3: 202 then execution, retries, destinations,
dead letters, event age, throttling, event invoke configs, InvokeAsync, queue stats.

What runs is observed through a 'sink' function used as a destination: it keeps the
records it receives in memory (reserved concurrency 1 keeps it to one environment) and
returns them to a synchronous 'probe' invoke.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import Server, python_function, unique, wait_queue_drained
from shapes import assert_shape

TARGET = """
import time
def handler(event, context):
    if event.get("mark"):
        print(event["mark"], flush=True)
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True, "got": event}
"""

SINK = """
RECORDS = []
def handler(event, context):
    if isinstance(event, dict) and event.get("probe"):
        return RECORDS
    RECORDS.append(event)
    return {"n": len(RECORDS)}
"""

FAST = {
    "async_retry_delays_s": (0.2, 0.4),
    "async_throttle_delay_s": 0.1,
    "async_throttle_max_delay_s": 0.5,
    "async_min_event_age_s": 1,
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = Server(tmp_path_factory.mktemp("async") / "data", **FAST).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lam(srv: Server) -> Any:
    return srv.client("lambda")


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def make_sink(lam: Any) -> tuple[str, str]:
    name = unique("sink")
    arn = python_function(lam, name, SINK)["FunctionArn"]
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    return name, arn


def probe(lam: Any, sink: str) -> list[Any]:
    for _ in range(200):
        try:
            resp = lam.invoke(FunctionName=sink, Payload=json.dumps({"probe": True}))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TooManyRequestsException":
                time.sleep(0.05)  # a destination delivery holds the sink's one slot
                continue
            raise
        return list(json.loads(resp["Payload"].read()))
    raise AssertionError("sink stayed throttled")


def wait_records(lam: Any, sink: str, count: int, timeout_s: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    records = probe(lam, sink)
    while len(records) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        records = probe(lam, sink)
    assert len(records) >= count, f"{len(records)} of {count} records after {timeout_s}s"
    return records


def send_event(lam: Any, name: str, event: Any, **kwargs: Any) -> str:
    resp = lam.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps(event), **kwargs
    )
    assert resp["StatusCode"] == 202
    assert resp["Payload"].read() == b""
    return str(resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"])


def test_event_returns_202_then_runs_and_sends_success_record(lam: Any) -> None:
    sink, sink_arn = make_sink(lam)
    name = unique("target")
    arn = python_function(lam, name, TARGET)["FunctionArn"]
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": sink_arn}}
    )
    rid = send_event(lam, name, {"k": 1})

    (record,) = wait_records(lam, sink, 1)
    assert record["version"] == "1.0"
    assert record["timestamp"].endswith("Z")
    ctx = record["requestContext"]
    assert ctx == {
        "requestId": rid,
        "functionArn": arn + ":$LATEST",
        "condition": "Success",
        "approximateInvokeCount": 1,
    }
    assert record["requestPayload"] == {"k": 1}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"ok": True, "got": {"k": 1}}


def test_function_error_is_retried_then_sent_to_on_failure(srv: Server, lam: Any) -> None:
    sink, sink_arn = make_sink(lam)
    name = unique("failing")
    python_function(lam, name, TARGET)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    on_failure = {"OnFailure": {"Destination": sink_arn}}
    # Default retries (2) on the unqualified function, none on the alias.
    lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig=on_failure)
    lam.put_function_event_invoke_config(
        FunctionName=name, Qualifier="live", MaximumRetryAttempts=0, DestinationConfig=on_failure
    )
    rid_latest = send_event(lam, name, {"fail": True, "n": 1})
    rid_alias = send_event(lam, name, {"fail": True, "n": 2}, Qualifier="live")

    records = {r["requestContext"]["requestId"]: r for r in wait_records(lam, sink, 2)}
    latest, alias = records[rid_latest], records[rid_alias]
    assert latest["requestContext"]["condition"] == "RetriesExhausted"
    assert latest["requestContext"]["approximateInvokeCount"] == 3
    assert alias["requestContext"]["approximateInvokeCount"] == 1
    assert alias["requestContext"]["functionArn"].endswith(f":function:{name}:live")
    assert latest["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert alias["responseContext"]["executedVersion"] == "1"
    assert latest["responsePayload"]["errorType"] == "ValueError"
    assert latest["requestPayload"] == {"fail": True, "n": 1}
    # Each event ends once: with both queues empty, no retry or record is left to come.
    wait_queue_drained(srv, name)
    wait_queue_drained(srv, sink)
    assert len(probe(lam, sink)) == 2


def test_event_older_than_maximum_age_goes_to_on_failure(srv: Server, lam: Any) -> None:
    sink, sink_arn = make_sink(lam)
    name = unique("throttled")
    python_function(lam, name, TARGET)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    # The server's floor is lowered to 1 s (AWS: 60); botocore checks the 60 itself.
    srv.client("lambda", parameter_validation=False).put_function_event_invoke_config(
        FunctionName=name,
        MaximumEventAgeInSeconds=1,
        DestinationConfig={"OnFailure": {"Destination": sink_arn}},
    )
    start = time.monotonic()
    rid = send_event(lam, name, {"x": 1})
    (record,) = wait_records(lam, sink, 1, timeout_s=15)
    assert time.monotonic() - start >= 1.0
    assert record["requestContext"]["requestId"] == rid
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in record


def test_throttled_events_wait_and_all_run(lam: Any) -> None:
    sink, sink_arn = make_sink(lam)
    name = unique("slow")
    python_function(lam, name, TARGET, Timeout=10)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnSuccess": {"Destination": sink_arn}},
    )
    rids = {send_event(lam, name, {"sleep": 0.2, "i": i}) for i in range(8)}
    records = wait_records(lam, sink, 8, timeout_s=40)
    assert {r["requestContext"]["requestId"] for r in records} == rids
    assert all(r["requestContext"]["condition"] == "Success" for r in records)


def test_dead_letter_config_lambda_gets_the_event(lam: Any) -> None:
    sink, sink_arn = make_sink(lam)
    name = unique("dlq")
    python_function(lam, name, TARGET, DeadLetterConfig={"TargetArn": sink_arn})
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    send_event(lam, name, {"fail": True, "payload": "original"})
    (event,) = wait_records(lam, sink, 1)
    assert event == {"fail": True, "payload": "original"}


def test_unreachable_dead_letter_target_is_kept_and_counted(srv: Server, lam: Any) -> None:
    name = unique("sqsdlq")
    queue_arn = "arn:aws:sqs:us-east-1:000000000000:my-dlq"
    python_function(lam, name, TARGET, DeadLetterConfig={"TargetArn": queue_arn})
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    rid = send_event(lam, name, {"fail": True})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stats = srv.signed_get("/_firebox/queues").get(name)
        if stats and stats["dead_lettered"] == 1:
            break
        time.sleep(0.1)
    assert stats == {"depth": 0, "oldest_age_s": 0.0, "in_flight": 0, "dead_lettered": 1}
    (letter,) = srv.signed_get(f"/_firebox/dead-letters?FunctionName={name}")["DeadLetters"]
    assert letter["request_id"] == rid
    assert letter["target"] == queue_arn
    assert letter["reason"] == "RetriesExhausted"
    assert json.loads(letter["payload"]) == {"fail": True}
    assert letter["invoke_count"] == 1


def test_queue_endpoint_needs_a_signature(srv: Server) -> None:
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(srv.endpoint + "/_firebox/queues", timeout=5)
    assert exc.value.code == 403


def test_queue_depth_and_deleted_function_events_go_to_dead_letters(srv: Server, lam: Any) -> None:
    name = unique("deleted")
    python_function(lam, name, TARGET)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    for i in range(3):
        send_event(lam, name, {"i": i})
    stats = srv.signed_get("/_firebox/queues")[name]
    assert stats["depth"] == 3
    assert 0.0 <= stats["oldest_age_s"] < 30.0
    lam.delete_function(FunctionName=name)
    stats = srv.signed_get("/_firebox/queues")[name]
    assert stats["depth"] == 0 and stats["dead_lettered"] == 3
    letters = srv.signed_get(f"/_firebox/dead-letters?FunctionName={name}")["DeadLetters"]
    assert sorted(json.loads(d["payload"])["i"] for d in letters) == [0, 1, 2]
    assert {d["reason"] for d in letters} == {"FunctionDeleted"}


def test_event_validation_errors(lam: Any) -> None:
    name = unique("val")
    python_function(lam, name, TARGET)
    with pytest.raises(ClientError) as exc:
        lam.invoke(
            FunctionName=name,
            InvocationType="Event",
            Payload=json.dumps({"a": "x" * (1024 * 1024)}),
        )
    assert error_of(exc) == ("RequestTooLargeException", 413)
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"{not json")
    assert error_of(exc) == ("InvalidRequestContentException", 400)
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=unique("missing"), InvocationType="Event", Payload=b"{}")
    assert error_of(exc) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}", Qualifier="nope")
    assert error_of(exc) == ("ResourceNotFoundException", 404)


def test_invoke_async_legacy_api(lam: Any) -> None:
    sink, sink_arn = make_sink(lam)
    name = unique("legacy")
    python_function(lam, name, TARGET)
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": sink_arn}}
    )
    resp = lam.invoke_async(FunctionName=name, InvokeArgs=json.dumps({"legacy": True}))
    assert resp["Status"] == 202
    (record,) = wait_records(lam, sink, 1)
    assert record["requestPayload"] == {"legacy": True}


def test_event_invoke_config_api(lam: Any) -> None:
    name = unique("eic")
    arn = python_function(lam, name, TARGET)["FunctionArn"]
    other = unique("other")
    other_arn = python_function(lam, other, TARGET)["FunctionArn"]

    with pytest.raises(ClientError) as exc:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert error_of(exc) == ("ResourceNotFoundException", 404)

    put = lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=1,
        MaximumEventAgeInSeconds=3600,
        DestinationConfig={"OnFailure": {"Destination": other_arn}},
    )
    assert_shape("lambda", "PutFunctionEventInvokeConfig", put)
    assert put["FunctionArn"] == arn + ":$LATEST"
    assert put["MaximumRetryAttempts"] == 1 and put["MaximumEventAgeInSeconds"] == 3600
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {"Destination": other_arn}}

    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert_shape("lambda", "GetFunctionEventInvokeConfig", got)
    assert got["DestinationConfig"] == put["DestinationConfig"]

    # Update changes only what it is given; Put replaces the whole config.
    upd = lam.update_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    assert upd["MaximumRetryAttempts"] == 0 and upd["MaximumEventAgeInSeconds"] == 3600
    assert upd["DestinationConfig"]["OnFailure"] == {"Destination": other_arn}
    rep = lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=2)
    assert "MaximumEventAgeInSeconds" not in rep
    assert rep["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}

    lam.publish_version(FunctionName=name)
    lam.put_function_event_invoke_config(FunctionName=name, Qualifier="1", MaximumRetryAttempts=1)
    listed = lam.list_function_event_invoke_configs(FunctionName=name)
    assert_shape("lambda", "ListFunctionEventInvokeConfigs", listed)
    assert sorted(c["FunctionArn"] for c in listed["FunctionEventInvokeConfigs"]) == [
        arn + ":$LATEST",
        arn + ":1",
    ]
    page = lam.list_function_event_invoke_configs(FunctionName=name, MaxItems=1)
    assert len(page["FunctionEventInvokeConfigs"]) == 1 and "NextMarker" in page
    rest = lam.list_function_event_invoke_configs(FunctionName=name, Marker=page["NextMarker"])
    assert len(rest["FunctionEventInvokeConfigs"]) == 1 and "NextMarker" not in rest

    for bad in ({"MaximumRetryAttempts": 3}, {"MaximumEventAgeInSeconds": 21601}):
        with pytest.raises(ClientError) as exc:
            lam.put_function_event_invoke_config(FunctionName=name, **bad)
        assert error_of(exc) == ("ValidationException", 400)
    with pytest.raises(ClientError) as exc:
        lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": arn}}
        )
    assert error_of(exc) == ("InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as exc:
        lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": "nope"}}
        )
    assert error_of(exc)[1] == 400
    with pytest.raises(ClientError) as exc:
        lam.put_function_event_invoke_config(
            FunctionName=name, Qualifier="nosuchalias", MaximumRetryAttempts=1
        )
    assert error_of(exc) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        lam.put_function_event_invoke_config(FunctionName=unique("missing"), MaximumRetryAttempts=1)
    assert error_of(exc) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        lam.update_function_event_invoke_config(FunctionName=other, MaximumRetryAttempts=1)
    assert error_of(exc) == ("ResourceNotFoundException", 404)

    lam.delete_function_event_invoke_config(FunctionName=name, Qualifier="1")
    with pytest.raises(ClientError) as exc:
        lam.delete_function_event_invoke_config(FunctionName=name, Qualifier="1")
    assert error_of(exc) == ("ResourceNotFoundException", 404)

    # Deleting the function takes its configs with it.
    lam.delete_function(FunctionName=name)
    python_function(lam, name, TARGET)
    with pytest.raises(ClientError) as exc:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert error_of(exc) == ("ResourceNotFoundException", 404)


def test_events_for_a_deleted_alias_become_dead_letters(srv: Server, lam: Any) -> None:
    name = unique("aliasgone")
    python_function(lam, name, TARGET)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="tmp", FunctionVersion="1")
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    rid = send_event(lam, name, {"a": 1}, Qualifier="tmp")
    lam.delete_alias(FunctionName=name, Name="tmp")
    deadline = time.monotonic() + 20
    letters: list[Any] = []
    while time.monotonic() < deadline and not letters:
        time.sleep(0.1)
        letters = srv.signed_get(f"/_firebox/dead-letters?FunctionName={name}")["DeadLetters"]
    (letter,) = letters
    assert (letter["request_id"], letter["qualifier"]) == (rid, "tmp")
    assert letter["reason"] == "FunctionNotFound"
    assert srv.signed_get("/_firebox/queues")[name]["depth"] == 0
