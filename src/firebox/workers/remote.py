"""A worker in another process or on another host, reached over the internal protocol.

``RemoteWorker`` is the front end's side of workers/wire.py: one persistent connection
per worker, many invocations multiplexed on it. When the connection drops, every
invocation waiting on it fails with WorkerLost (its outcome is unknown); the next one
reconnects, and a worker that cannot be reached is WorkerUnavailable, so placement tries
another.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from firebox.control.resolve import FunctionVersion
from firebox.workers import wire
from firebox.workers.environment import Outcome
from firebox.workers.stream import ResponseStream
from firebox.workers.worker import InvokeReply, InvokeRequest, WorkerLost, WorkerUnavailable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
# Function versions whose configuration a connection has already carried.
SENT_CONFIGS = 4096


def outcome_header(reply: InvokeReply) -> dict[str, Any]:
    o = reply.outcome
    return {
        "rid": o.request_id,
        "st": o.status,
        "e": o.error_type,
        "du": o.duration_ms,
        "i": o.init_duration_ms,
        "m": o.max_memory_mb,
        "c": reply.cold,
        "lt": reply.log_tail,
        "w": reply.worker,
        "id": reply.idle,
    }


def reply_from(header: dict[str, Any], body: bytes) -> InvokeReply:
    outcome = Outcome(
        request_id=header["rid"],
        status=header["st"],
        body=body,
        error_type=header.get("e") or "",
        duration_ms=float(header.get("du") or 0.0),
        init_duration_ms=header.get("i"),
        max_memory_mb=int(header.get("m") or 0),
    )
    return InvokeReply(
        outcome,
        bool(header.get("c")),
        header.get("lt"),
        worker=str(header.get("w") or ""),
        idle=int(header.get("id") or 0),
    )


class _Pending:
    __slots__ = ("future", "stream")

    def __init__(self, future: asyncio.Future[InvokeReply], stream: ResponseStream | None):
        self.future = future
        self.stream = stream


class _ClientConnection(wire.Connection):
    def __init__(self, key: bytes, member: str) -> None:
        super().__init__()
        self._key = key
        self._member = member
        self._nonce = wire.new_nonce()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending: dict[int, _Pending] = {}
        self.calls: dict[int, asyncio.Future[Any]] = {}
        self.sent: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._next_channel = 1

    def channel(self) -> int:
        self._next_channel = (self._next_channel + 1) & 0x7FFFFFFF or 1
        return self._next_channel

    def dispatch(self, kind: int, channel: int, header: dict[str, Any], body: bytes) -> None:
        if not self.ready.done():
            if kind == wire.HELLO:
                server_nonce = bytes.fromhex(header["n"])
                self._server_nonce = server_nonce
                self.send(
                    wire.AUTH,
                    0,
                    {
                        "n": self._nonce.hex(),
                        "m": self._member,
                        "p": wire.proof(self._key, b"client", server_nonce, self._nonce),
                    },
                )
                return
            if kind == wire.WELCOME:
                expected = wire.proof(self._key, b"server", self._nonce, self._server_nonce)
                import hmac

                if hmac.compare_digest(expected, str(header.get("p", ""))):
                    self.ready.set_result(None)
                    return
            self.ready.set_exception(wire.ProtocolError("the worker failed to authenticate"))
            self.fail(wire.ProtocolError("bad handshake"))
            return
        if kind in (wire.CALL_RESULT, wire.ERROR) and channel in self.calls:
            fut = self.calls.pop(channel)
            if not fut.done():
                if kind == wire.CALL_RESULT:
                    fut.set_result(header.get("r"))
                else:
                    fut.set_exception(RuntimeError(header.get("message", "call failed")))
            return
        pending = self.pending.get(channel)
        if pending is None:
            return
        if kind == wire.RESULT:
            del self.pending[channel]
            if pending.stream is not None:
                pending.stream.close()
            if not pending.future.done():
                pending.future.set_result(reply_from(header, body))
        elif kind == wire.STREAM_BEGIN and pending.stream is not None:
            pending.stream.begin(header.get("ct"), str(header.get("v") or ""))
        elif kind == wire.STREAM_CHUNK and pending.stream is not None:
            pending.stream.push(body)
        elif kind == wire.ERROR:
            del self.pending[channel]
            if pending.stream is not None:
                pending.stream.close()
            if not pending.future.done():
                exc: Exception = (
                    WorkerUnavailable(header.get("message", "refused"))
                    if header.get("kind") == "unavailable"
                    else WorkerLost(self._member)
                )
                pending.future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("connection closed during handshake"))
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(WorkerLost(self._member))
            if pending.stream is not None:
                pending.stream.close()
        self.pending.clear()
        for fut in self.calls.values():
            if not fut.done():
                fut.set_exception(ConnectionError("worker connection lost"))
        self.calls.clear()


class RemoteWorker:
    """The front end's handle on one remote worker (host:port or unix:/path)."""

    def __init__(self, name: str, address: str, key: bytes, member: str) -> None:
        self._name = name
        self.address = address
        self._key = key
        self._member = member
        self._conn: _ClientConnection | None = None
        self._connecting: asyncio.Lock | None = None

    @property
    def name(self) -> str:
        return self._name

    async def _connection(self) -> _ClientConnection:
        conn = self._conn
        if conn is not None and not conn.closed.done():
            return conn
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            conn = self._conn
            if conn is not None and not conn.closed.done():
                return conn
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    if self.address.startswith("unix:"):
                        _, conn = await loop.create_unix_connection(
                            lambda: _ClientConnection(self._key, self._member),
                            self.address[5:],
                        )
                    else:
                        host, _, port = self.address.rpartition(":")
                        _, conn = await loop.create_connection(
                            lambda: _ClientConnection(self._key, self._member),
                            host.strip("[]"),
                            int(port),
                        )
                    await conn.ready
            except (OSError, TimeoutError, wire.ProtocolError) as exc:
                raise WorkerUnavailable(f"cannot reach worker {self._name}: {exc}") from None
            self._conn = conn
            return conn

    async def invoke(self, request: InvokeRequest) -> InvokeReply:
        conn = await self._connection()
        fv = request.fv
        channel = conn.channel()
        header: dict[str, Any] = {
            "k": list(fv.key),
            "r": request.request_id,
            "a": request.invoked_arn,
        }
        if fv.key not in conn.sent:
            header["cf"] = fv.config
            header["nw"] = fv.network
            conn.sent[fv.key] = None
            if len(conn.sent) > SENT_CONFIGS:
                conn.sent.popitem(last=False)
        else:
            conn.sent.move_to_end(fv.key)
        if request.client_context is not None:
            header["cc"] = request.client_context
        if request.trace_id:
            header["t"] = request.trace_id
        if request.want_log:
            header["l"] = 1
        if request.durable_logs:
            header["d"] = 1
        if request.stream is not None:
            header["s"] = 1
        future: asyncio.Future[InvokeReply] = asyncio.get_running_loop().create_future()
        conn.pending[channel] = _Pending(future, request.stream)
        conn.send(wire.INVOKE, channel, header, request.payload)
        try:
            return await future
        except asyncio.CancelledError:
            # The caller went away: tell the worker (a stream stops; the invocation itself
            # runs to its end, as on Lambda).
            conn.pending.pop(channel, None)
            conn.send(wire.CANCEL, channel, None)
            raise

    async def call(self, method: str, **args: Any) -> Any:
        """An administrative call (metrics, provisioning …) answered by the worker."""
        conn = await self._connection()
        channel = conn.channel()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn.calls[channel] = future
        conn.send(wire.CALL, channel, {"m": method, "a": args})
        return await future

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def function_version_from(header: dict[str, Any]) -> FunctionVersion:
    name, version, revision = header["k"]
    return FunctionVersion(name, version, revision, header["cf"], bool(header.get("nw", True)))
