"""Synchronous invoke: payloads, function errors, timeouts, log tails, limits, DryRun."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import re

import pytest
from botocore.exceptions import ClientError

from conftest import invoke_json, python_function, unique


def error_code(exc) -> tuple[str, int]:
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def test_payload_round_trip_and_context(lam):
    name = unique()
    python_function(
        lam,
        name,
        (
            "def handler(event, context):\n"
            "    return {'event': event, 'name': context.function_name,\n"
            "            'version': context.function_version, 'mem': context.memory_limit_in_mb,\n"
            "            'rid': context.aws_request_id, 'group': context.log_group_name,\n"
            "            'stream': context.log_stream_name,\n"
            "            'remaining': context.get_remaining_time_in_millis()}\n"
        ),
        MemorySize=256,
        Timeout=5,
    )
    body, resp = invoke_json(lam, name, {"nested": [1, 2, {"a": None}]})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    assert resp["ExecutedVersion"] == "$LATEST"
    assert body["event"] == {"nested": [1, 2, {"a": None}]}
    assert body["name"] == name and body["version"] == "$LATEST"
    assert str(body["mem"]) == "256"
    assert body["rid"] == resp["ResponseMetadata"]["RequestId"]
    assert body["group"] == f"/aws/lambda/{name}"
    assert re.match(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$", body["stream"])
    assert 0 < body["remaining"] <= 5000


def test_function_error_is_200_with_unhandled(lam):
    name = unique()
    python_function(
        lam,
        name,
        (
            "class MyError(Exception):\n    pass\n"
            "def handler(event, context):\n    raise MyError('it broke')\n"
        ),
    )
    body, resp = invoke_json(lam, name)
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorMessage"] == "it broke"
    assert body["errorType"] == "MyError"
    assert isinstance(body["stackTrace"], list) and body["stackTrace"]


def test_import_error_is_reported_in_aws_shape(lam):
    name = unique()
    python_function(lam, name, "import no_such_module_here\ndef handler(e, c):\n    return 1\n")
    body, resp = invoke_json(lam, name)
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert "no_such_module_here" in body["errorMessage"]


def test_missing_handler_is_reported(lam):
    name = unique()
    python_function(lam, name, "def other(e, c):\n    return 1\n")
    body, resp = invoke_json(lam, name)
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.HandlerNotFound"


def test_timeout_returns_task_timed_out_and_next_invoke_works(lam):
    name = unique()
    python_function(
        lam,
        name,
        (
            "import time\n"
            "def handler(event, context):\n"
            "    if event.get('sleep'):\n        time.sleep(30)\n"
            "    return 'fine'\n"
        ),
        Timeout=1,
    )
    body, resp = invoke_json(lam, name, {"sleep": True}, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]
    assert "Task timed out after 1.00 seconds" in base64.b64decode(resp["LogResult"]).decode()
    assert invoke_json(lam, name)[0] == "fine"


def test_crash_reports_exit_error_and_recovers(lam):
    name = unique()
    python_function(
        lam,
        name,
        (
            "import os\n"
            "def handler(event, context):\n"
            "    if event.get('die'):\n        os._exit(3)\n"
            "    return 'alive'\n"
        ),
    )
    body, resp = invoke_json(lam, name, {"die": True})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in body["errorMessage"]
    assert invoke_json(lam, name)[0] == "alive"


def test_log_tail_has_start_end_report_and_init_only_when_cold(lam):
    name = unique()
    python_function(
        lam, name, "def handler(e, c):\n    print('hello from', e['n'])\n    return 1\n"
    )
    _, cold = invoke_json(lam, name, {"n": 1}, LogType="Tail")
    text = base64.b64decode(cold["LogResult"]).decode()
    rid = cold["ResponseMetadata"]["RequestId"]
    assert f"START RequestId: {rid} Version: $LATEST" in text
    assert "hello from 1" in text
    assert f"END RequestId: {rid}" in text
    report = [line for line in text.splitlines() if line.startswith("REPORT")][0]
    for field in (
        "Duration:",
        "Billed Duration:",
        "Memory Size: 128 MB",
        "Max Memory Used:",
        "Init Duration:",
    ):
        assert field in report
    _, warm = invoke_json(lam, name, {"n": 2}, LogType="Tail")
    text = base64.b64decode(warm["LogResult"]).decode()
    assert "hello from 2" in text and "hello from 1" not in text
    assert "Init Duration" not in text


def test_log_tail_is_at_most_4kb(lam):
    name = unique()
    python_function(lam, name, "def handler(e, c):\n    print('x' * 20000)\n    return 1\n")
    _, resp = invoke_json(lam, name, LogType="Tail")
    tail = base64.b64decode(resp["LogResult"])
    assert len(tail) <= 4096 and b"REPORT RequestId" in tail


def test_payload_too_large(lam):
    name = unique()
    python_function(lam, name, "def handler(e, c):\n    return 1\n")
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, Payload=json.dumps({"x": "a" * (6 * 1024 * 1024)}))
    assert error_code(exc) == ("RequestTooLargeException", 413)


def test_response_too_large_is_a_function_error(lam):
    name = unique()
    python_function(lam, name, "def handler(e, c):\n    return 'a' * (7 * 1024 * 1024)\n")
    body, resp = invoke_json(lam, name)
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Function.ResponseSizeTooLarge"


def test_invalid_json_payload(lam):
    name = unique()
    python_function(lam, name, "def handler(e, c):\n    return 1\n")
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, Payload=b"{nope")
    assert error_code(exc) == ("InvalidRequestContentException", 400)


def test_dry_run_checks_without_running(lam):
    name = unique()
    python_function(lam, name, "def handler(e, c):\n    raise Exception('must not run')\n")
    resp = lam.invoke(FunctionName=name, InvocationType="DryRun")
    assert resp["StatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name + "-missing", InvocationType="DryRun")
    assert error_code(exc) == ("ResourceNotFoundException", 404)


def test_client_context_reaches_the_handler(lam):
    name = unique()
    python_function(lam, name, "def handler(e, c):\n    return c.client_context.custom\n")
    ctx = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    assert invoke_json(lam, name, ClientContext=ctx)[0] == {"k": "v"}


def test_concurrent_invokes_scale_out(lam):
    name = unique()
    python_function(
        lam,
        name,
        # Each environment is PID 1 of its own pid namespace: tell them apart by a value
        # chosen once per environment, at import (Init).
        (
            "import time, uuid\nENV = uuid.uuid4().hex\n"
            "def handler(e, c):\n    time.sleep(0.5)\n    return ENV\n"
        ),
    )
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        envs = list(pool.map(lambda _: invoke_json(lam, name)[0], range(4)))
    assert len(set(envs)) == 4, envs
    # Warm reuse afterwards: the same environments answer.
    assert invoke_json(lam, name)[0] in envs
