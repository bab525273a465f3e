"""The metadata change feed: every committed write, told to whoever caches what it read.

A backend publishes a ``Change`` per write once it is committed: the SQLite backend in the
writing thread (one process owns the file), the PostgreSQL backend from LISTEN/NOTIFY, so
that one node's caches hear about every node's writes. Subscribers are callbacks (run in
the publishing thread: keep them short and thread-safe) or ``Watch``es, async iterators
on an event loop.

A cache must drop what a change covers *after* the change arrives; a read that began
before a write can still finish after its change, so a cache that fills from such a read
should check a generation counter bumped by the feed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Change:
    """A committed write of one key of a kind, or (``prefix``) of every key starting with
    ``key``. An empty ``kind`` means anything may have changed: the feed lost track (a
    reconnect), and caches should drop everything."""

    kind: str
    key: str
    prefix: bool = False

    def covers(self, kind: str, key: str) -> bool:
        if not self.kind:
            return True
        if kind != self.kind:
            return False
        return key.startswith(self.key) if self.prefix else key == self.key


EVERYTHING = Change("", "", prefix=True)

Callback = Callable[[Change], None]


class ChangeFeed:
    """Fans changes out to subscribers; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[int, Callback] = {}
        self._ids = itertools.count()

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback`` with every change from now on; returns the unsubscribe."""
        with self._lock:
            token = next(self._ids)
            self._subscribers[token] = callback

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(token, None)

        return unsubscribe

    def publish(self, changes: Iterable[Change]) -> None:
        with self._lock:
            subscribers = list(self._subscribers.values())
        if not subscribers:
            return
        for change in changes:
            for callback in subscribers:
                try:
                    callback(change)
                except Exception:
                    log.exception("a change feed subscriber failed on %s", change)

    def watch(self) -> Watch:
        return Watch(self)


class Watch:
    """Changes as an async iterator on the loop it was created on.

    ``async with store.watch() as changes: async for change in changes: …``; leaving the
    block (or ``close()``) unsubscribes. Changes queue without bound until read.
    """

    def __init__(self, feed: ChangeFeed) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Change] = asyncio.Queue()
        self._unsubscribe = feed.subscribe(self._deliver)

    def _deliver(self, change: Change) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, change)
        except RuntimeError:  # the loop is closed: nobody will read any more
            self.close()

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> Change:
        return await self._queue.get()

    async def get(self, timeout_s: float | None = None) -> Change:
        """The next change; TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            return await self._queue.get()

    def close(self) -> None:
        self._unsubscribe()

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
