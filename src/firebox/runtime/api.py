"""The Lambda Runtime API (2018-06-01), served for one environment on its own socket.

Each environment's runtime talks to a listening socket its sandbox handed back, so a
runtime can only ever reach its own environment. The protocol is a handful of requests
from one well-behaved client on loopback, on the path of every invoke: it is served by a
small HTTP/1.1 protocol of its own rather than a web framework, which cost about a third
of the server's CPU per warm invoke (two of an invoke's three HTTP exchanges are here).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import socket
from collections.abc import Callable
from typing import cast

from firebox.workers.environment import (
    MAX_RESPONSE_BYTES,
    STREAM_TOO_LARGE,
    Environment,
    RuntimeAPIError,
)
from firebox.workers.stream import MAX_STREAM_BYTES, ResponseStream

log = logging.getLogger(__name__)

_PREFIX = "/2018-06-01/runtime"
_NEXT = _PREFIX + "/invocation/next"
_INIT_ERROR = _PREFIX + "/init/error"
_INVOCATION_RE = re.compile(r"^/2018-06-01/runtime/invocation/([^/]+)/(response|error)$")
MAX_ERROR_BYTES = 1024 * 1024
MAX_HEAD_BYTES = 64 * 1024
# A runtime needs one connection (two while an extension or a stream overlaps): more than
# a few is a function holding the server's descriptors. Past this many, the listener is
# not read until one closes, so further connects wait in the kernel's backlog.
MAX_CONNECTIONS = 8
_BACKLOG = 16

_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}
_ACCEPTED_BODY = b'{"status":"OK"}'


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    head.append("Content-Type: application/json")
    head.append(f"Content-Length: {len(body)}")
    for key, value in (headers or {}).items():
        # A value carrying CR or LF would split the header block.
        head.append(f"{key}: {value.replace(chr(13), ' ').replace(chr(10), ' ')}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "replace") + body


def _error(status: int, error_type: str, message: str) -> bytes:
    body = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
    return _response(status, body)


_ACCEPTED = _response(202, _ACCEPTED_BODY)


class _Body:
    """Reads one request body (Content-Length or chunked) into a sink, piece by piece."""

    def __init__(self, length: int | None, sink: Callable[[bytes], None]) -> None:
        self.remaining = length if length is not None else 0
        self.chunked = length is None
        self.sink = sink
        self._state = "size"  # chunked: size | data | data_end | trailer
        # Trailers of a chunked body (lower-cased names): how a runtime reports an error
        # after a streamed response has started.
        self.trailers: dict[str, str] = {}

    def feed(self, buf: bytearray) -> bool:
        """Consume what it can from buf; True once the body is complete."""
        if not self.chunked:
            take = min(self.remaining, len(buf))
            if take:
                self.sink(bytes(buf[:take]))
                del buf[:take]
                self.remaining -= take
            return self.remaining == 0
        while True:
            if self._state == "data":
                take = min(self.remaining, len(buf))
                if take:
                    self.sink(bytes(buf[:take]))
                    del buf[:take]
                    self.remaining -= take
                if self.remaining:
                    return False
                self._state = "data_end"
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise ValueError("chunk line too long")
                return False
            line = bytes(buf[:end])
            del buf[: end + 2]
            if self._state == "data_end":
                self._state = "size"
            elif self._state == "size":
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    self._state = "trailer"
                else:
                    self.remaining, self._state = size, "data"
            elif not line:  # the empty line that ends the trailers
                return True
            else:
                key, _, value = line.decode("latin-1").partition(":")
                self.trailers[key.strip().lower()] = value.strip()


class _Collect:
    """Keeps at most ``limit`` bytes of a body but counts all of it: a response past
    Lambda's limit becomes a function error, not a broken connection."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.parts: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        if self.size < self.limit:
            self.parts.append(data[: self.limit - self.size])
        self.size += len(data)

    def body(self) -> bytes:
        return b"".join(self.parts)


class _Connection(asyncio.Protocol):
    """One runtime connection: requests one at a time, kept alive."""

    def __init__(self, server: RuntimeAPIServer) -> None:
        self.server = server
        self.env = server.env
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.body: _Body | None = None
        self.on_body_done: Callable[[], bytes | None] | None = None
        self.on_lost: Callable[[], None] | None = None
        self.close_after = False
        self.waiting: asyncio.Task[None] | None = None  # a /next in progress
        self._head_deadline: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        if not self.buf and self.body is None and self.waiting is None:
            self._arm_head_deadline()
        self.buf += data
        try:
            self._process()
        except (ValueError, UnicodeDecodeError):
            self._send(_error(400, "InvalidRequest", "malformed HTTP request"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        self.server.connection_closed(self)
        self.transport = None
        if self.waiting is not None:
            # The runtime hung up while polling: nothing was taken, nothing is lost.
            self.waiting.cancel()
        if self.on_lost is not None:
            self.on_lost()
            self.on_lost = None

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            loop = asyncio.get_running_loop()
            self._head_deadline = loop.call_later(self.server.head_timeout_s, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.body is None and self.waiting is None:
            self.abort()

    def pause_reading(self) -> None:
        if self.transport is not None and self.transport.is_reading():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_reading():
            self.transport.resume_reading()

    # --- requests -------------------------------------------------------------------

    def _process(self) -> None:
        while self.transport is not None and self.waiting is None:
            if self.body is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > MAX_HEAD_BYTES:
                        self._send(_error(431, "InvalidRequest", "request head too large"))
                        self.abort()
                    return
                self._disarm_head_deadline()
                head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
                del self.buf[: end + 4]
                method, target, version = head[0].split(" ", 2)
                headers = {}
                for line in head[1:]:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
                connection = headers.get("connection", "").lower()
                self.close_after = connection == "close" or (
                    version == "HTTP/1.0" and connection != "keep-alive"
                )
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    length: int | None = None
                else:
                    length = int(headers.get("content-length", "0") or 0)
                    if length < 0:
                        raise ValueError("negative Content-Length")
                if headers.get("expect", "").lower() == "100-continue" and self.transport:
                    # curl holds back a body over 1 KB for a second unless told to go on.
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self._route(method, target.split("?", 1)[0], headers, length)
            assert self.body is not None
            if not self.body.feed(self.buf):
                return
            done, self.on_body_done, self.body = self.on_body_done, None, None
            if self.buf:
                # The next request is already here (pipelined): its head is on the clock.
                self._arm_head_deadline()
            self.on_lost = None
            reply = done() if done is not None else None
            if reply is not None:
                self._send(reply)

    def _expect(
        self, length: int | None, sink: Callable[[bytes], None], done: Callable[[], bytes | None]
    ) -> None:
        self.body = _Body(length, sink)
        self.on_body_done = done

    def _discard_then(self, length: int | None, reply: bytes) -> None:
        self._expect(length, lambda _data: None, lambda: reply)

    def _route(self, method: str, path: str, headers: dict[str, str], length: int | None) -> None:
        env = self.env
        if path == _NEXT:
            if method != "GET":
                return self._discard_then(length, _error(405, "MethodNotAllowed", "use GET"))
            return self._expect(length, lambda _data: None, self._start_next)
        m = _INVOCATION_RE.match(path)
        if m is not None:
            if method != "POST":
                return self._discard_then(length, _error(405, "MethodNotAllowed", "use POST"))
            request_id, kind = m.group(1), m.group(2)
            if kind == "error":
                error_type = headers.get("lambda-runtime-function-error-type", "")
                sink = _Collect(MAX_ERROR_BYTES + 1)

                def post_error() -> bytes:
                    if sink.size > MAX_ERROR_BYTES:
                        return _error(413, "RequestEntityTooLarge", "error payload too large")
                    return self._call(
                        lambda: env.post_error(
                            request_id, _error_body(sink.body(), error_type), error_type
                        )
                    )

                return self._expect(length, sink, post_error)
            mode = headers.get("lambda-runtime-function-response-mode", "")
            if mode.lower() == "streaming":
                return self._route_stream(request_id, headers, length)
            collect = _Collect(MAX_RESPONSE_BYTES + 1)
            return self._expect(
                length,
                collect,
                lambda: self._call(lambda: env.post_response(request_id, collect.body())),
            )
        if path == _INIT_ERROR:
            if method != "POST":
                return self._discard_then(length, _error(405, "MethodNotAllowed", "use POST"))
            error_type = headers.get("lambda-runtime-function-error-type", "")
            sink = _Collect(MAX_ERROR_BYTES + 1)
            return self._expect(
                length,
                sink,
                lambda: self._call(
                    lambda: env.post_init_error(
                        _error_body(sink.body(), error_type), error_type or "Runtime.Unknown"
                    )
                ),
            )
        return self._discard_then(
            length, _error(404, "NotFound", f"no such Runtime API path: {path}")
        )

    def _route_stream(self, request_id: str, headers: dict[str, str], length: int | None) -> None:
        """A streamed response: hand each piece on as it arrives (or collect it, when the
        caller invoked with plain Invoke, which answers with the whole body)."""
        env = self.env
        try:
            stream: ResponseStream | None = env.begin_stream(
                request_id, headers.get("content-type")
            )
        except RuntimeAPIError as exc:
            return self._discard_then(length, _error(exc.status, exc.error_type, exc.message))
        collect = _Collect(MAX_RESPONSE_BYTES + 1)
        target: Callable[[bytes], None] = stream.push if stream is not None else collect
        received = 0
        refused = False

        def sink(data: bytes) -> None:
            # The streamed-size limit holds as the bytes arrive, not at the end: past it
            # the caller gets the error now and the runtime's connection is cut.
            nonlocal received, refused
            if refused:
                return
            received += len(data)
            if received <= MAX_STREAM_BYTES:
                target(data)
                return
            refused = True
            if stream is not None:
                env.end_stream(request_id, STREAM_TOO_LARGE)
            else:
                with contextlib.suppress(RuntimeAPIError):
                    env.post_error(request_id, *STREAM_TOO_LARGE)
            self.abort()

        body = _Body(length, sink)

        def finish() -> bytes:
            error = _trailer_error(body.trailers)
            if refused:
                return _error(413, "RequestEntityTooLarge", "streamed response too large")
            if stream is not None:
                env.end_stream(request_id, error)
                return _ACCEPTED
            if error is not None:
                return self._call(lambda: env.post_error(request_id, error[0], error[1]))
            return self._call(lambda: env.post_response(request_id, collect.body()))

        self.body, self.on_body_done = body, finish
        if stream is not None:
            # A reader slower than the function holds the runtime back (its connection is
            # not read) instead of the server holding the bytes.
            stream.attach(self.pause_reading, self.resume_reading)
            # A runtime that dies mid-stream still ends the stream.
            self.on_lost = lambda: env.end_stream(request_id)

    def _call(self, post: Callable[[], None]) -> bytes:
        try:
            post()
        except RuntimeAPIError as exc:
            return _error(exc.status, exc.error_type, exc.message)
        return _ACCEPTED

    # --- /next ------------------------------------------------------------------------

    def _start_next(self) -> None:
        self.waiting = asyncio.get_running_loop().create_task(self._serve_next())
        return None

    async def _serve_next(self) -> None:
        try:
            inv = await self.env.next_invocation()
        except RuntimeAPIError as exc:
            reply = _error(exc.status, exc.error_type, exc.message)
        else:
            headers = {
                "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": inv.invoked_arn or self.env.fv.arn,
                "Lambda-Runtime-Trace-Id": inv.trace_id,
            }
            if inv.client_context:
                headers["Lambda-Runtime-Client-Context"] = inv.client_context
            if inv.cognito_identity:
                headers["Lambda-Runtime-Cognito-Identity"] = inv.cognito_identity
            reply = _response(200, inv.payload, headers)
        self.waiting = None
        self._send(reply)
        if self.buf and self.transport is not None:
            self._process()

    def _send(self, data: bytes) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if self.close_after:
            self.transport.close()


class RuntimeAPIServer:
    """Serves one environment's Runtime API until closed, on at most MAX_CONNECTIONS
    connections at once."""

    def __init__(self, env: Environment, head_timeout_s: float = 10.0) -> None:
        self.env = env
        # A request head not complete after this long is cut off (slowloris).
        self.head_timeout_s = head_timeout_s
        self.connections: set[_Connection] = set()
        self._sock: socket.socket | None = None
        self._accepting = False
        # Accepted and not yet closed (a connection counts from accept, before its
        # protocol is made).
        self._open = 0

    async def start(self, sock: socket.socket) -> None:
        # Our own descriptor of the listener: the sandbox closes its own when the
        # environment ends, and a descriptor must never close under a registered reader.
        own = sock.dup()
        own.setblocking(False)
        own.listen(_BACKLOG)
        self._sock = own
        self._accept_more()

    def _accept_more(self) -> None:
        if self._sock is not None and not self._accepting and self._open < MAX_CONNECTIONS:
            asyncio.get_running_loop().add_reader(self._sock.fileno(), self._on_acceptable)
            self._accepting = True

    def _stop_accepting(self) -> None:
        if self._accepting and self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._accepting = False

    def _on_acceptable(self) -> None:
        loop = asyncio.get_running_loop()
        while self._sock is not None:
            if self._open >= MAX_CONNECTIONS:
                self._stop_accepting()
                return
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of descriptors, or the listener is gone: try again when one closes.
                log.warning("runtime API of %s cannot accept: %s", self.env.id, exc)
                self._stop_accepting()
                return
            self._open += 1
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            loop.create_task(self._serve(conn))

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: _Connection(self), sock=conn
            )
        except OSError:
            conn.close()
            self._closed_one()

    def connection_closed(self, conn: _Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self._closed_one()

    def _closed_one(self) -> None:
        self._open -= 1
        self._accept_more()

    async def close(self) -> None:
        self._stop_accepting()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for conn in list(self.connections):
            conn.abort()


def _trailer_error(trailers: dict[str, str]) -> tuple[bytes, str] | None:
    """Lambda-Runtime-Function-Error-Type / -Body (base64) trailers: the stream failed
    after it started; the caller gets the error in the stream's completion."""
    error_type = trailers.get("lambda-runtime-function-error-type")
    if not error_type:
        return None
    try:
        raw = base64.b64decode(trailers.get("lambda-runtime-function-error-body", ""))
    except (binascii.Error, ValueError):
        raw = b""
    return _error_body(raw, error_type), error_type


def _error_body(body: bytes, error_type: str) -> bytes:
    """The error payload the caller sees: the runtime's JSON, or one made from its type."""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return body
    return json.dumps(
        {"errorType": error_type or "Unhandled", "errorMessage": body.decode(errors="replace")}
    ).encode()
