"""InvocationType=Event: validate, write durably, then 202.

Writes are group-committed: while one batch is being synced to disk (in a thread), the
events that arrive meanwhile gather, and all of them go in the next transaction — one
fsync for however many events came together, and no timer adding latency when traffic is
light (a lone event is written at once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from firebox.arn import FunctionRef
from firebox.control.resolve import Resolver
from firebox.invoke.sync import check_payload
from firebox.store.queue.base import EventQueue, QueuedEvent
from firebox.workers.environment import new_request_id

log = logging.getLogger(__name__)

# Lambda's limit on an asynchronous invocation's payload (raised from 256 KB to 1 MB).
MAX_EVENT_PAYLOAD_BYTES = 1024 * 1024
# Bounds one transaction, so a huge burst still commits in steps of reasonable size.
MAX_BATCH = 2000


class GroupCommitter:
    """Batches concurrent ``put``s into one durable write."""

    def __init__(self, queue: EventQueue) -> None:
        self.queue = queue
        self._pending: list[tuple[QueuedEvent, asyncio.Future[None]]] = []
        self._flushing = False
        # Told after every durable batch (the pollers wake up).
        self.on_written: list[Callable[[], None]] = []

    async def put(self, event: QueuedEvent) -> None:
        """Return once the event is on disk (raises if the write failed)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        await asyncio.shield(future)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    await asyncio.to_thread(self.queue.put, [e for e, _ in batch])
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(
                                exc
                                if isinstance(exc, Exception)
                                else RuntimeError("queue write cancelled")
                            )
                    if not isinstance(exc, Exception):
                        raise
                    log.exception("event queue write failed")
                    continue
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
                for callback in self.on_written:
                    callback()
        finally:
            self._flushing = False


class EventIntake:
    """Accepts asynchronous invocations: checks them, then queues them durably."""

    def __init__(self, resolver: Resolver, committer: GroupCommitter) -> None:
        self.resolver = resolver
        self.committer = committer

    async def submit(
        self, ref: FunctionRef, payload: bytes, *, request_id: str | None = None
    ) -> str:
        """Validate and durably queue one event; its request id once it is on disk."""
        await self.resolver.resolve(ref.name, ref.qualifier)  # ResourceNotFound for unknown targets
        payload = check_payload(payload, MAX_EVENT_PAYLOAD_BYTES, "Event")
        rid = request_id or new_request_id()
        await self.committer.put(QueuedEvent(rid, ref.name, ref.qualifier, payload, time.time()))
        return rid
