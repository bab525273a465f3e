"""Response streaming: the Runtime API's streamed response and InvokeWithResponseStream
(an event stream of PayloadChunk events and one InvokeComplete), through boto3."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, make_zip, python_function, unique

NODE_STREAM = """
exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.setContentType('text/plain');
  for (const part of event.parts) {
    responseStream.write(part);
    await new Promise((r) => setTimeout(r, event.delay));
  }
  console.log('streamed', event.parts.length, 'parts for', context.awsRequestId);
  responseStream.end();
});
exports.early = awslambda.streamifyResponse(async () => {
  throw new Error('failed before streaming');
});
exports.midway = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.write('partial;');
  await new Promise((r) => setTimeout(r, 50));
  throw new TypeError('failed after streaming began');
});
"""

# A custom runtime that streams with chunked transfer encoding, as the Runtime API allows.
STREAM_BOOTSTRAP = r"""#!/usr/bin/python3
import http.client, json, os, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
P = "/2018-06-01/runtime"
while True:
    c = http.client.HTTPConnection(host, int(port))
    c.request("GET", P + "/invocation/next")
    r = c.getresponse()
    event = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    def body():
        for i in range(event["n"]):
            yield ("chunk-%d;" % i).encode()
            time.sleep(event["delay"])
    c.request("POST", P + "/invocation/%s/response" % rid, body=body(), encode_chunked=True,
              headers={"Lambda-Runtime-Function-Response-Mode": "streaming",
                       "Content-Type": "application/x-custom", "Transfer-Encoding": "chunked"})
    print("posted stream", c.getresponse().status, flush=True)
"""


def _events(resp: dict[str, Any]) -> tuple[list[tuple[float, bytes]], dict[str, Any]]:
    """The chunks with their arrival times, and the InvokeComplete event that must end the
    stream (exactly one, last)."""
    chunks: list[tuple[float, bytes]] = []
    completes: list[dict[str, Any]] = []
    for ev in resp["EventStream"]:
        assert not completes, f"an event after InvokeComplete: {ev}"
        if "PayloadChunk" in ev:
            chunks.append((time.monotonic(), ev["PayloadChunk"]["Payload"]))
        elif "InvokeComplete" in ev:
            completes.append(ev["InvokeComplete"])
        else:
            raise AssertionError(f"unknown event in the stream: {ev}")
    assert len(completes) == 1, "the stream did not end with an InvokeComplete event"
    return chunks, completes[0]


@pytest.fixture(scope="module")
def node_stream(lam: Any) -> str:
    name = unique("nstream")
    lam.create_function(
        FunctionName=name,
        Runtime="nodejs20.x",
        Role=ROLE,
        Handler="index.handler",
        Code={"ZipFile": make_zip({"index.js": NODE_STREAM})},
    )
    return name


def test_node_stream_arrives_in_pieces(lam: Any, node_stream: str) -> None:
    lam.invoke(
        FunctionName=node_stream, Payload=json.dumps({"parts": ["x"], "delay": 0})
    )  # cold start out of the way
    t0 = time.monotonic()
    resp = lam.invoke_with_response_stream(
        FunctionName=node_stream,
        Payload=json.dumps({"parts": ["a", "b", "c"], "delay": 400}),
        LogType="Tail",
    )
    assert resp["ResponseStreamContentType"] == "text/plain"
    assert resp["ExecutedVersion"] == "$LATEST"
    chunks, complete = _events(resp)
    end = time.monotonic()
    assert b"".join(c for _, c in chunks) == b"abc"
    # The first piece came while the function was still running.
    assert chunks[0][0] - t0 < end - t0 - 0.6
    assert "ErrorCode" not in complete
    assert "streamed 3 parts" in base64.b64decode(complete["LogResult"]).decode()


def test_plain_invoke_of_streaming_function_gets_whole_body(lam: Any, node_stream: str) -> None:
    resp = lam.invoke(
        FunctionName=node_stream, Payload=json.dumps({"parts": ["one ", "two"], "delay": 10})
    )
    assert "FunctionError" not in resp
    assert resp["Payload"].read() == b"one two"


def test_node_stream_error_before_first_byte(lam: Any, node_stream: str) -> None:
    lam.update_function_configuration(FunctionName=node_stream, Handler="index.early")
    lam.get_waiter("function_updated_v2").wait(FunctionName=node_stream)
    resp = lam.invoke_with_response_stream(FunctionName=node_stream, Payload=b"{}")
    chunks, complete = _events(resp)
    assert chunks == []
    assert complete["ErrorCode"] == "Error"
    assert json.loads(complete["ErrorDetails"])["errorMessage"] == "failed before streaming"


def test_custom_runtime_chunked_stream(lam: Any) -> None:
    name = unique("cstream")
    lam.create_function(
        FunctionName=name,
        Runtime="provided.al2023",
        Role=ROLE,
        Handler="x.y",
        Code={"ZipFile": make_zip({"bootstrap": STREAM_BOOTSTRAP}, {"bootstrap": 0o755})},
    )
    resp = lam.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"n": 3, "delay": 0.3})
    )
    assert resp["ResponseStreamContentType"] == "application/x-custom"
    chunks, complete = _events(resp)
    assert b"".join(c for _, c in chunks) == b"chunk-0;chunk-1;chunk-2;"
    assert len(chunks) >= 2
    assert chunks[-1][0] - chunks[0][0] > 0.3
    assert complete == {}


def test_buffered_function_through_stream_api(lam: Any) -> None:
    name = unique("bstream")
    python_function(
        lam,
        name,
        "def handler(e, c):\n"
        "    if e.get('fail'):\n        raise KeyError('nope')\n"
        "    return {'echo': e}\n",
    )
    resp = lam.invoke_with_response_stream(FunctionName=name, Payload=b'{"a": 1}')
    chunks, complete = _events(resp)
    assert json.loads(b"".join(c for _, c in chunks)) == {"echo": {"a": 1}}
    assert complete == {}
    resp = lam.invoke_with_response_stream(FunctionName=name, Payload=b'{"fail": true}')
    chunks, complete = _events(resp)
    assert chunks == []
    assert complete["ErrorCode"] == "KeyError"
    assert "nope" in json.loads(complete["ErrorDetails"])["errorMessage"]


def test_stream_api_errors(lam: Any) -> None:
    with pytest.raises(ClientError) as exc:
        lam.invoke_with_response_stream(FunctionName=unique("missing"), Payload=b"{}")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_node_stream_error_after_first_byte_reaches_the_caller(lam: Any) -> None:
    name = unique("nmid")
    lam.create_function(
        FunctionName=name,
        Runtime="nodejs20.x",
        Role=ROLE,
        Handler="index.midway",
        Code={"ZipFile": make_zip({"index.js": NODE_STREAM})},
    )
    resp = lam.invoke_with_response_stream(FunctionName=name, Payload=b"{}")
    chunks, complete = _events(resp)
    assert b"".join(c for _, c in chunks) == b"partial;"
    assert complete["ErrorCode"] == "TypeError"
    assert json.loads(complete["ErrorDetails"])["errorMessage"] == "failed after streaming began"
    # A plain Invoke of the same function reports the failure as a function error.
    plain = lam.invoke(FunctionName=name, Payload=b"{}")
    assert plain["FunctionError"] == "Unhandled"
    assert json.loads(plain["Payload"].read())["errorType"] == "TypeError"
