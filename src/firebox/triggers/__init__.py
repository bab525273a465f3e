"""Triggers: everything that invokes a function other than a direct Invoke call —
resource policies (who may), function URLs, EventBridge rules and schedules, and event
source mappings on message brokers. ``Triggers`` is the one object App holds for them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web

from firebox.arn import FunctionRef
from firebox.control.event_sources import ESM, EventSourceMappings
from firebox.control.policies import Policies
from firebox.control.urls import FunctionUrls
from firebox.store.metadata.feed import Change
from firebox.triggers.esm import EsmManager
from firebox.triggers.function_urls import UrlServer
from firebox.triggers.rules import Rules
from firebox.triggers.scheduler import Scheduler

if TYPE_CHECKING:
    from firebox.app import App

log = logging.getLogger(__name__)

UnderLease = Callable[[str, Callable[[], Awaitable[None]]], Coroutine[Any, Any, None]]


class Triggers:
    def __init__(self, app: App) -> None:
        from firebox.api import esm_routes, events_routes, policy_routes, url_routes

        self.app = app
        self.policies = Policies(app.catalog)
        self.url_server = UrlServer(app)
        self.urls = FunctionUrls(app.catalog, self.url_server.url_for)
        self.registrars: list[Callable[[web.Application], None]] = [
            policy_routes.register,
            url_routes.register,
            events_routes.register,
            esm_routes.register,
        ]
        self.rules = Rules(app)
        self.scheduler = Scheduler(app, self.rules)
        self.event_sources = EventSourceMappings(app.catalog)
        self.esm = EsmManager(app, self.event_sources)
        self._tasks: list[asyncio.Task[Any]] = []

    def on_store_change(self, change: Change) -> None:
        """A committed write anywhere in the fleet (the metadata store's change feed)."""
        self.policies.on_change(change)
        self.urls.on_change(change)
        if change.kind in ("", ESM):
            self.esm.on_store_change(change)

    async def submit(self, ref: FunctionRef, payload: bytes) -> str:
        """Invoke asynchronously (InvocationType Event): durably queued, then retried."""
        return await self.app.submit_event(ref, payload)

    async def start(
        self,
        *,
        urls: bool = True,
        pollers: bool = True,
        under_lease: UnderLease | None = None,
    ) -> None:
        """Serve function URLs (the api role) and run schedules and event source mappings
        (the poller role) — in a fleet, each on one process at a time (``under_lease``)."""
        if urls and self.app.settings.url_port > 0:
            await self.url_server.start()
        if not pollers:
            return
        if under_lease is None:
            self._tasks.append(asyncio.create_task(self.scheduler.run()))
            await self.esm.start()
            return
        self._tasks.append(asyncio.create_task(under_lease("scheduler", self.scheduler.run)))
        self._tasks.append(asyncio.create_task(under_lease("event-source-mappings", self._esm)))

    async def _esm(self) -> None:
        await self.esm.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.esm.stop()

    async def stop(self) -> None:
        await self.esm.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.url_server.stop()
