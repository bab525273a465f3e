"""Each runtime end to end through boto3: Python (two versions), Node (async, callback,
ESM), a custom bash + curl bootstrap (AWS's tutorial) and AWS's own awslambdaric."""

from __future__ import annotations

import base64
import json
import os
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from conftest import ROLE, invoke_json, make_zip, python_function, unique
from firebox.runtime.runtimes import available_runtimes

CONTEXT_PY = """
import json, os
def handler(event, context):
    print("hello from python", event.get("n"))
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": int(context.memory_limit_in_mb),
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "client_context": context.client_context and context.client_context.custom,
        "identity": context.identity,
        "env": {k: os.environ.get(k) for k in (
            "AWS_LAMBDA_RUNTIME_API", "_HANDLER", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
            "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_LOG_GROUP_NAME",
            "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_REGION", "AWS_DEFAULT_REGION",
            "AWS_EXECUTION_ENV", "TZ", "LANG", "PATH", "LD_LIBRARY_PATH", "MY_VAR",
            "AWS_LAMBDA_INITIALIZATION_TYPE")},
        "python": "%d.%d" % __import__("sys").version_info[:2],
    }
"""


def _tail(resp: dict[str, Any]) -> str:
    return base64.b64decode(resp["LogResult"]).decode()


def _other_python() -> str | None:
    names = [n for n in available_runtimes() if n.startswith("python3.") and n != "python3.11"]
    return sorted(names, key=lambda n: int(n.split(".")[1]))[-1] if names else None


# --- Python ---------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["python3.11", _other_python() or "python3.12", "python3.8"])
def test_python_context_env_and_logs(lam: Any, runtime: str) -> None:
    if runtime not in available_runtimes():
        pytest.skip(f"{runtime} is not installed on this host")
    name = unique("py")
    python_function(
        lam,
        name,
        CONTEXT_PY,
        runtime=runtime,
        MemorySize=256,
        Timeout=7,
        Environment={"Variables": {"MY_VAR": "mine"}},
    )
    cc = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    out, resp = invoke_json(lam, name, {"n": 42}, LogType="Tail", ClientContext=cc)
    assert "FunctionError" not in resp
    assert out["python"] == runtime.removeprefix("python")
    assert out["function_name"] == name
    assert out["function_version"] == "$LATEST"
    assert out["invoked_function_arn"].endswith(f":function:{name}")
    assert out["memory_limit_in_mb"] == 256
    assert out["aws_request_id"] == resp["ResponseMetadata"]["RequestId"]
    assert out["log_group_name"] == f"/aws/lambda/{name}"
    assert "[$LATEST]" in out["log_stream_name"]
    assert 5000 < out["remaining"] <= 7000
    assert out["client_context"] == {"k": "v"}
    env = out["env"]
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{runtime}"
    assert env["MY_VAR"] == "mine"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    for key in (
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "TZ",
        "LANG",
        "PATH",
        "LD_LIBRARY_PATH",
        "AWS_LAMBDA_LOG_STREAM_NAME",
    ):
        assert env[key], key
    tail = _tail(resp)
    assert "hello from python 42" in tail
    assert f"START RequestId: {out['aws_request_id']}" in tail
    assert "Init Duration:" in tail


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        (
            {"app.py": "x = 1\n"},
            "nomodule.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'nomodule'",
        ),
        (
            {"app.py": "x = 1\n"},
            "app.handler",
            "Runtime.HandlerNotFound",
            "Handler 'handler' missing on module 'app'",
        ),
        (
            {"app.py": "def handler(:\n"},
            "app.handler",
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'app'",
        ),
        (
            {"app.py": "def handler(e, c): pass\n"},
            "apphandler",
            "Runtime.MalformedHandlerName",
            "Bad handler 'apphandler'",
        ),
    ],
)
def test_python_init_errors(
    lam: Any, files: dict[str, str], handler: str, error_type: str, message: str
) -> None:
    name = unique("pyerr")
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": make_zip(files)},
    )
    out, resp = invoke_json(lam, name, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == error_type
    assert message in out["errorMessage"]
    assert error_type in _tail(resp)


def test_python_handler_exception(lam: Any) -> None:
    name = unique("pyexc")
    python_function(
        lam,
        name,
        "class MyError(Exception): pass\ndef handler(e, c):\n    raise MyError('boom ' + e['x'])\n",
    )
    out, resp = invoke_json(lam, name, {"x": "y"}, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "MyError"
    assert out["errorMessage"] == "boom y"
    assert any("raise MyError" in line for line in out["stackTrace"])
    assert "[ERROR] MyError: boom y" in _tail(resp)
    # The environment survives a handled exception.
    out, resp = invoke_json(lam, name, {"x": "z"})
    assert out["errorMessage"] == "boom z"


# --- Node -----------------------------------------------------------------------------

NODE_CONTEXT = """
exports.handler = async (event, context) => {
  console.log('hello from node', event.n);
  console.error('to stderr');
  return {
    functionName: context.functionName, functionVersion: context.functionVersion,
    invokedFunctionArn: context.invokedFunctionArn, memoryLimitInMB: context.memoryLimitInMB,
    awsRequestId: context.awsRequestId, logGroupName: context.logGroupName,
    logStreamName: context.logStreamName, remaining: context.getRemainingTimeInMillis(),
    clientContext: context.clientContext, identity: context.identity || null,
    waits: context.callbackWaitsForEmptyEventLoop, node: process.version,
    handlerEnv: process.env._HANDLER, region: process.env.AWS_REGION,
  };
};
exports.callback = (event, context, callback) => {
  // A timer started by the handler must run before the answer goes back.
  setTimeout(() => { globalThis.late = 'ran'; }, 400);
  callback(null, { via: 'callback', late: globalThis.late || null, n: event.n });
};
exports.nowait = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  setTimeout(() => {}, 3000);
  callback(null, 'fast');
};
exports.fails = async () => { const e = new TypeError('bad thing'); throw e; };
exports.cberr = (event, context, callback) => callback(new RangeError('cb error'));
exports.cbstring = (event, context, callback) => callback('plain string');
exports.nested = { inner: async () => 'nested ok' };
let count = 0;
exports.multi = (event, context, callback) => {
  if (event.op === 'uncaught') {
    setTimeout(() => { throw new SyntaxError('async boom'); }, 10);
    return;
  }
  count += 1;
  callback(null, count);
};
"""


@pytest.fixture(scope="module")
def node_fn(lam: Any) -> str:
    name = unique("node")
    lam.create_function(
        FunctionName=name,
        Runtime="nodejs20.x",
        Role=ROLE,
        Handler="index.handler",
        Timeout=9,
        MemorySize=192,
        Code={"ZipFile": make_zip({"index.js": NODE_CONTEXT})},
    )
    return name


def _set_handler(lam: Any, name: str, handler: str) -> None:
    lam.update_function_configuration(FunctionName=name, Handler=handler)


def test_node_async_handler_context(lam: Any, node_fn: str) -> None:
    _set_handler(lam, node_fn, "index.handler")
    cc = base64.b64encode(json.dumps({"custom": {"a": 1}, "env": {"e": "x"}}).encode()).decode()
    out, resp = invoke_json(lam, node_fn, {"n": 7}, LogType="Tail", ClientContext=cc)
    assert "FunctionError" not in resp, out
    assert out["functionName"] == node_fn
    assert out["functionVersion"] == "$LATEST"
    assert out["invokedFunctionArn"].endswith(f":function:{node_fn}")
    assert out["memoryLimitInMB"] == "192"
    assert out["awsRequestId"] == resp["ResponseMetadata"]["RequestId"]
    assert out["logGroupName"] == f"/aws/lambda/{node_fn}"
    assert "[$LATEST]" in out["logStreamName"]
    assert 7000 < out["remaining"] <= 9000
    assert out["clientContext"] == {"custom": {"a": 1}, "env": {"e": "x"}}
    assert out["waits"] is True
    assert out["node"].startswith("v")
    assert out["handlerEnv"] == "index.handler"
    tail = _tail(resp)
    assert f"{out['awsRequestId']}\tINFO\thello from node 7" in tail
    assert f"{out['awsRequestId']}\tERROR\tto stderr" in tail


def test_node_callback_waits_for_event_loop(lam: Any, node_fn: str) -> None:
    import time

    _set_handler(lam, node_fn, "index.callback")
    t0 = time.monotonic()
    out, _ = invoke_json(lam, node_fn, {"n": 1})
    assert time.monotonic() - t0 >= 0.4
    assert out == {"via": "callback", "late": None, "n": 1}
    # The timer of the first invoke ran before it answered, so the second sees its mark.
    out, _ = invoke_json(lam, node_fn, {"n": 2})
    assert out == {"via": "callback", "late": "ran", "n": 2}


def test_node_callback_no_wait(lam: Any, node_fn: str) -> None:
    import time

    _set_handler(lam, node_fn, "index.nowait")
    invoke_json(lam, node_fn)  # cold start out of the measurement
    t0 = time.monotonic()
    out, _ = invoke_json(lam, node_fn)
    assert out == "fast"
    assert time.monotonic() - t0 < 2.5


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("index.fails", "TypeError", "bad thing"),
        ("index.cberr", "RangeError", "cb error"),
        ("index.cbstring", "string", "plain string"),
    ],
)
def test_node_handler_errors(
    lam: Any, node_fn: str, handler: str, error_type: str, message: str
) -> None:
    _set_handler(lam, node_fn, handler)
    out, resp = invoke_json(lam, node_fn, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == error_type
    assert out["errorMessage"] == message
    assert isinstance(out["trace"], list)
    assert "Invoke Error" in _tail(resp)


def test_node_nested_handler(lam: Any, node_fn: str) -> None:
    _set_handler(lam, node_fn, "index.nested.inner")
    out, _ = invoke_json(lam, node_fn)
    assert out == "nested ok"


@pytest.mark.parametrize(
    ("files", "handler", "error_type"),
    [
        ({"index.js": "exports.x = 1;"}, "missing.handler", "Runtime.ImportModuleError"),
        ({"index.js": "exports.x = 1;"}, "index.handler", "Runtime.HandlerNotFound"),
        (
            {"index.js": "exports.handler = async (=> 1;"},
            "index.handler",
            "Runtime.UserCodeSyntaxError",
        ),
        ({"index.js": "exports.handler = 1;"}, "indexhandler", "Runtime.MalformedHandlerName"),
        ({"index.js": "throw new Error('init failed');"}, "index.handler", "Error"),
    ],
)
def test_node_init_errors(lam: Any, files: dict[str, str], handler: str, error_type: str) -> None:
    name = unique("nodeerr")
    lam.create_function(
        FunctionName=name,
        Runtime="nodejs20.x",
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": make_zip(files)},
    )
    out, resp = invoke_json(lam, name)
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == error_type


def test_node_esm_modules(lam: Any) -> None:
    name = unique("esm")
    files = {
        "app.mjs": "const top = await Promise.resolve('tla');\n"
        "export const handler = async (event) => ({ kind: 'mjs', top, e: event.e });\n",
        "lib/pkg.js": "export const handler = async () => 'esm in type module';\n",
        "lib/package.json": '{"type": "module"}',
        "c.cjs": "module.exports.handler = async () => 'cjs';\n",
    }
    lam.create_function(
        FunctionName=name,
        Runtime="nodejs22.x",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip(files)},
    )
    out, _ = invoke_json(lam, name, {"e": 3})
    assert out == {"kind": "mjs", "top": "tla", "e": 3}
    _set_handler(lam, name, "lib/pkg.handler")
    assert invoke_json(lam, name)[0] == "esm in type module"
    _set_handler(lam, name, "c.handler")
    assert invoke_json(lam, name)[0] == "cjs"


# --- custom runtimes ------------------------------------------------------------------

# AWS's tutorial bootstrap (docs: "Tutorial: Building a custom runtime"), unchanged but for
# the interpreter line: Amazon Linux's /bin/sh is bash, Debian's is dash (no pipefail).
TUTORIAL_BOOTSTRAP = """#!/bin/bash

set -euo pipefail

# Initialization - load function handler
source $LAMBDA_TASK_ROOT/"$(echo $_HANDLER | cut -d. -f1).sh"

# Processing
while true
do
  HEADERS="$(mktemp)"
  # Get an event. The HTTP request will block until one is received
  EVENT_DATA=$(curl -sS -LD "$HEADERS" "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next")

  # Extract request ID by scraping response headers received above
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)

  # Run the handler function from the script
  RESPONSE=$($(echo "$_HANDLER" | cut -d. -f2) "$EVENT_DATA")

  # Send the response
  curl "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/$REQUEST_ID/response"  -d "$RESPONSE"
done
"""  # noqa: E501

TUTORIAL_FUNCTION = """function handler () {
  EVENT_DATA=$1
  echo "$EVENT_DATA" 1>&2;
  RESPONSE="Echoing request: '$EVENT_DATA'"

  echo $RESPONSE
}
"""


@pytest.mark.parametrize("runtime", ["provided.al2023", "provided"])
def test_provided_bash_tutorial(lam: Any, runtime: str) -> None:
    name = unique("bash")
    lam.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=ROLE,
        Handler="function.handler",
        Code={
            "ZipFile": make_zip(
                {"bootstrap": TUTORIAL_BOOTSTRAP, "function.sh": TUTORIAL_FUNCTION},
                {"bootstrap": 0o755},
            )
        },
    )
    for text in ("hello", "again"):
        resp = lam.invoke(FunctionName=name, Payload=json.dumps({"text": text}), LogType="Tail")
        body = resp["Payload"].read().decode()
        assert "FunctionError" not in resp
        event = json.dumps({"text": text})
        assert body == f"Echoing request: '{event}'"
        assert event in _tail(resp)


def test_provided_bootstrap_from_layer(lam: Any) -> None:
    layer = lam.publish_layer_version(
        LayerName=unique("rt"),
        Content={"ZipFile": make_zip({"bootstrap": TUTORIAL_BOOTSTRAP}, {"bootstrap": 0o755})},
    )
    name = unique("layerrt")
    lam.create_function(
        FunctionName=name,
        Runtime="provided.al2",
        Role=ROLE,
        Handler="function.handler",
        Layers=[layer["LayerVersionArn"]],
        Code={"ZipFile": make_zip({"function.sh": TUTORIAL_FUNCTION})},
    )
    resp = lam.invoke(FunctionName=name, Payload=b'{"a":1}')
    assert resp["Payload"].read().decode() == "Echoing request: '{\"a\":1}'"


def _awslambdaric_zip(handler_code: str) -> bytes:
    """A function zip with awslambdaric and its dependencies copied from this host."""
    import awslambdaric

    site = Path(awslambdaric.__file__).parent.parent
    files: dict[str, str | bytes] = {}
    modes: dict[str, int] = {}
    for top in ("awslambdaric", "simplejson", "snapshot_restore_py.py"):
        root = site / top
        paths = [root] if root.is_file() else sorted(root.rglob("*"))
        for p in paths:
            rel = p.relative_to(site).as_posix()
            if p.is_file() and "__pycache__" not in rel and "/tests/" not in rel:
                files[rel] = p.read_bytes()
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    native = site / f"runtime_client{suffix}"
    files[native.name] = native.read_bytes()
    files["app.py"] = handler_code
    files["bootstrap"] = (
        "#!/bin/sh\n"
        'export PYTHONPATH="$LAMBDA_TASK_ROOT${PYTHONPATH:+:$PYTHONPATH}"\n'
        'exec /usr/bin/python3 -m awslambdaric "$_HANDLER"\n'
    )
    modes["bootstrap"] = 0o755
    return make_zip(files, modes)


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs /usr/bin/python3")
@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="awslambdaric here is for 3.11")
def test_awslambdaric_unmodified(lam: Any) -> None:
    pytest.importorskip("awslambdaric")
    name = unique("ric")
    code = (
        "import awslambdaric, runtime_client\n"
        "def handler(event, context):\n"
        "    print('ric says', event['x'])\n"
        "    if event.get('fail'):\n"
        "        raise ValueError('ric failure')\n"
        "    return {'x': event['x'], 'fn': context.function_name,\n"
        "            'rid': context.aws_request_id,\n"
        "            'left': context.get_remaining_time_in_millis(),\n"
        "            'native': runtime_client.__file__.endswith('.so')}\n"
    )
    lam.create_function(
        FunctionName=name,
        Runtime="provided.al2023",
        Role=ROLE,
        Handler="app.handler",
        Timeout=10,
        Code={"ZipFile": _awslambdaric_zip(code)},
    )
    out, resp = invoke_json(lam, name, {"x": 5}, LogType="Tail")
    assert "FunctionError" not in resp, out
    assert out["x"] == 5
    assert out["fn"] == name
    assert out["rid"] == resp["ResponseMetadata"]["RequestId"]
    assert out["native"] is True
    assert 0 < out["left"] <= 10000
    assert "ric says 5" in _tail(resp)
    out, resp = invoke_json(lam, name, {"x": 6, "fail": True})
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "ValueError"
    assert out["errorMessage"] == "ric failure"
    # awslambdaric's own import errors arrive in AWS's shape through /init/error.
    lam.update_function_configuration(FunctionName=name, Handler="nope.handler")
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    out, resp = invoke_json(lam, name, {"x": 1})
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Runtime.ImportModuleError"


def test_python_logging_and_marshal_error(lam: Any) -> None:
    name = unique("pylog")
    python_function(
        lam,
        name,
        "import logging\nlogger = logging.getLogger()\nlogger.setLevel(logging.INFO)\n"
        "def handler(e, c):\n    logger.info('via logging %s', e.get('n'))\n"
        "    return {1, 2} if e.get('set') else 'ok'\n",
    )
    out, resp = invoke_json(lam, name, {"n": 3}, LogType="Tail")
    assert out == "ok"
    rid = resp["ResponseMetadata"]["RequestId"]
    line = next(x for x in _tail(resp).splitlines() if "via logging 3" in x)
    level, stamp, req, message = line.split("\t")
    assert (level, req, message) == ("[INFO]", rid, "via logging 3")
    assert stamp.endswith("Z")
    out, resp = invoke_json(lam, name, {"set": True})
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Runtime.MarshalError"
    assert out["errorMessage"].startswith("Unable to marshal response:")


def test_node_uncaught_exception_ends_the_environment(lam: Any, node_fn: str) -> None:
    _set_handler(lam, node_fn, "index.multi")
    assert [invoke_json(lam, node_fn)[0] for _ in range(2)] == [1, 2]
    out, resp = invoke_json(lam, node_fn, {"op": "uncaught"})
    assert resp["FunctionError"] == "Unhandled"
    assert (out["errorType"], out["errorMessage"]) == ("SyntaxError", "async boom")
    after, resp = invoke_json(lam, node_fn, LogType="Tail")
    assert after == 1  # a fresh environment ran Init again
    assert "Init Duration" in _tail(resp)
