"""Bad input never gets a 5xx: every operation of botocore's Lambda, CloudWatch Logs and
EventBridge models, sent malformed bodies, wrongly typed members and odd path values,
answers with an AWS error (4xx and its x-amzn-ErrorType), not a server error."""

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
        for value in ("fuzz-target", "nope", "a:b:c", "%00"):
            path = uri
            for seg in PATH_SEGMENTS:
                path = path.replace("{" + seg + "}", value).replace("{" + seg + "+}", value)
            for body in _bodies(body_members, rng):
                if method in ("GET", "DELETE"):
                    body = b""
                status, headers, data = _send(
                    server, "lambda", method, path, body, {"Content-Type": "application/json"}
                )
                if status >= 500 or (status >= 400 and "x-amzn-ErrorType" not in headers):
                    failures.append((name, method, path, body[:60], status, data[:120]))
    assert not failures, failures[:10]


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
            if status >= 500 or (status >= 400 and "__type" not in json.loads(data or b"{}")):
                failures.append((name, body[:60], status, data[:120]))
    assert not failures, failures[:10]
