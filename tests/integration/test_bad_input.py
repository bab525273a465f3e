"""Bad input is the client's error, never a bug: every operation of botocore's Lambda,
CloudWatch Logs and EventBridge models, sent malformed bodies, wrongly typed members, odd
path values and odd query strings, answers with an AWS error the operation can give (a 4xx,
its code in x-amzn-ErrorType or __type, a message), never a 500. A 500 here is a bug in
Firebox that bad input reached: the server logs it with its traceback. Each body is checked
against its shape in the model too (tests/shapes.py)."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from typing import Any

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import shapes
from conftest import python_function

BAD_VALUES: list[Any] = [
    None,
    1,
    -1,
    10**15,
    "x",
    "",
    [],
    {},
    {"a": 1},
    ["x"],
    True,
    1.5,
    "\u0000",
    "a" * 5000,
]
BAD_BODIES = [b"{bad json", b"[]", b'"str"', b"null"]
PATH_SEGMENTS = (
    "FunctionName",
    "Name",
    "LayerName",
    "VersionNumber",
    "UUID",
    "Resource",
    "StatementId",
    "CodeSigningConfigArn",
    "CapacityProviderName",
    "DurableExecutionArn",
    "CallbackId",
)
_models = botocore.session.get_session()
# What a front door answers for any operation, besides the operation's declared errors.
FRONT_DOOR = {
    "ValidationException",
    "InvalidRequestContentException",
    "SerializationException",
    "UnknownOperationException",
}
BAD_QUERY = ["x", "-1", "", "a" * 300, "%00", "0"]


def _allowed(op: Any) -> set[str]:
    return FRONT_DOOR | {s.error_code or s.name for s in op.error_shapes}


def _message(data: bytes) -> Any:
    try:
        body = json.loads(data)
    except ValueError:
        return None
    return body.get("message", body.get("Message")) if isinstance(body, dict) else None


def _send(
    server, service: str, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    req = AWSRequest(method=method, url=server.endpoint + path, data=body, headers=headers)
    SigV4Auth(Credentials(server.access_key, server.secret_key), service, "us-east-1").add_auth(req)
    r = urllib.request.Request(req.url, data=body or None, headers=dict(req.headers), method=method)
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _bodies(members: list[str], rng: random.Random) -> list[bytes]:
    typed = [json.dumps({k: rng.choice(BAD_VALUES) for k in members}).encode() for _ in range(6)]
    return BAD_BODIES + typed


def test_lambda_api_answers_bad_input_with_aws_errors(server, lam):
    python_function(lam, "fuzz-target", "def handler(e, c):\n    return 1\n")
    model = _models.get_service_model("lambda")
    rng = random.Random(1)
    failures = []
    for name in model.operation_names:
        op = model.operation_model(name)
        uri, method = op.http["requestUri"].split("?")[0], op.http["method"]
        members = op.input_shape.members if op.input_shape else {}
        body_members = [k for k, v in members.items() if not v.serialization.get("location")]
        query = [
            v.serialization.get("name", k)
            for k, v in members.items()
            if v.serialization.get("location") == "querystring"
        ]
        fixed = op.http["requestUri"].partition("?")[2]
        for value in ("fuzz-target", "nope", "a:b:c", "%00"):
            path = uri
            for seg in PATH_SEGMENTS:
                path = path.replace("{" + seg + "}", value).replace("{" + seg + "+}", value)
            for body in _bodies(body_members, rng):
                if method in ("GET", "DELETE"):
                    body = b""
                pairs = [fixed] if fixed else []
                pairs += [f"{q}={rng.choice(BAD_QUERY)}" for q in query if rng.random() < 0.5]
                target = path + ("?" + "&".join(pairs) if pairs else "")
                status, headers, data = _send(
                    server, "lambda", method, target, body, {"Content-Type": "application/json"}
                )
                code = headers.get("x-amzn-ErrorType", "").split(":")[0]
                if status >= 500 or (
                    status >= 400 and (code not in _allowed(op) or not _message(data))
                ):
                    failures.append((name, method, target, body[:60], status, data[:160]))
                else:  # the body as the model has it: the output or the error's shape
                    failures += shapes.raw_problems(op, status, headers, data)
    assert not failures, failures[:10]
    assert "Traceback" not in server.log_path.read_text()


@pytest.mark.parametrize(
    ("service", "prefix"), [("logs", "Logs_20140328"), ("events", "AWSEvents")]
)
def test_json_apis_answer_bad_input_with_aws_errors(server, service, prefix):
    model = _models.get_service_model(service)
    rng = random.Random(2)
    failures = []
    for name in model.operation_names:
        op = model.operation_model(name)
        members = list(op.input_shape.members) if op.input_shape else []
        for body in _bodies(members, rng):
            status, headers, data = _send(
                server,
                service,
                "POST",
                "/",
                body,
                {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"{prefix}.{name}"},
            )
            code = json.loads(data or b"{}").get("__type") if status >= 400 else None
            if status >= 500 or (
                status >= 400
                and (code not in _allowed(op) | {"InvalidParameterException"} or not _message(data))
            ):
                failures.append((name, body[:60], status, data[:160]))
            else:  # the body as the model has it: the output or the error's shape
                failures += shapes.raw_problems(op, status, headers, data)
    assert not failures, failures[:10]
    assert "Traceback" not in server.log_path.read_text()
