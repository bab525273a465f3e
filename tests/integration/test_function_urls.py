"""Function URLs: the config API through boto3, and the URL server through plain HTTP."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ROLE, Server, make_zip, python_function, unique

CODE = """
import base64, json

def handler(event, context):
    path = event["rawPath"]
    if path == "/object":
        return {"hello": "world"}
    if path == "/string":
        return "plain text"
    if path == "/error":
        raise RuntimeError("boom")
    if path == "/binary":
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                "body": base64.b64encode(bytes(range(256))).decode(), "isBase64Encoded": True}
    if path == "/cookies":
        return {"statusCode": 201, "cookies": ["a=1; Path=/", "b=2"],
                "headers": {"x-custom": "yes", "content-type": "text/plain"}, "body": "made"}
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps(event)}
"""


class Http:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> Http:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return Http(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as err:
        return Http(err.code, err.headers, err.read())


@pytest.fixture(scope="module")
def fn(lam: Any) -> str:
    name = unique("url")
    python_function(lam, name, CODE)
    return name


def _path_url(server: Server, function_url: str) -> str:
    """The path-based form of a URL: http://127.0.0.1:<port>/<url-id>/."""
    url_id = str(urlsplit(function_url).hostname).split(".")[0]
    return f"http://127.0.0.1:{server.url_port}/{url_id}"


@pytest.fixture(scope="module")
def public_url(lam: Any, server: Server, fn: str) -> str:
    cfg = lam.create_function_url_config(
        FunctionName=fn,
        AuthType="NONE",
        Cors={
            "AllowOrigins": ["https://example.com"],
            "AllowMethods": ["GET", "POST"],
            "AllowHeaders": ["x-token"],
            "ExposeHeaders": ["x-custom"],
            "MaxAge": 300,
        },
    )
    lam.add_permission(
        FunctionName=fn,
        StatementId="public",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    return _path_url(server, cfg["FunctionUrl"])


def test_config_api(lam: Any, server: Server) -> None:
    name = unique("urlcfg")
    python_function(lam, name, CODE)
    cfg = lam.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")
    assert cfg["AuthType"] == "AWS_IAM"
    assert cfg["InvokeMode"] == "BUFFERED"
    assert cfg["FunctionArn"].endswith(f":function:{name}")
    parts = urlsplit(cfg["FunctionUrl"])
    assert str(parts.hostname).endswith(".lambda-url.us-east-1.localhost")
    assert parts.port == server.url_port
    with pytest.raises(ClientError) as exc:
        lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert exc.value.response["Error"]["Code"] == "ResourceConflictException"
    with pytest.raises(ClientError) as exc:
        lam.create_function_url_config(FunctionName=name, AuthType="BOGUS", Qualifier="x")
    assert exc.value.response["Error"]["Code"] in (
        "InvalidParameterValueException",
        "ValidationException",
    )
    upd = lam.update_function_url_config(
        FunctionName=name,
        AuthType="NONE",
        InvokeMode="RESPONSE_STREAM",
        Cors={"AllowOrigins": ["*"]},
    )
    assert upd["AuthType"] == "NONE" and upd["InvokeMode"] == "RESPONSE_STREAM"
    assert upd["Cors"]["AllowOrigins"] == ["*"]
    assert upd["FunctionUrl"] == cfg["FunctionUrl"]
    got = lam.get_function_url_config(FunctionName=name)
    assert got["LastModifiedTime"] and got["Cors"] == {"AllowOrigins": ["*"]}

    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    alias_cfg = lam.create_function_url_config(FunctionName=name, Qualifier="live", AuthType="NONE")
    assert alias_cfg["FunctionArn"].endswith(f":function:{name}:live")
    assert alias_cfg["FunctionUrl"] != cfg["FunctionUrl"]
    listed = lam.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]
    assert sorted(c["FunctionArn"] for c in listed) == sorted(
        [cfg["FunctionArn"], alias_cfg["FunctionArn"]]
    )
    with pytest.raises(ClientError) as exc:
        lam.get_function_url_config(FunctionName=name, Qualifier="nope")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"

    lam.delete_function_url_config(FunctionName=name)
    with pytest.raises(ClientError) as exc:
        lam.get_function_url_config(FunctionName=name)
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert call(_path_url(server, cfg["FunctionUrl"]) + "/").status == 403
    # A deleted alias takes its URL with it; a new alias of that name starts without one.
    assert call(_path_url(server, alias_cfg["FunctionUrl"]) + "/").status == 403  # no policy
    lam.delete_alias(FunctionName=name, Name="live")
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    with pytest.raises(ClientError) as exc:
        lam.get_function_url_config(FunctionName=name, Qualifier="live")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    lam.delete_function(FunctionName=name)
    assert call(_path_url(server, alias_cfg["FunctionUrl"]) + "/").status == 403


def test_none_url_needs_policy(lam: Any, server: Server) -> None:
    name = unique("urlpol")
    python_function(lam, name, CODE)
    cfg = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    base = _path_url(server, cfg["FunctionUrl"])
    resp = call(base + "/object")
    assert resp.status == 403 and resp.json() == {"Message": "Forbidden"}
    lam.add_permission(
        FunctionName=name,
        StatementId="url",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    assert call(base + "/object").status == 200
    lam.remove_permission(FunctionName=name, StatementId="url")
    assert call(base + "/object").status == 403


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_methods_reach_function(public_url: str, method: str) -> None:
    body = b'{"n": 1}' if method in ("POST", "PUT", "PATCH") else None
    resp = call(
        public_url + "/a/b?x=1&y=2&x=3",
        method,
        body,
        {"Content-Type": "application/json", "X-Multi": "v1", "Cookie": "c1=one; c2=two"},
    )
    assert resp.status == 200
    event = resp.json()
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/a/b"
    assert event["rawQueryString"] == "x=1&y=2&x=3"
    assert event["queryStringParameters"] == {"x": "1,3", "y": "2"}
    assert event["cookies"] == ["c1=one", "c2=two"]
    assert event["headers"]["x-multi"] == "v1"
    assert event["headers"]["cookie"] == "c1=one; c2=two"  # function URLs keep it
    ctx = event["requestContext"]
    assert ctx["http"]["method"] == method
    assert ctx["http"]["path"] == "/a/b"
    assert ctx["http"]["sourceIp"] == "127.0.0.1"
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert event["headers"]["x-forwarded-proto"] == "http"
    assert ctx["stage"] == "$default" and ctx["requestId"] and ctx["timeEpoch"] > 0
    if body:
        assert event["body"] == body.decode() and event["isBase64Encoded"] is False
    else:
        assert "body" not in event


def test_encoded_path_and_query_reach_the_function_as_sent(public_url: str) -> None:
    query = "b=x%20y&plus=a+b&encoded=a%2Bb&url=https%3A%2F%2Fe.com%2Fp&k=1&k=2&empty="
    resp = call(public_url + "/space%20value/caf%C3%A9?" + query, headers={"Cookie": "t=a%20b"})
    assert resp.status == 200
    event = resp.json()
    assert event["rawQueryString"] == query
    assert event["rawPath"] == "/space%20value/caf%C3%A9"
    assert event["requestContext"]["http"]["path"] == "/space value/café"
    assert event["queryStringParameters"] == {
        "b": "x y",
        "plus": "a b",
        "encoded": "a+b",
        "url": "https://e.com/p",
        "k": "1,2",
        "empty": "",
    }
    assert event["cookies"] == ["t=a%20b"]


def test_host_based_url(lam: Any, server: Server, fn: str, public_url: str) -> None:
    host = urlsplit(lam.get_function_url_config(FunctionName=fn)["FunctionUrl"]).netloc
    resp = call(f"http://127.0.0.1:{server.url_port}/hello?q=1", headers={"Host": host})
    assert resp.status == 200
    event = resp.json()
    assert event["rawPath"] == "/hello"
    assert event["requestContext"]["domainName"] == host
    assert event["requestContext"]["domainPrefix"] == host.split(".")[0]


def test_binary_body_and_results(public_url: str) -> None:
    blob = bytes(range(256)) * 4
    event = call(
        public_url + "/echo", "POST", blob, {"Content-Type": "application/octet-stream"}
    ).json()
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == blob

    resp = call(public_url + "/binary")
    assert resp.status == 200 and resp.body == bytes(range(256))
    assert resp.headers["Content-Type"] == "application/octet-stream"

    resp = call(public_url + "/object")
    assert resp.status == 200 and resp.json() == {"hello": "world"}
    assert resp.headers["Content-Type"].startswith("application/json")

    resp = call(public_url + "/string")
    assert resp.status == 200 and resp.body == b"plain text"

    resp = call(public_url + "/cookies")
    assert resp.status == 201 and resp.body == b"made"
    assert resp.headers["x-custom"] == "yes"
    assert resp.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2"]

    resp = call(public_url + "/error")
    assert resp.status == 502 and resp.json() == {"Message": "Internal Server Error"}


def test_cors(public_url: str) -> None:
    pre = call(
        public_url + "/x",
        "OPTIONS",
        headers={
            "Origin": "https://example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-token",
        },
    )
    assert pre.status == 200
    assert pre.headers["Access-Control-Allow-Origin"] == "https://example.com"
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert pre.headers["Access-Control-Allow-Headers"] == "x-token"
    assert pre.headers["Access-Control-Max-Age"] == "300"
    # The preflight is answered from the config: the function never sees it.
    assert pre.body == b""
    other = call(
        public_url + "/x",
        "OPTIONS",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in other.headers
    resp = call(public_url + "/x", headers={"Origin": "https://example.com"})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://example.com"
    assert resp.headers["Access-Control-Expose-Headers"] == "x-custom"


def _signed(
    server: Server, url: str, method: str, body: bytes, service: str, secret: str | None = None
) -> Http:
    req = AWSRequest(
        method=method, url=url, data=body, headers={"Content-Type": "application/json"}
    )
    creds = Credentials(server.access_key, secret or server.secret_key)
    SigV4Auth(creds, service, "us-east-1").add_auth(req)
    return call(url, method, body or None, dict(req.headers.items()))


def test_aws_iam_url(lam: Any, server: Server) -> None:
    name = unique("urliam")
    python_function(lam, name, CODE)
    cfg = lam.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")
    base = _path_url(server, cfg["FunctionUrl"])
    resp = call(base + "/p?a=b")
    assert resp.status == 403 and resp.json() == {"Message": "Forbidden"}
    resp = _signed(server, base + "/p?a=b", "POST", b'{"k": 2}', "lambda")
    assert resp.status == 200, resp.body
    event = resp.json()
    assert event["body"] == '{"k": 2}' and event["queryStringParameters"] == {"a": "b"}
    assert event["requestContext"]["accountId"] == "000000000000"
    assert _signed(server, base + "/p", "GET", b"", "execute-api").status == 403
    assert _signed(server, base + "/p", "GET", b"", "lambda", secret="wrong").status == 403
    # Host-based, signed against the host the client used.
    host = urlsplit(cfg["FunctionUrl"]).netloc
    req = AWSRequest(method="GET", url=f"http://{host}/h", headers={"Host": host})
    SigV4Auth(Credentials(server.access_key, server.secret_key), "lambda", "us-east-1").add_auth(
        req
    )
    resp = call(f"http://127.0.0.1:{server.url_port}/h", headers=dict(req.headers.items()))
    assert resp.status == 200 and resp.json()["rawPath"] == "/h"


NODE_STREAM = """
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  if (event.rawPath === '/http') {
    responseStream = awslambda.HttpResponseStream.from(responseStream, {
      statusCode: 201, headers: {'content-type': 'text/plain', 'x-streamed': 'yes'},
      cookies: ['s=1'],
    });
  } else {
    responseStream.setContentType('text/plain');
  }
  for (let i = 0; i < 3; i++) {
    responseStream.write(`part${i};`);
    await new Promise((r) => setTimeout(r, 400));
  }
  responseStream.end();
});
"""


def _timed_chunks(url: str) -> tuple[Any, list[tuple[float, bytes]]]:
    import http.client

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(str(parts.hostname), parts.port, timeout=30)
    conn.request("GET", parts.path)
    resp = conn.getresponse()
    chunks = []
    while True:
        data = resp.read1(65536)
        if not data:
            break
        chunks.append((time.monotonic(), data))
    conn.close()
    return resp, chunks


def test_response_stream_url(lam: Any, server: Server) -> None:
    name = unique("urlstream")
    lam.create_function(
        FunctionName=name,
        Runtime="nodejs20.x",
        Role=ROLE,
        Handler="index.handler",
        Code={"ZipFile": make_zip({"index.js": NODE_STREAM})},
    )
    cfg = lam.create_function_url_config(
        FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM"
    )
    lam.add_permission(
        FunctionName=name,
        StatementId="url",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    base = _path_url(server, cfg["FunctionUrl"])
    resp, chunks = _timed_chunks(base + "/plain")
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/plain"
    assert b"".join(c for _, c in chunks) == b"part0;part1;part2;"
    # The first part arrived while the function was still writing the others.
    assert chunks[-1][0] - chunks[0][0] > 0.5, chunks
    resp, chunks = _timed_chunks(base + "/http")
    assert resp.status == 201
    assert resp.getheader("x-streamed") == "yes" and resp.getheader("Set-Cookie") == "s=1"
    assert b"".join(c for _, c in chunks) == b"part0;part1;part2;"
    assert chunks[-1][0] - chunks[0][0] > 0.5, chunks


def test_throttled_url_is_429(lam: Any, server: Server) -> None:
    name = unique("urlthrottle")
    python_function(lam, name, CODE)
    cfg = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    lam.add_permission(
        FunctionName=name,
        StatementId="url",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    resp = call(_path_url(server, cfg["FunctionUrl"]) + "/object")
    assert resp.status == 429 and resp.json() == {"Message": "Rate Exceeded."}
    lam.delete_function_concurrency(FunctionName=name)
    assert call(_path_url(server, cfg["FunctionUrl"]) + "/object").status == 200


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_host_based(lam: Any, fn: str, public_url: str) -> None:
    """The FunctionUrl exactly as returned, with curl (which resolves *.localhost itself)."""
    url = lam.get_function_url_config(FunctionName=fn)["FunctionUrl"]
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "-b",
            "session=abc",
            "--data-binary",
            '{"via": "curl"}',
            url + "curl/path?q=1",
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    event = json.loads(out.stdout)
    assert event["rawPath"] == "/curl/path" and event["rawQueryString"] == "q=1"
    assert event["requestContext"]["http"]["method"] == "PUT"
    assert event["cookies"] == ["session=abc"]
    assert json.loads(event["body"]) == {"via": "curl"}
    assert event["headers"]["user-agent"].startswith("curl/")
