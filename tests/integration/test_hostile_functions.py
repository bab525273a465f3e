"""A function that tries to starve the server: floods of output with and without newlines,
streamed responses larger than any reader wants, Runtime API connection floods and
slowloris heads. Each is bounded in the server's memory, CPU and descriptors, and another
function's warm invokes keep their latency while it runs."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ROLE, Server, invoke_json, make_zip, python_function, unique
from hostile import Background, Bystander, open_fds, rss_mb, wait_for

MAX_EVENT_BYTES = 256 * 1024 - 26
LOG_CAP_BYTES = 10 * 1024 * 1024

FLOOD = r"""
import os, time
def handler(event, context):
    if event.get("newlines"):
        chunk = (("y" * 15 + "\n") * 4096).encode()
    else:
        chunk = b"x" * 65536
    end = time.time() + event["seconds"]
    written = 0
    while time.time() < end:
        written += os.write(1, chunk)
    return written
"""

# A custom runtime that streams as fast as the socket takes it, in 64 KB chunks, for
# event["mb"] megabytes (or until the server cuts it off).
FIREHOSE = r"""#!/usr/bin/python3
import json, os, socket
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
P = "/2018-06-01/runtime"

def request(sock, head):
    sock.sendall(head.encode())

def read_response(f):
    status = f.readline()
    headers = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    body = f.read(int(headers.get("content-length", "0")))
    return status, headers, body

while True:
    s = socket.create_connection((host, int(port)))
    f = s.makefile("rb")
    request(s, "GET %s/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n" % P)
    _, headers, body = read_response(f)
    event = json.loads(body)
    rid = headers["lambda-runtime-aws-request-id"]
    request(s, "POST %s/invocation/%s/response HTTP/1.1\r\nHost: x\r\n"
               "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
               "Content-Type: application/octet-stream\r\n"
               "Transfer-Encoding: chunked\r\n\r\n" % (P, rid))
    piece = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
    try:
        for _ in range(event["mb"] * 16):
            s.sendall(piece)
        s.sendall(b"0\r\n\r\n")
        read_response(f)
    except OSError:
        pass  # cut off by the server
    s.close()
"""

CONNECT_FLOOD = r"""
import os, socket, time
def handler(event, context):
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
    held, refused = [], 0
    for _ in range(event["connections"]):
        s = socket.socket()
        s.settimeout(0.2)
        try:
            s.connect((host, int(port)))
            s.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost:")
            held.append(s)
        except OSError:
            s.close()
            refused += 1
            if refused == 5:  # the backlog is full: further connects only time out
                break
    # Hold them, a header byte now and then (slowloris), until the server cuts them off.
    deadline = time.time() + event["hold_s"]
    open_ = list(held)
    while open_ and time.time() < deadline:
        for s in list(open_):
            try:
                s.settimeout(0.05)
                if s.recv(1) == b"":
                    open_.remove(s)
            except socket.timeout:
                try:
                    s.send(b"x")
                except OSError:
                    open_.remove(s)
            except OSError:
                open_.remove(s)
    for s in held:
        s.close()
    return {"connected": len(held), "still_open": len(open_)}
"""


@pytest.fixture(scope="module")
def bystander(server: Server) -> Bystander:
    return Bystander(server)


def _log_events(server: Server, name: str) -> list[str]:
    logs = server.client("logs")
    pages = logs.get_paginator("filter_log_events").paginate(logGroupName=f"/aws/lambda/{name}")
    return [e["message"] for page in pages for e in page["events"]]


def _report_logged(server: Server, name: str) -> list[str] | None:
    try:
        events = _log_events(server, name)
    except ClientError as exc:  # the group appears with the first batch written
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        return None
    return events if any(m.startswith("REPORT RequestId") for m in events) else None


@pytest.mark.parametrize("newlines", [False, True], ids=["one-endless-line", "short-lines"])
def test_output_flood_is_cut_capped_and_tailed(server, lam, bystander, newlines):
    name = unique("flood")
    python_function(lam, name, FLOOD, Timeout=60, MemorySize=1769)
    assert server.proc is not None
    pid = server.proc.pid
    rss_before = rss_mb(pid)

    def attack() -> dict[str, Any]:
        client = server.client("lambda")
        resp = client.invoke(
            FunctionName=name,
            Payload=json.dumps({"seconds": 4, "newlines": newlines}),
            LogType="Tail",
        )
        return {"resp": resp, "payload": json.loads(resp["Payload"].read())}

    flood = Background(attack)
    # The flood has begun once its first events are in the log store.
    wait_for(lambda: _first_event(server, name), what="the flood's first log events")
    bystander.assert_served_promptly(flood.running)
    peak = rss_mb(pid)
    out = flood.result()
    written = out["payload"]
    assert written > 2 * LOG_CAP_BYTES, written  # the function did write far past the cap
    assert peak - rss_before < 150, (rss_before, peak)

    tail = base64.b64decode(out["resp"]["LogResult"])
    assert len(tail) <= 4096
    assert b"was dropped" in tail and b"REPORT RequestId" in tail

    events = wait_for(lambda: _report_logged(server, name), what="the REPORT line")
    sizes = [len(m.encode()) for m in events]
    assert max(sizes) <= MAX_EVENT_BYTES
    assert sum(s + 26 for s in sizes) <= LOG_CAP_BYTES + 4096
    dropped = [m for m in events if "was dropped" in m]
    assert len(dropped) == 1, dropped
    if not newlines:
        # One endless line arrives as events of exactly CloudWatch's size.
        assert sizes.count(MAX_EVENT_BYTES) >= 30
    assert rss_mb(pid) - rss_before < 150


def _first_event(server: Server, name: str) -> bool:
    try:
        page = server.client("logs").filter_log_events(logGroupName=f"/aws/lambda/{name}", limit=1)
    except ClientError as exc:  # the group appears with the first batch written
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        return False
    return bool(page["events"])


def _firehose(lam: Any) -> str:
    name = unique("firehose")
    lam.create_function(
        FunctionName=name,
        Runtime="provided.al2023",
        Role=ROLE,
        Handler="x.y",
        Timeout=120,
        MemorySize=1769,
        Code={"ZipFile": make_zip({"bootstrap": FIREHOSE}, {"bootstrap": 0o755})},
    )
    return name


def _stream_request(server: Server, name: str, payload: bytes) -> http.client.HTTPResponse:
    """InvokeWithResponseStream over a raw connection, signed by botocore."""
    path = f"/2021-11-15/functions/{name}/response-streaming-invocations"
    req = AWSRequest(method="POST", url=server.endpoint + path, data=payload)
    SigV4Auth(Credentials(server.access_key, server.secret_key), "lambda", "us-east-1").add_auth(
        req
    )
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", path, body=payload, headers=dict(req.headers))
    return conn.getresponse()


def test_stream_to_a_reader_that_stops_reading_then_leaves(server, lam, bystander):
    name = _firehose(lam)
    assert server.proc is not None
    pid = server.proc.pid
    rss_before = rss_mb(pid)
    resp = _stream_request(server, name, json.dumps({"mb": 150}).encode())
    assert resp.status == 200
    resp.read(1024)  # the stream is flowing; then the reader stops reading
    # The function pushes 150 MB as fast as it can; the server holds about a megabyte and
    # pauses it. Measured while it is held back:
    bystander.assert_served_promptly(lambda: not resp.isclosed())
    held = rss_mb(pid) - rss_before
    assert held < 60, held
    resp.close()  # the reader goes away: the stream is cancelled, the function finishes
    wait_for(lambda: _report_logged(server, name), timeout_s=60, what="the invocation's end")
    assert rss_mb(pid) - rss_before < 80


def test_streamed_size_limit_holds_while_streaming(server, lam, bystander):
    name = _firehose(lam)
    resp = _stream_request(server, name, json.dumps({"mb": 260}).encode())
    assert resp.status == 200
    received = 0
    tail = b""
    started = time.monotonic()
    while True:
        data = resp.read(1 << 20)
        if not data:
            break
        received += len(data)
        tail = (tail + data)[-4096:]
    # The stream ended with the error once it passed 200 MiB: the 60 MB past it were
    # never relayed.
    assert 200 * 1024 * 1024 <= received < 205 * 1024 * 1024, received
    assert b"InvokeComplete" in tail and b"Function.ResponseSizeTooLarge" in tail
    assert time.monotonic() - started < 90
    bystander.assert_served_promptly(lambda: True)


@pytest.fixture(scope="module")
def quick_heads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that cuts off a slow request head after 2 s instead of 10."""
    srv = Server(tmp_path_factory.mktemp("heads") / "data", runtime_api_head_timeout_s=2)
    srv.start()
    yield srv
    srv.stop()


FD_SLACK = 48


def test_runtime_api_connection_flood_and_slowloris(quick_heads):
    server = quick_heads
    lam = server.client("lambda")
    bystander = Bystander(server)
    name = unique("connflood")
    python_function(lam, name, CONNECT_FLOOD, Timeout=60)
    assert server.proc is not None
    pid = server.proc.pid
    invoke_json(lam, name, {"connections": 0, "hold_s": 0})  # warm: its fds are counted
    fds_before = open_fds(pid)
    flood = Background(
        lambda: invoke_json(server.client("lambda"), name, {"connections": 300, "hold_s": 20})[0]
    )
    # The server takes a few connections from it and no more.
    wait_for(lambda: open_fds(pid) > fds_before + 3, what="the flood's connections")
    bystander.assert_served_promptly(flood.running)
    # At most the cap (8, its runtime's own among them) plus this test's own API
    # connections (the flood's invoke, a logs client), and some slack for descriptors the
    # server opens meanwhile for other reasons (a bystander's environment or template,
    # store connections): far below the flood's 300.
    assert open_fds(pid) <= fds_before + 8 + 3 + FD_SLACK
    out = flood.result()
    # A few got past the kernel's backlog; every one was cut off by the head deadline
    # before the function stopped holding them.
    assert 0 < out["connected"] <= 8 + 17 + 1, out
    assert out["still_open"] == 0, out
    assert open_fds(pid) <= fds_before + 4 + FD_SLACK  # the flood's connections are gone
    # The function's own runtime still works afterwards.
    again, resp = invoke_json(lam, name, {"connections": 0, "hold_s": 0})
    assert "FunctionError" not in resp and again == {"connected": 0, "still_open": 0}


@pytest.fixture
def rlimit_server(server_factory: Any) -> Iterator[Server]:
    yield server_factory()


def test_server_raises_its_open_files_limit(rlimit_server):
    import resource

    assert rlimit_server.proc is not None
    limits = {}
    for line in open(f"/proc/{rlimit_server.proc.pid}/limits"):
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            limits = {"soft": soft, "hard": hard}
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert limits["soft"] == limits["hard"], limits
    if hard != resource.RLIM_INFINITY:
        assert int(limits["soft"]) == hard
