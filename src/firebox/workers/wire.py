"""The internal protocol between front ends and workers: frames on persistent connections.

Lean on purpose: an invocation is one INVOKE frame out and one RESULT frame back (with
STREAM frames between them for a streamed response), many invocations share a connection,
and a function version's configuration crosses a connection once, not with every invoke.

A frame is ``!IBII`` (length of what follows the first 4 bytes, type, channel, header
length), a JSON header and a raw body. Channels number the concurrent invocations of a
connection. Both ends prove they hold the fleet's key (derived from the shared root
secret) with HMACs over two fresh nonces before anything else is read.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import struct
from collections.abc import Callable
from typing import Any, cast

HEAD = struct.Struct("!IBII")
MAX_FRAME_BYTES = 64 * 1024 * 1024

# Frame types.
HELLO, AUTH, WELCOME = 1, 2, 3
INVOKE, RESULT, STREAM_BEGIN, STREAM_CHUNK, CANCEL, ERROR = 10, 11, 12, 13, 14, 15
CALL, CALL_RESULT = 20, 21


class ProtocolError(Exception):
    """The peer broke the protocol (or failed to authenticate): drop the connection."""


def fleet_key(root_secret: str) -> bytes:
    """The key internal connections authenticate with, derived from the root secret that
    every node of a fleet shares (never the secret itself)."""
    return hashlib.sha256(b"firebox-internal-protocol:" + root_secret.encode()).digest()


def proof(key: bytes, role: bytes, first: bytes, second: bytes) -> str:
    return hmac.new(key, role + b"|" + first + b"|" + second, hashlib.sha256).hexdigest()


def new_nonce() -> bytes:
    return os.urandom(16)


def encode(kind: int, channel: int, header: dict[str, Any] | None, body: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode() if header else b""
    return HEAD.pack(9 + len(head) + len(body), kind, channel, len(head)) + head + body


class FrameReader:
    """Splits a byte stream into frames; ``on_frame(kind, channel, header, body)``."""

    def __init__(self, on_frame: Callable[[int, int, dict[str, Any], bytes], None]) -> None:
        self._buf = bytearray()
        self._on_frame = on_frame

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while len(buf) >= HEAD.size:
            length, kind, channel, head_len = HEAD.unpack_from(buf)
            if length > MAX_FRAME_BYTES or head_len > length - 9:
                raise ProtocolError(f"bad frame: length {length}, header {head_len}")
            if len(buf) < 4 + length:
                return
            head_end = HEAD.size + head_len
            header = json.loads(bytes(buf[HEAD.size : head_end])) if head_len else {}
            body = bytes(buf[head_end : 4 + length])
            del buf[: 4 + length]
            self._on_frame(kind, channel, header, body)


class Connection(asyncio.Protocol):
    """Frame transport shared by both ends: write frames, wait for the writer to drain,
    and hand each frame read to ``dispatch`` (set by the subclass)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = FrameReader(self.dispatch)
        self._paused = False
        self._drained: asyncio.Future[None] | None = None
        self.closed = asyncio.get_running_loop().create_future()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but behave as one.)
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (2, 10):  # AF_INET, AF_INET6
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.reader.feed(data)
        except (ProtocolError, ValueError) as exc:
            self.fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # ours
    def dispatch(self, kind: int, channel: int, header: dict[str, Any], body: bytes) -> None:
        raise NotImplementedError

    def send(
        self, kind: int, channel: int, header: dict[str, Any] | None, body: bytes = b""
    ) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(kind, channel, header, body))

    async def drain(self) -> None:
        """Wait while the peer is not reading (back-pressure for streamed responses)."""
        while self._paused and not self.closed.done():
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def fail(self, exc: Exception) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
