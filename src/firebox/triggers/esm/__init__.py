"""Event source mappings: the poller tasks of every enabled mapping (one, or one per SQS
batch that may run at once), restarted on every change; and the removal of what deleted
mappings had set up on their source."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from firebox.control.event_sources import ESM, ESM_TEARDOWN, PUSHED, EventSourceMappings
from firebox.store.metadata.base import Doc, MetadataStore
from firebox.store.metadata.feed import Change
from firebox.triggers.aws import AwsClients
from firebox.triggers.esm.base import Poller, PollerDeps, Source, problem_text
from firebox.triggers.esm.streams import StreamPoller, StreamReader

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


def make_reader(mapping: Doc, aws: AwsClients, region: str) -> StreamReader:
    kind = mapping["_kind"]
    if kind == "kinesis":
        from firebox.triggers.esm.kinesis import KinesisReader

        return KinesisReader(mapping, aws)
    if kind == "dynamodb":
        from firebox.triggers.esm.dynamodb import DynamoDBReader

        return DynamoDBReader(mapping, aws)
    if kind == "postgres":
        from firebox.triggers.esm.pg_changes import PostgresChangesReader

        return PostgresChangesReader(mapping, region)
    raise ValueError(f"unknown stream kind {kind}")


class Runner(Protocol):
    stopping: bool

    async def run(self) -> None: ...


# How often teardowns that failed (their source was down) are tried again.
TEARDOWN_RETRY_S = 30.0


class EsmManager:
    def __init__(
        self,
        control: EventSourceMappings,
        metadata: MetadataStore,
        deps: PollerDeps,
        aws: AwsClients,
        region: str,
        tear_down: Callable[[Doc], None],
    ) -> None:
        self.control = control
        self.metadata = metadata
        self.deps = deps
        self.aws = aws
        self.region = region
        self.tear_down = tear_down
        self.pollers: dict[str, list[tuple[Runner, asyncio.Task[None]]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._teardown_wake = asyncio.Event()
        self._teardown_task: asyncio.Task[None] | None = None
        control.listeners.append(self._on_change)

    def _on_change(self, mapping_id: str) -> None:
        # Control-plane writes run in worker threads: hop to the loop.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.refresh(mapping_id)))

    def on_store_change(self, change: Change) -> None:
        """A mapping changed elsewhere in the fleet (the metadata feed): refresh it here, if
        this process runs the mappings."""
        if change.kind == ESM_TEARDOWN:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._teardown_wake.set)
            return
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
        self._teardown_task = asyncio.create_task(self._teardowns())

    async def _teardowns(self) -> None:
        """Remove what deleted mappings set up on their sources, until each source took it."""
        while True:
            self._teardown_wake.clear()
            try:
                docs = await asyncio.to_thread(self.control.teardowns)
            except Exception:
                log.exception("reading the mappings to tear down failed")
                docs = []
            for doc in docs:
                try:
                    await self.aws.run(self.tear_down, doc)
                    await asyncio.to_thread(self.control.torn_down, doc["UUID"])
                except Exception as exc:
                    log.warning(
                        "event source mapping %s: removing its set-up from %s failed (%s); "
                        "trying again later",
                        doc["UUID"],
                        doc["EventSourceArn"],
                        problem_text(exc),
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._teardown_wake.wait(), TEARDOWN_RETRY_S)

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
            runners = self._runners(doc, report)
        except Exception as exc:
            report(f"PROBLEM: {exc}")
            return
        self.pollers[mapping_id] = [(r, asyncio.create_task(r.run())) for r in runners]

    def _runners(self, doc: Doc, report: Callable[[str], None]) -> list[Runner]:
        kind = doc["_kind"]
        if kind in PUSHED:
            return []  # the source pushes to Firebox (triggers/push.py)
        if kind == "sqs":
            from firebox.triggers.esm.sqs import SqsSource, concurrency

            return [
                Poller(self.deps, doc, SqsSource(doc, self.aws), report)
                for _ in range(concurrency(doc))
            ]
        if kind in ("kinesis", "dynamodb", "postgres"):
            reader = make_reader(doc, self.aws, self.region)
            return [StreamPoller(self.deps, doc, reader, report)]
        return [Poller(self.deps, doc, make_source(doc), report)]

    async def _stop_one(self, mapping_id: str) -> None:
        await self._stop_many([mapping_id])

    async def _stop_many(self, mapping_ids: list[str], grace_s: float = 5.0) -> None:
        """Let pollers finish the batch in hand (so a function is not cut off mid-invoke),
        then cancel whatever is still running after ``grace_s``."""
        entries = [e for i in mapping_ids if i in self.pollers for e in self.pollers.pop(i)]
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
        if self._teardown_task is not None:
            self._teardown_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._teardown_task
            self._teardown_task = None
        await self._stop_many(list(self.pollers))
