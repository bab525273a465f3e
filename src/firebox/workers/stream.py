"""A streamed response on its way from a runtime to whoever invoked.

The runtime posts ``/invocation/{id}/response`` with ``Lambda-Runtime-Function-Response-Mode:
streaming`` and a chunked body; runtime/api.py pushes each piece here as it arrives, and
the invoke side (InvokeWithResponseStream, function URLs in RESPONSE_STREAM mode) iterates:

    stream = ResponseStream()
    task = asyncio.create_task(invoker.invoke(ref, payload, stream=stream))
    if await stream.wait_started(task):      # the function streams
        async for chunk in stream: ...
    result = await task                      # status, error, logs as for any invoke

A function that answers without streaming never starts the stream; its whole response
comes back in the invoke result as usual.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

# Lambda's default limit on a streamed response (200 MB since July 2025; 20 MB before),
# enforced as the bytes arrive.
MAX_STREAM_BYTES = 200 * 1024 * 1024
# Bytes held for a slow reader before the runtime is told to wait (its connection stops
# being read), and the level at which it may go on.
HIGH_WATER_BYTES = 1024 * 1024
LOW_WATER_BYTES = 256 * 1024


class ResponseStream:
    """Chunks from one producer (a runtime's connection) to one reader, holding at most
    about HIGH_WATER_BYTES: past that the producer is paused until the reader catches up.
    A reader that goes away cancels the stream: what follows is dropped, not held."""

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._ready = asyncio.Event()
        self._started = asyncio.Event()
        self._closed = False
        self.cancelled = False
        self.content_type = "application/octet-stream"
        # The version that answers (known once an environment took the invocation).
        self.version = ""
        self.size = 0
        self._pause: Callable[[], None] | None = None
        self._resume: Callable[[], None] | None = None
        self._paused = False

    @property
    def started(self) -> bool:
        return self._started.is_set()

    # --- producer side (the Runtime API) ----------------------------------------------

    def begin(self, content_type: str | None, version: str) -> None:
        if content_type:
            self.content_type = content_type
        self.version = version
        self._started.set()

    def attach(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """How to hold the producer back (and let it go on)."""
        self._pause, self._resume = pause, resume

    def push(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self._closed:
            return
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        self._ready.set()
        if self._buffered > HIGH_WATER_BYTES and not self._paused and self._pause is not None:
            self._paused = True
            self._pause()

    def close(self) -> None:
        """No more chunks (idempotent): iteration ends after what was pushed."""
        self._closed = True
        self._ready.set()
        self._let_go()

    def cancel(self) -> None:
        """The reader went away: drop what is held and whatever comes next."""
        self.cancelled = True
        self._chunks.clear()
        self._buffered = 0
        self.close()

    def _let_go(self) -> None:
        if self._paused and self._resume is not None:
            self._paused = False
            self._resume()

    # --- consumer side ----------------------------------------------------------------

    async def wait_started(self, invocation: asyncio.Future[Any]) -> bool:
        """True once the function starts streaming; False if the invocation finished
        (or failed) first, without streaming."""
        started = asyncio.ensure_future(self._started.wait())
        try:
            await asyncio.wait({started, invocation}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        return self._started.is_set()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            if not self._chunks:
                if self._closed:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            chunk = self._chunks.popleft()
            self._buffered -= len(chunk)
            if self._buffered <= LOW_WATER_BYTES:
                self._let_go()
            yield chunk
