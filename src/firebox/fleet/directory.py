"""The workers of the fleet as placement sees them: the registry, read in the background.

Placement must never wait on the store, so the list it reads is refreshed once per
heartbeat interval; a worker that stopped heartbeating drops out of it within
``HEARTBEAT_MISSES`` intervals, and one that is draining at once.
"""

from __future__ import annotations

import asyncio
import logging

from firebox.store.fleet.base import WorkerRegistry, WorkerState
from firebox.workers.placement import MemberView

log = logging.getLogger(__name__)

# Heartbeats a worker may miss before it is taken for dead.
HEARTBEAT_MISSES = 3


class RegistryDirectory:
    def __init__(self, registry: WorkerRegistry, heartbeat_s: float) -> None:
        self.registry = registry
        self.heartbeat_s = heartbeat_s
        self._views: list[MemberView] = []
        # Every live member, workers or not, by address (one per process).
        self._members: dict[str, str] = {}
        self.refreshed = asyncio.Event()

    def workers(self) -> list[MemberView]:
        return self._views

    def members(self) -> dict[str, str]:
        """Every live member process: address -> a member id registered there."""
        return self._members

    async def refresh(self) -> None:
        max_age = self.heartbeat_s * HEARTBEAT_MISSES
        found = await asyncio.to_thread(self.registry.workers, max_age)
        self._views = [
            MemberView(w.node_id, w.address, w.capacity, w.free)
            for w in found
            if w.state == WorkerState.ACTIVE and w.capacity > 0
        ]
        self._members = {w.address: w.node_id for w in found}
        self.refreshed.set()

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("reading the worker registry failed")
            await asyncio.sleep(self.heartbeat_s)
