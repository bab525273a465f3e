"""The Lambda Runtime API (2018-06-01), served for one environment on its own socket.

Each environment gets its own low-level aiohttp server bound to the listening socket its
sandbox handed back, so a runtime can only ever reach its own environment.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket

from aiohttp import web

from firebox.workers.environment import MAX_RESPONSE_BYTES, Environment, RuntimeAPIError

_PREFIX = "/2018-06-01/runtime"
_INVOCATION_RE = re.compile(r"^/2018-06-01/runtime/invocation/([^/]+)/(response|error)$")
MAX_ERROR_BYTES = 1024 * 1024


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps({"errorMessage": message, "errorType": error_type}).encode(),
        content_type="application/json",
    )


def _accepted() -> web.Response:
    return web.Response(status=202, body=b'{"status":"OK"}', content_type="application/json")


class RuntimeAPIServer:
    """Serves one environment's Runtime API until closed."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self._server = web.Server(self._handle, access_log=None)
        self._listener: asyncio.base_events.Server | None = None

    async def start(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._server, sock=sock, backlog=16)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        await self._server.shutdown(0.1)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        try:
            if path == f"{_PREFIX}/invocation/next":
                if request.method != "GET":
                    return _error(405, "MethodNotAllowed", "use GET")
                return await self._next()
            m = _INVOCATION_RE.match(path)
            if m is not None:
                if request.method != "POST":
                    return _error(405, "MethodNotAllowed", "use POST")
                mode = request.headers.get("Lambda-Runtime-Function-Response-Mode", "")
                if m.group(2) == "response" and mode.lower() == "streaming":
                    return await self._streamed(m.group(1), request)
                body = await _read_body(request, MAX_RESPONSE_BYTES + 1)
                if m.group(2) == "response":
                    self.env.post_response(m.group(1), body)
                else:
                    if len(body) > MAX_ERROR_BYTES:
                        return _error(413, "RequestEntityTooLarge", "error payload too large")
                    etype = request.headers.get("Lambda-Runtime-Function-Error-Type", "")
                    self.env.post_error(m.group(1), _error_body(body, etype), etype)
                return _accepted()
            if path == f"{_PREFIX}/init/error":
                if request.method != "POST":
                    return _error(405, "MethodNotAllowed", "use POST")
                body = await _read_body(request, MAX_ERROR_BYTES + 1)
                etype = request.headers.get("Lambda-Runtime-Function-Error-Type", "")
                self.env.post_init_error(_error_body(body, etype), etype or "Runtime.Unknown")
                return _accepted()
        except RuntimeAPIError as exc:
            return _error(exc.status, exc.error_type, exc.message)
        return _error(404, "NotFound", f"no such Runtime API path: {path}")

    async def _streamed(self, request_id: str, request: web.BaseRequest) -> web.Response:
        """A streamed response: hand each piece on as it arrives (or collect it, when the
        caller invoked with plain Invoke, which answers with the whole body)."""
        stream = self.env.begin_stream(request_id, request.headers.get("Content-Type"))
        if stream is None:
            self.env.post_response(request_id, await _read_body(request, MAX_RESPONSE_BYTES + 1))
            return _accepted()
        try:
            async for chunk in request.content.iter_any():
                stream.push(chunk)
        finally:
            self.env.end_stream(request_id)
        return _accepted()

    async def _next(self) -> web.Response:
        inv = await self.env.next_invocation()
        fv = self.env.fv
        headers = {
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": inv.invoked_arn or fv.arn,
            "Lambda-Runtime-Trace-Id": inv.trace_id,
            "Content-Type": "application/json",
        }
        if inv.client_context:
            headers["Lambda-Runtime-Client-Context"] = inv.client_context
        if inv.cognito_identity:
            headers["Lambda-Runtime-Cognito-Identity"] = inv.cognito_identity
        return web.Response(status=200, body=inv.payload, headers=headers)


async def _read_body(request: web.BaseRequest, limit: int) -> bytes:
    """Read at most ``limit`` bytes of the body (more is drained and dropped): a response
    past Lambda's limit must become a function error, not a broken connection."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        if size < limit:
            chunks.append(chunk[: limit - size])
        size += len(chunk)
    return b"".join(chunks)


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
