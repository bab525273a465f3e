"""A caller that tries to make the server read, buffer or compute for it before proving
who it is, or to stall the loop with one request; and what a local user could read of the
data dir. Another function's warm invokes keep their latency while each attack runs."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import Server, invoke_json, python_function, unique
from hostile import Background, Bystander, rss_mb


@pytest.fixture(scope="module")
def bystander(server: Server) -> Bystander:
    return Bystander(server)


def _flood_body(server: Server, head: bytes, total_mb: int, chunked: bool) -> dict[str, Any]:
    """Send ``head`` then up to ``total_mb`` of body as fast as the server takes it; how
    much went before the server answered and closed, and what it answered."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head)
    chunk = b"A" * (1 << 20)
    if chunked:
        chunk = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sent = 0
    try:
        while sent < total_mb << 20:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass  # the server closed on us: it is not reading this body
    answer = b""
    try:
        while len(answer) < 65536:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except OSError:
        pass
    sock.close()
    return {"sent_mb": sent >> 20, "answer": answer}


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_anonymous_huge_body_is_refused_unread(server, bystander, framing):
    assert server.proc is not None
    pid = server.proc.pid
    rss_before = rss_mb(pid)
    length = (
        b"Content-Length: 4294967296\r\n"
        if framing == "content-length"
        else b"Transfer-Encoding: chunked\r\n"
    )
    head = (
        b"POST /2015-03-31/functions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n" + length + b"\r\n"
    )
    attack = Background(lambda: _flood_body(server, head, 2048, framing == "chunked"))
    bystander.assert_served_promptly(lambda: True)
    out = attack.result()
    # Refused from the headers: the server never took the 2 GB it was offered.
    assert out["sent_mb"] < 64, out["sent_mb"]
    assert b"MissingAuthenticationToken" in out["answer"] or out["answer"] == b"", out
    assert rss_mb(pid) - rss_before < 20


def _signed(server: Server, method: str, path: str, body: bytes, **headers: str) -> AWSRequest:
    headers = {"Host": f"127.0.0.1:{server.port}", **headers}
    req = AWSRequest(method=method, url=server.endpoint + path, data=body, headers=headers)
    SigV4Auth(Credentials(server.access_key, server.secret_key), "lambda", "us-east-1").add_auth(
        req
    )
    return req


def _send(server: Server, req: AWSRequest, body: bytes) -> tuple[int, Any, str]:
    """Status, JSON body and x-amzn-ErrorType of one raw request."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    path = req.url.split(str(server.port), 1)[1]
    conn.request(req.method, path, body=body, headers=dict(req.headers))
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, (json.loads(data) if data else {}), resp.getheader("x-amzn-ErrorType", "")


def test_signed_but_oversized_body_is_refused_from_its_length(server):
    # A real signature over a body longer than the route allows (Invoke: 6 MB): refused
    # from Content-Length, before the body is read.
    name = unique("big")
    path = f"/2015-03-31/functions/{name}/invocations"
    head_only = _signed(server, "POST", path, b"")
    headers = dict(head_only.headers)
    headers["Content-Length"] = str(64 << 20)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    lines = [f"POST {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    answer = sock.recv(65536)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"Request must be smaller than 6291456 bytes for the InvokeFunction operation" in answer


def test_payload_hash_must_match_the_body(server, lam):
    name = unique("hash")
    python_function(lam, name, "def handler(e, c):\n    return e\n")
    path = f"/2015-03-31/functions/{name}/invocations"
    body = b'{"amount": 1}'
    req = _signed(
        server, "POST", path, body, **{"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    )
    status, out, _ = _send(server, req, body)
    assert (status, out) == (200, {"amount": 1})
    # The same signed headers with another body: a replay that must not pass.
    status, out, error = _send(server, req, b'{"amount": 1000000}')
    assert (status, error) == (403, "InvalidSignatureException"), out
    assert "x-amz-content-sha256" in out["message"]
    unsigned = _signed(server, "POST", path, body, **{"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    status, out, error = _send(server, unsigned, body)
    assert (status, error) == (403, "InvalidSignatureException"), out


def test_pathological_filter_patterns_cost_only_their_own_request(server, bystander):
    logs = server.client("logs")
    group = unique("/regex")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = int(time.time() * 1000)
    line = "a" * (200 * 1024)
    fields = " ".join(["a"] * 60_000)
    for i in range(4):
        logs.put_log_events(
            logGroupName=group,
            logStreamName="s",
            logEvents=[
                {"timestamp": now + i, "message": line},
                {"timestamp": now + i, "message": fields},
            ],
        )
    patterns = {
        # Refused as CloudWatch refuses it (no groups in its regex syntax).
        "%(a+)+$%": "InvalidParameterException",
        # Catastrophic for a backtracking engine over a 200 KB line of a's.
        "%a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*c%": None,
        '{ $.m = "*a*a*a*a*a*a*a*a*a*a*a*b" }': None,
        "[..., ..., ..., ..., ..., ..., ..., w=b]": None,
        "[" + ", ".join(["..."] * 40) + ", w=b]": None,
    }
    for pattern, error in patterns.items():
        calls: list[float] = []

        def search(pattern: str = pattern, calls: list[float] = calls) -> Any:
            started = time.monotonic()
            try:
                pages = logs.get_paginator("filter_log_events").paginate(
                    logGroupName=group, filterPattern=pattern
                )
                return [e for page in pages for e in page["events"]]
            except Exception as exc:
                return exc
            finally:
                calls.append(time.monotonic() - started)

        job = Background(search)
        bystander.assert_served_promptly(lambda: True, n=5)
        out = job.result()
        if error:
            assert error in str(out), (pattern, out)
        else:
            assert out == [], (pattern, out)
        assert calls[0] < 15, (pattern, calls)


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)) or ".": stat.S_IMODE(p.lstat().st_mode)
        for p in [root, *root.rglob("*")]
    }


def test_secrets_on_disk_are_private(server_factory):
    srv = server_factory()
    lam = srv.client("lambda")
    name = unique("secretive")
    python_function(
        lam,
        name,
        "def handler(e, c):\n    print('a log line')\n    return 1\n",
        Environment={"Variables": {"DB_PASSWORD": "hunter2-secret"}},
    )
    invoke_json(lam, name)
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")
    data = srv.data_dir
    modes = _modes(data)
    assert modes["."] == 0o700
    secret_files = [p for p in modes if p.endswith((".db", "-wal", "-shm", ".json")) or "zips" in p]
    assert {"metadata.db", "logs.db", "queue.db", "metering.db"} <= set(secret_files)
    assert any(p.endswith("-wal") for p in secret_files)  # checked while the server runs
    loose = {p: oct(m) for p, m in modes.items() if p in secret_files and m & 0o077}
    assert not loose, loose
    dirs = {"code", "code/zips", "code/trees"}
    assert all(modes[d] == 0o700 for d in dirs), {d: oct(modes[d]) for d in dirs}
    assert b"hunter2-secret" in (data / "metadata.db").read_bytes() + b"".join(
        p.read_bytes() for p in data.glob("metadata.db-wal")
    )
    # Another local user (nobody) can neither read the database nor list the data dir.
    if os.geteuid() == 0:
        for cmd in (["cat", str(data / "metadata.db")], ["ls", str(data)]):
            run = subprocess.run(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd],
                capture_output=True,
            )
            assert run.returncode != 0 and b"Permission denied" in run.stderr, run
    # And the function still runs from its (bind-mounted) code.
    out, resp = invoke_json(lam, name)
    assert out == 1 and "FunctionError" not in resp


def test_generated_credentials_are_private(tmp_path):
    from firebox.credentials import load_credentials
    from firebox.settings import Settings

    data = tmp_path / "fresh"
    creds = load_credentials(Settings(data_dir=data))
    assert creds is not None
    assert stat.S_IMODE((data / "credentials.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
