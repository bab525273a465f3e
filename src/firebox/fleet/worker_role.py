"""The worker role of one process: its environments, reachable by every front end.

The role serves the internal protocol (one listener per process) for the worker of the
current *generation*: a WorkerService with its own environments, registered in the
fleet's registry under its own id, heartbeating with its free capacity. At the end of its
lease (``worker_max_lifetime_s``, 14 hours as on Lambda) a generation takes nothing new:
a fresh generation takes its place in the registry and behind the listener first, so that
new invocations go there, while the old one finishes what it runs, ends its environments
and leaves the registry — the drain fails no invocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

from firebox.settings import Settings
from firebox.store.fleet.base import Fleet, WorkerState
from firebox.workers.manager import WorkerManager
from firebox.workers.service import WorkerService
from firebox.workers.wire_server import WireServer

log = logging.getLogger(__name__)

# How long a draining generation may take to finish its invocations (Lambda's longest
# timeout, plus a margin).
DRAIN_LIMIT_S = 960.0


def member_prefix(settings: Settings) -> str:
    """host:pid, this process's part of every member id it registers."""
    return f"{socket.gethostname()}:{os.getpid()}"


class WorkerRole:
    def __init__(
        self,
        settings: Settings,
        make_manager: Callable[[], WorkerManager],
        logs_durable: Callable[[], Awaitable[None]],
        fleet: Fleet | None,
        wire: WireServer | None,
    ) -> None:
        self.settings = settings
        self._make_manager = make_manager
        self._logs_durable = logs_durable
        self.fleet = fleet
        # The process's internal-protocol listener (started by App), None for a lone
        # process: INVOKEs arriving there go to the current generation.
        self.wire = wire
        self.generation = 0
        self.current = self._new_generation()
        self._draining: set[asyncio.Task[None]] = set()
        # Told of each new generation (placement's local worker, provisioned configs).
        self.on_generation: list[Callable[[WorkerService, WorkerService], Awaitable[None]]] = []

    def _new_generation(self) -> WorkerService:
        self.generation += 1
        name = f"{member_prefix(self.settings)}:{self.generation}:{uuid.uuid4().hex[:6]}"
        service = WorkerService(
            name, self._make_manager(), self._logs_durable, self.settings.worker_memory_mb
        )
        if self.wire is not None:
            self.wire.worker = service
        return service

    @property
    def address(self) -> str:
        return self.wire.advertised if self.wire is not None else ""

    async def start(self) -> None:
        if self.fleet is not None:
            await self._register(self.current)

    async def _register(self, service: WorkerService) -> None:
        assert self.fleet is not None
        await asyncio.to_thread(
            self.fleet.registry.register, service.name, self.address, service.capacity_mb
        )

    async def run(self) -> None:
        """Heartbeats, the keep-alive reaper and the lease, until cancelled."""
        reaper = asyncio.ensure_future(self._reap())
        try:
            while True:
                await self._beat()
                age = time.monotonic() - self.current.started
                if age >= self.settings.worker_max_lifetime_s:
                    await self.renew()
                await asyncio.sleep(self.settings.heartbeat_s)
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper

    async def _reap(self) -> None:
        # Fine enough to honour short keep-alives (tests), at most once a second.
        s = self.settings
        interval_s = max(0.05, min(1.0, s.keepalive_s / 8, s.max_lifetime_s / 8))
        while True:
            await asyncio.sleep(interval_s)
            self.current.manager.reap_once()

    async def _beat(self) -> None:
        if self.fleet is None:
            return
        service = self.current
        try:
            state = await asyncio.to_thread(
                self.fleet.registry.heartbeat, service.name, None, service.free_mb()
            )
            if state is None:
                # Swept while this process stalled: it is alive, so it comes back.
                await self._register(service)
            elif state == WorkerState.DRAINING and not service.draining:
                # An operator drained it: replace it like a worker at its lease end.
                await self.renew()
        except Exception:
            log.exception("worker heartbeat failed")

    async def renew(self) -> None:
        """Put a fresh generation in front, then drain the current one."""
        old = self.current
        new = self._new_generation()
        if self.fleet is not None:
            await self._register(new)
        self.current = new
        for hook in self.on_generation:
            await hook(old, new)
        old.draining = True
        log.info("worker %s reached its lease; %s takes over", old.name, new.name)
        task = asyncio.ensure_future(self._drain(old))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _drain(self, old: WorkerService) -> None:
        if self.fleet is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    self.fleet.registry.set_state, old.name, WorkerState.DRAINING
                )
        deadline = time.monotonic() + DRAIN_LIMIT_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(old.idle(), max(0.0, deadline - time.monotonic()))
        await old.manager.close()
        if self.fleet is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.fleet.registry.remove, old.name)
        log.info("worker %s drained and left", old.name)

    async def stop(self) -> None:
        for task in list(self._draining):
            task.cancel()
        await self.current.manager.close()
        if self.fleet is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.fleet.registry.remove, self.current.name)
