"""The worker's side of the internal protocol: front ends' invocations in, results out.

Each INVOKE frame becomes a task running ``Worker.invoke``; a streamed response is
forwarded as STREAM frames while the front end keeps reading (back-pressure reaches the
runtime through the response stream's bounded queue). Administrative CALLs (metrics,
provisioning) are answered by handlers the worker role registers.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from firebox.control.resolve import FunctionVersion
from firebox.errors import FireboxError
from firebox.workers import wire
from firebox.workers.remote import SENT_CONFIGS, function_version_from, outcome_header
from firebox.workers.stream import ResponseStream
from firebox.workers.worker import InvokeRequest, Worker, WorkerUnavailable

log = logging.getLogger(__name__)

CallHandler = Callable[..., Awaitable[Any]]


class _ServerConnection(wire.Connection):
    def __init__(self, server: WireServer) -> None:
        super().__init__()
        self._server = server
        self._nonce = wire.new_nonce()
        self._authenticated = False
        # Twice the client's bound: every configuration the client believes it sent is
        # still here (both sides see the same sequence of versions).
        self._configs: OrderedDict[tuple[str, str, str], FunctionVersion] = OrderedDict()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._streams: dict[int, ResponseStream] = {}
        self.peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._server.connections.add(self)
        self.send(wire.HELLO, 0, {"n": self._nonce.hex()})

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._server.connections.discard(self)
        for stream in self._streams.values():
            stream.close()

    def dispatch(self, kind: int, channel: int, header: dict[str, Any], body: bytes) -> None:
        if not self._authenticated:
            client_nonce = bytes.fromhex(str(header.get("n", "")))
            expected = wire.proof(self._server.key, b"client", self._nonce, client_nonce)
            if kind != wire.AUTH or not hmac.compare_digest(expected, str(header.get("p", ""))):
                log.warning("internal connection failed to authenticate; dropped")
                self.fail(wire.ProtocolError("bad handshake"))
                return
            self._authenticated = True
            self.peer = str(header.get("m", "?"))
            self.send(
                wire.WELCOME,
                0,
                {"p": wire.proof(self._server.key, b"server", client_nonce, self._nonce)},
            )
            return
        if kind == wire.INVOKE:
            try:
                request = self._request(header, body)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("malformed INVOKE from %s: %r", self.peer, exc)
                self.send(wire.ERROR, channel, {"kind": "error", "message": "malformed"})
                return
            task = asyncio.ensure_future(self._invoke(channel, request))
            self._tasks[channel] = task
            task.add_done_callback(self._forget_task(channel))
        elif kind == wire.CANCEL:
            stream = self._streams.get(channel)
            if stream is not None:
                stream.close()
        elif kind == wire.CALL:
            asyncio.ensure_future(self._call(channel, header))

    def _forget_task(self, channel: int) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._tasks.pop(channel, None)

        return forget

    def _request(self, header: dict[str, Any], body: bytes) -> InvokeRequest:
        name, version, revision = header["k"]
        key = (str(name), str(version), str(revision))
        if "cf" in header:
            fv = function_version_from(header)
            self._configs[fv.key] = fv
            if len(self._configs) > 2 * SENT_CONFIGS:
                self._configs.popitem(last=False)
        else:
            fv = self._configs[key]
            self._configs.move_to_end(fv.key)
        stream = ResponseStream() if header.get("s") else None
        return InvokeRequest(
            fv=fv,
            request_id=str(header["r"]),
            payload=body,
            invoked_arn=str(header["a"]),
            client_context=header.get("cc"),
            trace_id=str(header.get("t") or ""),
            want_log=bool(header.get("l")),
            durable_logs=bool(header.get("d")),
            stream=stream,
        )

    async def _invoke(self, channel: int, request: InvokeRequest) -> None:
        worker = self._server.worker
        if worker is None:
            self.send(wire.ERROR, channel, {"kind": "unavailable", "message": "not started"})
            return
        invoke = asyncio.ensure_future(worker.invoke(request))
        stream = request.stream
        if stream is not None:
            self._streams[channel] = stream
            try:
                if await stream.wait_started(invoke):
                    self.send(
                        wire.STREAM_BEGIN, channel, {"ct": stream.content_type, "v": stream.version}
                    )
                    async for chunk in stream:
                        self.send(wire.STREAM_CHUNK, channel, None, chunk)
                        await self.drain()
            finally:
                self._streams.pop(channel, None)
        try:
            reply = await invoke
        except WorkerUnavailable as exc:
            self.send(wire.ERROR, channel, {"kind": "unavailable", "message": str(exc)})
            return
        except FireboxError as exc:
            self.send(wire.ERROR, channel, {"kind": "error", "message": exc.message})
            return
        except Exception:
            log.exception("invocation %s failed in the worker", request.request_id)
            self.send(wire.ERROR, channel, {"kind": "error", "message": "worker error"})
            return
        self.send(wire.RESULT, channel, outcome_header(reply), reply.outcome.body)

    async def _call(self, channel: int, header: dict[str, Any]) -> None:
        handler = self._server.calls.get(str(header.get("m")))
        if handler is None:
            self.send(wire.ERROR, channel, {"kind": "error", "message": "unknown call"})
            return
        try:
            result = await handler(**(header.get("a") or {}))
        except Exception as exc:
            log.exception("internal call %s failed", header.get("m"))
            self.send(wire.ERROR, channel, {"kind": "error", "message": str(exc)})
            return
        self.send(wire.CALL_RESULT, channel, {"r": result})


class WireServer:
    """Listens for front ends on a TCP address or a Unix socket."""

    def __init__(self, key: bytes, worker: Worker | None = None) -> None:
        # The worker INVOKEs go to: set (and replaced, at a worker's lease end) by the
        # worker role.
        self.worker = worker
        self.key = key
        self.calls: dict[str, CallHandler] = {}
        self.connections: set[_ServerConnection] = set()
        self._server: asyncio.AbstractServer | None = None
        self.address = ""
        # The address other nodes use (a public host name instead of a bind address).
        self.advertised = ""

    async def start(
        self, host: str, port: int = 0, unix_path: str | None = None, advertise_host: str = ""
    ) -> str:
        """Start listening; returns the address front ends should connect to."""
        loop = asyncio.get_running_loop()
        if unix_path is not None:
            self._server = await loop.create_unix_server(lambda: _ServerConnection(self), unix_path)
            self.address = f"unix:{unix_path}"
        else:
            self._server = await loop.create_server(lambda: _ServerConnection(self), host, port)
            bound = self._server.sockets[0].getsockname()
            shown = f"[{host}]" if ":" in host else host
            self.address = f"{shown}:{bound[1]}"
        self.advertised = self.address
        if advertise_host and unix_path is None:
            self.advertised = f"{advertise_host}:{self.address.rpartition(':')[2]}"
        return self.advertised

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self.connections):
                conn.close()
            await self._server.wait_closed()
            self._server = None
