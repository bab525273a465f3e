"""Decisions made once for the fleet: run a task only while holding a named lease.

The scheduler, each event source mapping's consumer and the provisioned-concurrency
reconciler must run on exactly one node. Each runs under a ``LeaseKeeper``: every node
tries to take the lease, the holder runs the task and renews the lease well before it
expires, and a holder that dies (or cannot renew in time: a partition, a stalled loop)
loses it to another node within one lease time. A holder that loses its lease stops its
task at once, so two nodes never both act for longer than one renewal interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from firebox.store.fleet.base import Leases

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(
        self,
        leases: Leases,
        name: str,
        holder: str,
        task: Callable[[], Awaitable[None]],
        ttl_s: float = 10.0,
    ) -> None:
        self.leases = leases
        self.name = name
        self.holder = holder
        self._task_factory = task
        self.ttl_s = ttl_s
        self._task: asyncio.Task[None] | None = None
        self.held = asyncio.Event()

    async def run(self) -> None:
        """Contend for the lease forever (until cancelled, which gives it up)."""
        interval = self.ttl_s / 3
        try:
            while True:
                try:
                    if self._task is None:
                        lease = await asyncio.to_thread(
                            self.leases.acquire, self.name, self.holder, self.ttl_s
                        )
                        if lease is not None:
                            log.info("took the lease %s", self.name)
                            self.held.set()
                            self._task = asyncio.ensure_future(self._task_factory())
                    else:
                        lease = await asyncio.to_thread(
                            self.leases.renew, self.name, self.holder, self.ttl_s
                        )
                        if lease is None:
                            log.warning("lost the lease %s; stopping its work", self.name)
                            await self._stop_task()
                        elif self._task.done():
                            # The work ended by itself (an error): give the lease up so
                            # that another node can try.
                            if not self._task.cancelled() and self._task.exception():
                                log.error(
                                    "work under lease %s failed",
                                    self.name,
                                    exc_info=self._task.exception(),
                                )
                            await self._stop_task()
                            await asyncio.to_thread(self.leases.release, self.name, self.holder)
                except Exception:
                    # The store is unreachable: a holder cannot prove it still holds the
                    # lease, so it stops acting before the lease could pass to another.
                    log.exception("lease %s: the store did not answer", self.name)
                    await self._stop_task()
                await asyncio.sleep(interval)
        finally:
            await self._stop_task()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.leases.release, self.name, self.holder)

    async def _stop_task(self) -> None:
        task, self._task = self._task, None
        self.held.clear()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
