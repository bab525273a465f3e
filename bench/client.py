"""Lean HTTP/1.1 clients for the benchmarks: requests are built (and SigV4-signed) before
the clock starts and written as bytes on keep-alive connections, so the client's own cost
per request stays in the tens of microseconds on a machine with two cores.

``SyncConn`` is a blocking socket (latency at concurrency 1); ``AsyncConn`` an asyncio
stream (throughput and bursts). Both parse only what a Lambda API response carries:
a status line, headers and a Content-Length body.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def sign(
    creds: Credentials,
    method: str,
    url: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    service: str = "lambda",
) -> dict[str, str]:
    """botocore's SigV4 headers for one request (what boto3 would send)."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(creds, service, REGION).add_auth(request)
    return dict(request.headers.items())


def build(method: str, host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of one HTTP/1.1 request with a Content-Length body."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [
        f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length")
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def signed_request(
    creds: Credentials,
    host: str,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> bytes:
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    return build(method, host, path, body, sign(creds, method, f"http://{host}{path}", body, hdrs))


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return status, headers


class SyncConn:
    """One blocking keep-alive connection."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""

    def request(self, raw: bytes) -> Response:
        self.sock.sendall(raw)
        buf = self._buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        status, headers = _parse_head(buf[:end])
        length = int(headers.get("content-length", "0"))
        body_start = end + 4
        while len(buf) - body_start < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        self._buf = buf[body_start + length :]
        return Response(status, headers, buf[body_start : body_start + length])

    def close(self) -> None:
        self.sock.close()


class AsyncConn:
    """One asyncio keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> AsyncConn:
        reader, writer = await asyncio.open_connection(host, port, limit=2**20)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> Response:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, headers = _parse_head(head[:-4])
        length = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(length) if length else b""
        return Response(status, headers, body)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
