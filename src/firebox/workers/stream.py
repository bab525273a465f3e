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
from collections.abc import AsyncIterator
from typing import Any

# Lambda's limit on a streamed response (a soft limit there; a hard one here).
MAX_STREAM_BYTES = 20 * 1024 * 1024


class ResponseStream:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._started = asyncio.Event()
        self._closed = False
        self.content_type = "application/octet-stream"
        # The version that answers (known once an environment took the invocation).
        self.version = ""
        self.size = 0

    @property
    def started(self) -> bool:
        return self._started.is_set()

    # --- producer side (the Runtime API) ----------------------------------------------

    def begin(self, content_type: str | None, version: str) -> None:
        if content_type:
            self.content_type = content_type
        self.version = version
        self._started.set()

    def push(self, chunk: bytes) -> None:
        if chunk and not self._closed:
            self.size += len(chunk)
            self._queue.put_nowait(chunk)

    def close(self) -> None:
        """No more chunks (idempotent): iteration ends after what was pushed."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

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
            chunk = await self._queue.get()
            if chunk is None:
                return
            yield chunk
