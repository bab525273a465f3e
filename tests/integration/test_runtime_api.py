"""Runtime API conformance (2018-06-01): every endpoint, header and misuse, driven by a
custom `provided` bootstrap written in Python that reports what it saw.

Status codes and error types follow AWS's Runtime API spec and its runtime interface
emulator: 202 on accepted posts, 400 InvalidRequestID for an unknown request id,
403 InvalidStateTransition for a call out of order, 413 for an oversized response.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from conftest import ROLE, default_sandbox, invoke_json, make_zip, unique

# A custom runtime that drives the API by hand. Each event's "op" says what to do; what
# the API answered is returned to the caller (or, for probes that can only follow a
# response, reported by the next invocation under "previous").
BOOTSTRAP = r"""#!/usr/bin/python3
import http.client, json, os, sys

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
P = "/2018-06-01/runtime"

def call(method, path, body=None, headers=None, fresh=False):
    host, port = API.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(method, P + path if path.startswith("/") else path, body=body,
                 headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    try:
        data = json.loads(data)
    except ValueError:
        data = data.decode(errors="replace")
    return {"status": resp.status, "body": data, "headers": dict(resp.getheaders())}

init = {
    "response_before_next": call("POST", "/invocation/nope/response", b"{}"),
    "error_before_next": call("POST", "/invocation/nope/error", b"{}"),
    "unknown_path": call("GET", "/2018-06-01/runtime/nothing"),
    "wrong_method": call("POST", "/invocation/next", b""),
}
print("bootstrap initialised", flush=True)
previous = {}
while True:
    nxt = call("GET", "/invocation/next")
    h = {k.lower(): v for k, v in nxt["headers"].items()}
    rid = h["lambda-runtime-aws-request-id"]
    event = nxt["body"]
    op = event.get("op")
    print("op", op, "for", rid, flush=True)
    out = {"init": init, "previous": previous, "headers": h, "event": event,
           "env": {k: v for k, v in os.environ.items()
                   if k.startswith(("AWS_", "LAMBDA_", "_HANDLER", "TZ", "LANG"))}}
    previous = {}
    init = {}
    if op == "misuse":
        out["wrong_id"] = call("POST", "/invocation/%s/response" % (rid[:-1] + "0"), b"{}")
        out["next_in_flight"] = call("GET", "/invocation/next")
        out["init_error_late"] = call("POST", "/init/error", b"{}",
                                      {"Lambda-Runtime-Function-Error-Type": "X"})
        r = call("POST", "/invocation/%s/response" % rid, json.dumps(out).encode())
        previous["first_response"] = r
        previous["second_response"] = call("POST", "/invocation/%s/response" % rid, b"{}")
        previous["error_after_response"] = call("POST", "/invocation/%s/error" % rid, b"{}")
        continue
    if op == "error":
        shape = {"errorType": "Custom.Failure", "errorMessage": "it broke",
                 "stackTrace": ["a", "b"]}
        previous["error"] = call("POST", "/invocation/%s/error" % rid, json.dumps(shape),
                                 {"Lambda-Runtime-Function-Error-Type": "Custom.Failure"})
        continue
    if op == "error_text":
        previous["error"] = call("POST", "/invocation/%s/error" % rid, b"plain words",
                                 {"Lambda-Runtime-Function-Error-Type": "Runtime.Text"})
        continue
    if op == "big":
        body = b'"' + b"x" * (6 * 1024 * 1024) + b'"'
        previous["big"] = call("POST", "/invocation/%s/response" % rid, body)
        continue
    if op == "raw":
        call("POST", "/invocation/%s/response" % rid, b"not json at all",
             {"Content-Type": "application/octet-stream"})
        continue
    if op == "exit":
        sys.exit(3)
    call("POST", "/invocation/%s/response" % rid, json.dumps(out).encode())
"""

INIT_ERROR_BOOTSTRAP = r"""#!/usr/bin/python3
import http.client, json, os
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
def post(path, body, headers):
    c = http.client.HTTPConnection(host, int(port))
    c.request("POST", "/2018-06-01/runtime" + path, body, headers)
    r = c.getresponse()
    return r.status, r.read()
print("reporting init error", flush=True)
status, _ = post("/init/error", json.dumps({"errorType": "Custom.InitFailure",
                 "errorMessage": "cannot start"}),
                 {"Lambda-Runtime-Function-Error-Type": "Custom.InitFailure"})
status2, body2 = post("/init/error", b"{}", {"Lambda-Runtime-Function-Error-Type": "X"})
print("init/error answered", status, "then", status2, body2.decode(), flush=True)
"""


@pytest.fixture(scope="module")
def api_fn(lam: Any) -> str:
    name = unique("rapi")
    lam.create_function(
        FunctionName=name,
        Runtime="provided.al2023",
        Role=ROLE,
        Handler="x.y",
        Timeout=20,
        Code={"ZipFile": make_zip({"bootstrap": BOOTSTRAP}, {"bootstrap": 0o755})},
    )
    return name


def test_next_headers_and_env(lam: Any, api_fn: str) -> None:
    cc = base64.b64encode(json.dumps({"custom": {"k": 1}}).encode()).decode()
    out, resp = invoke_json(lam, api_fn, {"op": "headers"}, ClientContext=cc)
    h = out["headers"]
    assert h["lambda-runtime-aws-request-id"] == resp["ResponseMetadata"]["RequestId"]
    import time

    deadline = int(h["lambda-runtime-deadline-ms"])
    assert 15_000 < deadline - time.time() * 1000 <= 20_000
    assert h["lambda-runtime-invoked-function-arn"].endswith(f":function:{api_fn}")
    assert h["lambda-runtime-trace-id"].startswith("Root=1-")
    assert json.loads(h["lambda-runtime-client-context"]) == {"custom": {"k": 1}}
    assert out["event"] == {"op": "headers"}
    env = out["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == api_fn
    assert env["_HANDLER"] == "x.y"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_provided.al2023"
    # Before any invocation: misuse answered with AWS's codes.
    init = out["init"]
    assert init["response_before_next"]["status"] == 400
    assert init["response_before_next"]["body"]["errorType"] == "InvalidRequestID"
    assert init["error_before_next"]["status"] == 400
    assert init["unknown_path"]["status"] == 404
    assert init["wrong_method"]["status"] == 405


def test_qualified_arn_header(lam: Any, api_fn: str) -> None:
    v = lam.publish_version(FunctionName=api_fn)["Version"]
    out, _ = invoke_json(lam, api_fn, {"op": "headers"}, Qualifier=v)
    assert out["headers"]["lambda-runtime-invoked-function-arn"].endswith(f":{api_fn}:{v}")
    assert out["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == v


def test_misuse_status_codes(lam: Any, api_fn: str) -> None:
    out, resp = invoke_json(lam, api_fn, {"op": "misuse"})
    assert "FunctionError" not in resp
    assert out["wrong_id"]["status"] == 400
    assert out["wrong_id"]["body"]["errorType"] == "InvalidRequestID"
    assert out["next_in_flight"]["status"] == 403
    assert out["next_in_flight"]["body"]["errorType"] == "InvalidStateTransition"
    assert out["init_error_late"]["status"] == 403
    assert out["init_error_late"]["body"]["errorType"] == "InvalidStateTransition"
    # What happened after that response is reported by the next invocation.
    out, _ = invoke_json(lam, api_fn, {"op": "headers"})
    prev = out["previous"]
    assert prev["first_response"]["status"] == 202
    assert prev["first_response"]["body"] == {"status": "OK"}
    for key in ("second_response", "error_after_response"):
        assert prev[key]["status"] in (400, 403), prev[key]
        assert prev[key]["body"]["errorType"] in ("InvalidStateTransition", "InvalidRequestID")


def test_invocation_error(lam: Any, api_fn: str) -> None:
    out, resp = invoke_json(lam, api_fn, {"op": "error"})
    assert resp["FunctionError"] == "Unhandled"
    assert out == {
        "errorType": "Custom.Failure",
        "errorMessage": "it broke",
        "stackTrace": ["a", "b"],
    }
    out, resp = invoke_json(lam, api_fn, {"op": "error_text"})
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Runtime.Text"
    assert out["errorMessage"] == "plain words"
    out, _ = invoke_json(lam, api_fn, {"op": "headers"})
    assert out["previous"]["error"]["status"] == 202


def test_response_too_large(lam: Any, api_fn: str) -> None:
    out, resp = invoke_json(lam, api_fn, {"op": "big"})
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Function.ResponseSizeTooLarge"
    out, _ = invoke_json(lam, api_fn, {"op": "headers"})
    assert out["previous"]["big"]["status"] == 413


def test_raw_response_passes_through(lam: Any, api_fn: str) -> None:
    resp = lam.invoke(FunctionName=api_fn, Payload=b'{"op": "raw"}')
    assert resp["Payload"].read() == b"not json at all"


def test_runtime_exit_is_an_error_and_next_invoke_is_fresh(lam: Any, api_fn: str) -> None:
    out, resp = invoke_json(lam, api_fn, {"op": "exit"})
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in out["errorMessage"]
    out, resp = invoke_json(lam, api_fn, {"op": "headers"}, LogType="Tail")
    assert out["init"]["response_before_next"]["status"] == 400  # a new Init ran
    assert "Init Duration" in base64.b64decode(resp["LogResult"]).decode()


def test_init_error(lam: Any) -> None:
    name = unique("initerr")
    lam.create_function(
        FunctionName=name,
        Runtime="provided",
        Role=ROLE,
        Handler="x.y",
        Code={"ZipFile": make_zip({"bootstrap": INIT_ERROR_BOOTSTRAP}, {"bootstrap": 0o755})},
    )
    out, resp = invoke_json(lam, name, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert out == {"errorType": "Custom.InitFailure", "errorMessage": "cannot start"}
    tail = base64.b64decode(resp["LogResult"]).decode()
    assert "reporting init error" in tail


def test_missing_bootstrap(lam: Any) -> None:
    name = unique("noboot")
    lam.create_function(
        FunctionName=name,
        Runtime="provided.al2",
        Role=ROLE,
        Handler="x.y",
        Code={"ZipFile": make_zip({"readme.txt": "no bootstrap here"})},
    )
    out, resp = invoke_json(lam, name)
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"].startswith("Runtime.")


LISTENERS = """
import os
def handler(event, context):
    # Listening TCP sockets this environment can see (state 0A = LISTEN).
    seen = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh)
                seen += [l.split()[1] for l in fh if l.split()[3] == "0A"]
        except OSError:
            pass
    return {"api": os.environ["AWS_LAMBDA_RUNTIME_API"], "listening": seen}
"""


@pytest.mark.skipif(
    default_sandbox() != "process",
    reason="only the process backend gives each environment its own network "
    "namespace; the unsandboxed backend shares the host's loopback",
)
def test_environment_sees_only_its_own_endpoint(lam: Any) -> None:
    names = [unique("iso"), unique("iso")]
    outs = []
    for name in names:
        lam.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": LISTENERS})},
        )
        outs.append(invoke_json(lam, name)[0])
    for out in outs:
        assert out["api"] == "127.0.0.1:9001"
        assert len(out["listening"]) == 1, out


def test_runtime_api_env_points_at_a_live_endpoint(lam: Any, api_fn: str) -> None:
    out, _ = invoke_json(lam, api_fn, {"op": "headers"})
    host, _, port = out["env"]["AWS_LAMBDA_RUNTIME_API"].rpartition(":")
    assert host and port.isdigit()
    assert os.environ.get("AWS_LAMBDA_RUNTIME_API") is None  # nothing leaked to the host
