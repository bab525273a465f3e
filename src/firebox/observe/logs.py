"""Function logs: the platform's START/END/REPORT lines, the tail, and buffered writing.

Log writes are buffered in memory and flushed off the hot path; a synchronous invoke never
waits on the log store, so a crash can lose the last flush interval (~0.2 s) of its lines.
Work whose completion is recorded elsewhere (an async event, a broker message) first waits
on ``LogWriter.durable``, so that what is recorded as done always has its lines on disk.
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


class LogsNotWritten(Exception):
    """Log lines that someone waited on could not be written to the log store."""


class LogWriter:
    """Collects events per stream and writes them in batches from a background task.

    Lines wait up to ``flush_interval_s`` to be written, unless someone waits on
    ``durable()``: then the writer commits by the earliest deadline its waiters gave, and
    every waiter that arrives before that commit (or during it) shares it, or the next one
    (group commit: one sync for many waiters).
    """

    def __init__(self, store: LogStore, flush_interval_s: float = 0.2) -> None:
        self.store = store
        self._pending: defaultdict[tuple[str, str], list[Event]] = defaultdict(list)
        self._interval = flush_interval_s
        self._wake = asyncio.Event()
        self._pending_count = 0
        # Positions in the sequence of all events appended: how many were appended, how many
        # were written or given up on, and the end of the last batch that failed to write.
        self._appended = 0
        self._done = 0
        self._lost_through = 0
        # (since, upto, future) of each durable() call still waiting, and the loop time by
        # which the earliest of them wants its commit.
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._due = math.inf
        self._flushing = asyncio.Lock()

    def append(self, group: str, stream: str, events: list[Event]) -> None:
        self._pending[(group, stream)].extend(events)
        self._pending_count += len(events)
        self._appended += len(events)
        if self._pending_count >= EARLY_FLUSH_EVENTS:
            # A chatty function: write now rather than let the buffer grow for the interval.
            self._wake.set()

    def position(self) -> int:
        """A mark in the sequence of appended events, for ``durable(since=…)``."""
        return self._appended

    async def durable(self, since: int = 0, within_s: float = 0.0) -> None:
        """Return once every event appended so far is committed and synced to disk.

        ``within_s``: how long the commit may wait for other waiters to join it (a caller
        that does not wait on the result itself loses nothing, and fewer commits cost
        less). Raises LogsNotWritten if a batch that may hold events appended after
        ``since`` (a ``position()``) failed to write: they are lost. Needs ``run()``."""
        upto = self._appended
        if self._done < upto:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((since, upto, future))
            due = loop.time() + within_s
            if due < self._due:
                self._due = due
                self._wake.set()
            await future
        elif self._lost_through > since:
            raise LogsNotWritten(f"log events {since + 1}..{upto} may not have been written")

    async def flush(self) -> None:
        async with self._flushing:
            if self._pending:
                batch, self._pending = self._pending, defaultdict(list)
                self._pending_count = 0
                end = self._appended
                try:
                    await asyncio.to_thread(self.store.append_batch, batch)
                except Exception:
                    # Never let one failed write end the writer task: later logs must still
                    # land. Whoever waits on these lines is told they are lost.
                    log.exception("writing function logs failed")
                    self._lost_through = end
                self._done = end
            self._wake_waiters()

    def _wake_waiters(self) -> None:
        still: list[tuple[int, int, asyncio.Future[None]]] = []
        for since, upto, future in self._waiters:
            if upto > self._done:
                still.append((since, upto, future))
            elif future.done():
                pass  # its caller was cancelled
            elif self._lost_through > since:
                future.set_exception(
                    LogsNotWritten(f"log events {since + 1}..{upto} may not have been written")
                )
            else:
                future.set_result(None)
        self._waiters = still

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_flush = loop.time() + self._interval
        while True:
            due = min(next_flush, self._due)
            now = loop.time()
            if now < due and self._pending_count < EARLY_FLUSH_EVENTS:
                # Woken early by a waiter with an earlier deadline, or a big buffer.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), due - now)
                continue
            # Waiters that come during this commit set the deadline of the next.
            self._due = math.inf
            await self.flush()
            next_flush = loop.time() + self._interval


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
