"""Function logs: the platform's START/END/REPORT lines, the tail, and buffered writing.

Log writes are buffered in memory and flushed off the hot path; an invoke never waits
on the log store.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import time
from collections import defaultdict, deque
from collections.abc import Iterable

from firebox.store.logs.base import Event, LogStore

log = logging.getLogger(__name__)

TAIL_BYTES = 4096
# Buffered events past which the writer flushes before its interval is up.
EARLY_FLUSH_EVENTS = 5000


def start_line(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def billed_ms(duration_ms: float) -> int:
    """Lambda bills in 1 ms increments, rounding up, at least 1 ms."""
    return max(1, math.ceil(duration_ms))


def report_line(
    request_id: str, duration_ms: float, memory_mb: int, max_memory_mb: int, init_ms: float | None
) -> str:
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {billed_ms(duration_ms)} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: {max_memory_mb} MB\t"
    )
    if init_ms is not None:
        line += f"Init Duration: {init_ms:.2f} ms\t"
    return line


class LogTail:
    """The last TAIL_BYTES of an invocation's log (X-Amz-Log-Result), kept as it is
    written: never more than that, however much the function prints."""

    __slots__ = ("_lines", "_size")

    def __init__(self) -> None:
        self._lines: deque[bytes] = deque()
        self._size = 0

    def add(self, message: str) -> None:
        # A character is at least one byte: the last TAIL_BYTES characters hold the tail.
        line = (message[-TAIL_BYTES:] + "\n").encode(errors="replace")[-TAIL_BYTES:]
        self._lines.append(line)
        self._size += len(line)
        while self._size - len(self._lines[0]) >= TAIL_BYTES:
            self._size -= len(self._lines.popleft())

    def extend(self, messages: Iterable[str]) -> None:
        for message in messages:
            self.add(message)

    def extend_tail(self, other: LogTail) -> None:
        """Append what another tail kept (a cold start's Init output)."""
        for line in other._lines:
            self._lines.append(line)
            self._size += len(line)
        while self._lines and self._size - len(self._lines[0]) >= TAIL_BYTES:
            self._size -= len(self._lines.popleft())

    def text(self) -> bytes:
        return b"".join(self._lines)[-TAIL_BYTES:]

    def base64(self) -> str:
        return base64.b64encode(self.text()).decode()


class LogWriter:
    """Collects events per stream and writes them in batches from a background task."""

    def __init__(self, store: LogStore, flush_interval_s: float = 0.2) -> None:
        self.store = store
        self._pending: defaultdict[tuple[str, str], list[Event]] = defaultdict(list)
        self._interval = flush_interval_s
        self._wake = asyncio.Event()
        self._pending_count = 0

    def append(self, group: str, stream: str, events: list[Event]) -> None:
        self._pending[(group, stream)].extend(events)
        self._pending_count += len(events)
        if self._pending_count >= EARLY_FLUSH_EVENTS:
            # A chatty function: write now rather than let the buffer grow for the interval.
            self._wake.set()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, defaultdict(list)
        self._pending_count = 0
        try:
            await asyncio.to_thread(self._write, batch)
        except Exception:
            # Never let one failed write end the writer task: later logs must still land.
            log.exception("writing function logs failed")

    def _write(self, batch: dict[tuple[str, str], list[Event]]) -> None:
        for (group, stream), events in batch.items():
            self.store.append(group, stream, events)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            await self.flush()


async def sweep_retention_forever(store: LogStore, interval_s: float) -> None:
    """Delete events past their group's retention (queries already hide them)."""
    while True:
        try:
            deleted = await asyncio.to_thread(store.sweep, int(time.time() * 1000))
            if deleted:
                log.info("retention sweep deleted %d log events", deleted)
        except Exception:
            log.exception("log retention sweep failed")
        await asyncio.sleep(interval_s)
