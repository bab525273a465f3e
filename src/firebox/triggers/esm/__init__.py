"""Event source mappings: one poller task per enabled mapping, restarted on every change."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from firebox.control.event_sources import ESM, EventSourceMappings
from firebox.store.metadata.base import Doc, MetadataStore
from firebox.store.metadata.feed import Change
from firebox.triggers.esm.base import Poller, PollerDeps, Source

log = logging.getLogger(__name__)


def make_source(mapping: Doc) -> Source:
    kind = mapping["_kind"]
    if kind == "redis":
        from firebox.triggers.esm.redis_streams import RedisStreamSource

        return RedisStreamSource(mapping)
    if kind == "rabbitmq":
        from firebox.triggers.esm.rabbitmq import RabbitMQSource

        return RabbitMQSource(mapping)
    if kind == "nats":
        from firebox.triggers.esm.nats import NatsSource

        return NatsSource(mapping)
    raise ValueError(f"unknown event source kind {kind}")


class EsmManager:
    def __init__(
        self, control: EventSourceMappings, metadata: MetadataStore, deps: PollerDeps
    ) -> None:
        self.control = control
        self.metadata = metadata
        self.deps = deps
        self.pollers: dict[str, tuple[Poller, asyncio.Task[None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        control.listeners.append(self._on_change)

    def _on_change(self, mapping_id: str) -> None:
        # Control-plane writes run in worker threads: hop to the loop.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.refresh(mapping_id)))

    def on_store_change(self, change: Change) -> None:
        """A mapping changed elsewhere in the fleet (the metadata feed): refresh it here, if
        this process runs the mappings."""
        if change.prefix or not change.kind:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._refresh_all()))
            return
        self._on_change(change.key)

    async def _refresh_all(self) -> None:
        ids = set(self.pollers) | {d["UUID"] for d in await asyncio.to_thread(self.control.all)}
        for mapping_id in ids:
            await self.refresh(mapping_id)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for doc in await asyncio.to_thread(self.control.all):
            await self.refresh(doc["UUID"], doc)

    async def refresh(self, mapping_id: str, doc: Doc | None = None) -> None:
        # One change at a time, so that an old poller is gone before its successor starts.
        async with self._lock:
            await self._refresh(mapping_id, doc)

    async def _refresh(self, mapping_id: str, doc: Doc | None) -> None:
        await self._stop_one(mapping_id)
        if doc is None:
            doc = await asyncio.to_thread(self.metadata.get, ESM, mapping_id)
        if doc is None or doc.get("State") != "Enabled":
            return

        def report(text: str) -> None:
            self.control.status[mapping_id] = text

        try:
            source = make_source(doc)
        except Exception as exc:
            report(f"PROBLEM: {exc}")
            return
        poller = Poller(self.deps, doc, source, report)
        self.pollers[mapping_id] = (poller, asyncio.create_task(poller.run()))

    async def _stop_one(self, mapping_id: str) -> None:
        await self._stop_many([mapping_id])

    async def _stop_many(self, mapping_ids: list[str], grace_s: float = 5.0) -> None:
        """Let pollers finish the batch in hand (so a function is not cut off mid-invoke),
        then cancel whatever is still running after ``grace_s``."""
        entries = [self.pollers.pop(i) for i in mapping_ids if i in self.pollers]
        for poller, _ in entries:
            poller.stopping = True
        tasks = [task for _, task in entries]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def stop(self) -> None:
        await self._stop_many(list(self.pollers))
