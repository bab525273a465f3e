"""The raw-body checker of tests/shapes.py fails on what botocore's parser would let pass."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

import shapes

GOOD_CONFIG = {
    "FunctionName": "fn",
    "FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
    "Runtime": "python3.11",
    "MemorySize": 128,
    "Timeout": 3,
    "CodeSize": 312,
    "LastModified": "2026-11-29T21:30:00.000+0000",
    "State": "Active",
    "Environment": {"Variables": {"A": "1"}},
    "Layers": [{"Arn": "arn:aws:lambda:us-east-1:000000000000:layer:l:1", "CodeSize": 1}],
    "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
}


def lambda_problems(operation: str, body: Any, status: int = 200, **headers: str) -> list[str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return shapes.raw_problems(shapes.operation_model("lambda", operation), status, headers, raw)


def test_a_correct_body_passes():
    assert lambda_problems("GetFunctionConfiguration", GOOD_CONFIG) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"Handlr": "app.handler"}, "Handlr: not a member of botocore's FunctionConfiguration"),
        ({"MemorySize": "128"}, "MemorySize: expected an integer"),
        ({"MemorySize": True}, "MemorySize: expected an integer"),
        ({"CodeSize": 1.5}, "CodeSize: expected an integer"),
        ({"Layers": {"Arn": "x"}}, "Layers: expected a list"),
        ({"Environment": {"Variables": {"A": 1}}}, "Variables['A']: expected a string"),
        ({"Environment": "A=1"}, "Environment: expected an object"),
        ({"SnapStart": {"ApplyOn": "Sometimes"}}, "'Sometimes' not in enum SnapStartApplyOn"),
        ({"State": "Ready"}, "'Ready' not in enum State"),
        ({"Description": None}, "Description: null"),
    ],
)
def test_a_wrong_body_fails(change, expected):
    problems = lambda_problems("GetFunctionConfiguration", {**GOOD_CONFIG, **change})
    assert any(expected in p for p in problems), problems


def test_a_missing_required_member_fails():
    body = {"FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:fn", "AuthType": "NONE"}
    problems = lambda_problems("GetFunctionUrlConfig", body)
    assert any("FunctionUrl: required" in p for p in problems), problems
    assert any("CreationTime: required" in p for p in problems), problems


def test_a_boolean_sent_as_text_fails():
    problems = lambda_problems("GetAccountSettings", {"AccountUsage": {"FunctionCount": "3"}})
    assert any("FunctionCount: expected an integer" in p for p in problems), problems


def test_timestamps_follow_the_protocol_default_or_the_shape_format():
    mapping = {"UUID": "u", "LastModified": "2026-11-29T21:30:00Z", "BatchSize": 10}
    problems = lambda_problems("GetEventSourceMapping", mapping)
    assert any("LastModified: expected epoch seconds" in p for p in problems), problems
    assert lambda_problems("GetEventSourceMapping", {**mapping, "LastModified": 1.7e9}) == []


def test_a_member_bound_to_a_header_fails_in_the_body():
    problems = lambda_problems(
        "Invoke", {"error": "x"}, status=429, **{"x-amzn-ErrorType": "TooManyRequestsException"}
    )
    assert any("error: not a member" in p for p in problems), problems
    body = {"Type": "User", "message": "Rate Exceeded.", "retryAfterSeconds": "1"}
    problems = lambda_problems(
        "Invoke", body, status=429, **{"x-amzn-ErrorType": "TooManyRequestsException"}
    )
    assert any("retryAfterSeconds: bound to the header" in p for p in problems), problems


def test_error_bodies_are_checked_against_the_error_shape():
    err = {"x-amzn-ErrorType": "ResourceNotFoundException"}
    assert lambda_problems("GetFunction", {"Type": "User", "Message": "nope"}, 404, **err) == []
    problems = lambda_problems("GetFunction", {"Type": 1, "Message": "nope"}, 404, **err)
    assert any("Type: expected a string" in p for p in problems), problems
    problems = lambda_problems("GetFunction", b"<html>", 404, **err)
    assert any("error body is not JSON" in p for p in problems), problems


def test_json_11_bodies_and_errors():
    model = shapes.operation_model("logs", "DescribeLogGroups")
    good = {"logGroups": [{"logGroupName": "/aws/lambda/fn", "creationTime": 1, "storedBytes": 0}]}
    assert shapes.raw_problems(model, 200, {}, json.dumps(good).encode()) == []
    bad = {"logGroups": [{"logGroupName": "/aws/lambda/fn", "creationTime": "1"}]}
    problems = shapes.raw_problems(model, 200, {}, json.dumps(bad).encode())
    assert any("creationTime: expected an integer" in p for p in problems), problems
    error = {"__type": "ResourceNotFoundException", "message": "x", "Reason": "y"}
    problems = shapes.raw_problems(model, 400, {}, json.dumps(error).encode())
    assert any("Reason: not a member" in p for p in problems), problems


def test_an_operation_without_output_has_an_empty_body():
    assert lambda_problems("DeleteAlias", b"", status=204) == []
    problems = lambda_problems("DeleteAlias", {"Deleted": True}, status=204)
    assert any("has no output" in p for p in problems), problems


def test_raw_payloads_are_not_read():
    assert lambda_problems("Invoke", b"not json at all") == []


def _client_answering(status: int, body: dict[str, Any], **headers: str) -> Any:
    client = boto3.client(
        "lambda",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="AKID",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 0}),
    )

    def answer(request: Any, **_: Any) -> AWSResponse:
        raw = json.dumps(body).encode()
        return _Response(request.url, status, headers, raw)

    client.meta.events.register("before-send", answer)
    return shapes.install(client)


class _Response(AWSResponse):
    def __init__(self, url: str, status: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__(url, status, headers, raw=None)
        self._content = body


def test_the_hook_fails_a_call_that_botocore_would_parse():
    client = _client_answering(200, {**GOOD_CONFIG, "Handlr": "x"})
    with pytest.raises(AssertionError, match="Handlr: not a member"):
        client.get_function_configuration(FunctionName="fn")
    assert any("Handlr" in p for p in shapes.take_problems())
    ok = _client_answering(200, GOOD_CONFIG).get_function_configuration(FunctionName="fn")
    assert ok["MemorySize"] == 128
    assert shapes.take_problems() == []
