"""What is true right now, per function, for the /metrics gauges: invokes running,
provisioned environments busy, and the async queue (read at scrape time)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from firebox.control.catalog import FUNCTION
from firebox.observe.metrics import LiveState
from firebox.store.metadata.base import MetadataStore
from firebox.store.queue.base import EventQueue, stats_by_function

log = logging.getLogger(__name__)


class _Running(Protocol):
    def running(self, name: str | None = None) -> int: ...


class _Provisioned(Protocol):
    def provisioned_in_use(self, name: str) -> int: ...


class LiveView:
    def __init__(
        self,
        metadata: MetadataStore,
        concurrency: _Running,
        environments: Callable[[], _Provisioned | None],
        queue: EventQueue,
    ) -> None:
        self.metadata = metadata
        self.concurrency = concurrency
        # This process's current worker's environments (None without the worker role).
        self.environments = environments
        self.queue = queue

    async def state(self) -> LiveState:
        names = [key for key, _ in await asyncio.to_thread(self.metadata.list, FUNCTION)]
        state = LiveState()
        envs = self.environments()
        for name in names:
            state.concurrent[name] = self.concurrency.running(name)
            state.provisioned_in_use[name] = envs.provisioned_in_use(name) if envs else 0
        try:
            state.queues = await asyncio.to_thread(stats_by_function, self.queue)
        except Exception:
            log.exception("reading the async queue's figures failed; its gauges are left out")
        return state
