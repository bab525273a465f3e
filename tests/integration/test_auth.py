"""SigV4: the API refuses unsigned, wrongly signed, unknown-key and stale requests."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError


def code_and_status(exc) -> tuple[str, int]:
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def test_wrong_secret_is_invalid_signature(server):
    bad = server.client("lambda", secret_key="not-the-secret")
    with pytest.raises(ClientError) as exc:
        bad.list_functions()
    assert code_and_status(exc) == ("InvalidSignatureException", 403)


def test_unknown_access_key_is_unrecognized_client(server):
    bad = server.client("lambda", access_key="AKIDUNKNOWN000000000")
    with pytest.raises(ClientError) as exc:
        bad.list_functions()
    assert code_and_status(exc) == ("UnrecognizedClientException", 403)


def test_unsigned_request_is_missing_token(server):
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(server.endpoint + "/2015-03-31/functions", timeout=10)
    assert exc.value.code == 403
    assert exc.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def _signed(server, method: str, path: str, body: bytes = b"", when: str | None = None):
    req = AWSRequest(method=method, url=server.endpoint + path, data=body)
    signer = SigV4Auth(Credentials(server.access_key, server.secret_key), "lambda", "us-east-1")
    if when:
        req.context["timestamp"] = when
        req.headers["X-Amz-Date"] = when
        # add_auth would stamp the current time; sign by hand with the old one.
        canonical = signer.canonical_request(req)
        sig = signer.signature(signer.string_to_sign(req, canonical), req)
        signed = signer.signed_headers(signer.headers_to_sign(req))
        req.headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={server.access_key}/{when[:8]}/us-east-1/lambda/"
            f"aws4_request, SignedHeaders={signed}, Signature={sig}"
        )
    else:
        signer.add_auth(req)
    return req


def _send(req) -> tuple[int, dict]:
    r = urllib.request.Request(
        req.url, data=req.data or None, headers=dict(req.headers), method=req.method
    )
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)


def test_stale_signature_is_refused(server):
    status, headers = _send(
        _signed(server, "GET", "/2015-03-31/functions", when="20200101T000000Z")
    )
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "InvalidSignatureException"


def test_tampered_body_is_refused(server):
    req = _signed(server, "POST", "/2015-03-31/functions", b'{"FunctionName": "a"}')
    req.data = b'{"FunctionName": "b"}'
    status, headers = _send(req)
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "InvalidSignatureException"


def test_aws_cli_works_against_the_server(server):
    env = {
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "awscli",
            "lambda",
            "list-functions",
            "--endpoint-url",
            server.endpoint,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert isinstance(json.loads(out.stdout)["Functions"], list)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "awscli",
            "lambda",
            "get-function",
            "--function-name",
            "nope",
            "--endpoint-url",
            server.endpoint,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    # 255: AWS CLI v1's code for an error the service answered.
    assert out.returncode == 255 and "ResourceNotFoundException" in out.stderr, out.stderr
