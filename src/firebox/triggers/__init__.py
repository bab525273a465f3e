"""Triggers: everything that invokes a function other than a direct Invoke call —
resource policies (who may), function URLs, EventBridge rules and schedules, and event
source mappings on message brokers. ``Triggers`` holds them, given what they need."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web

from firebox.control.event_sources import ESM, ESM_TEARDOWN, EventSourceMappings
from firebox.control.policies import Policies
from firebox.control.urls import FunctionUrls
from firebox.store.metadata.base import Doc
from firebox.store.metadata.feed import Change
from firebox.triggers.esm import EsmManager
from firebox.triggers.esm.base import PollerDeps
from firebox.triggers.function_urls import UrlServer, url_for
from firebox.triggers.push import Push
from firebox.triggers.rules import Rules
from firebox.triggers.scheduler import Scheduler

if TYPE_CHECKING:
    from firebox.control.catalog import Catalog
    from firebox.invoke.sync import Invoker
    from firebox.observe.logs import LogWriter
    from firebox.settings import Settings
    from firebox.triggers.aws import AwsClients
    from firebox.triggers.destinations import Destinations
    from firebox.triggers.submit import Submit

log = logging.getLogger(__name__)

UnderLease = Callable[[str, Callable[[], Awaitable[None]]], Coroutine[Any, Any, None]]


class Triggers:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        invoker: Invoker,
        submit: Submit,
        log_writer: LogWriter,
        secret_for: Callable[[str], str | None],
        aws: AwsClients,
        destinations: Destinations,
    ) -> None:
        self.settings = settings
        self.policies = Policies(catalog)
        self.urls = FunctionUrls(catalog, functools.partial(url_for, settings))
        self.url_server = UrlServer(settings, invoker, secret_for, self.urls, self.policies)
        self.rules = Rules(
            catalog.store, settings.region, settings.account_id, self.policies, submit
        )
        self.scheduler = Scheduler(
            self.rules, settings.schedule_tick_s, settings.schedule_time_scale or 1.0
        )
        # AWS's services as sources and destinations (boto3 on threads of their own).
        self.event_sources = EventSourceMappings(catalog, setup=self._set_up)
        self.push = Push(
            settings, aws, catalog.store, submit, self.event_sources.status.__setitem__
        )
        self.esm = EsmManager(
            self.event_sources,
            catalog.store,
            PollerDeps(
                invoker,
                log_writer,
                submit,
                settings.esm_retry_delay_s,
                destinations,
                catalog.store,
            ),
            aws,
            settings.region,
            self._tear_down,
        )
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def registrars(self) -> list[Callable[[web.Application], None]]:
        """The API routes of resource policies, function URL configs, EventBridge and event
        source mappings, and the endpoints sources push to (the front end's)."""
        from firebox.api import esm_routes, events_routes, policy_routes, push_routes, url_routes

        return [
            functools.partial(policy_routes.register, policies=self.policies),
            functools.partial(url_routes.register, urls=self.urls),
            functools.partial(events_routes.register, rules=self.rules),
            functools.partial(esm_routes.register, mappings=self.event_sources),
            functools.partial(push_routes.register, push=self.push),
        ]

    def _set_up(self, mapping: Doc) -> None:
        """What a new mapping needs on its source (blocking; CreateEventSourceMapping)."""
        if mapping["_kind"] == "postgres":
            from firebox.triggers.esm import pg_changes

            pg_changes.set_up(mapping)
        else:
            self.push.set_up(mapping)

    def _tear_down(self, mapping: Doc) -> None:
        """Remove it again once the mapping is deleted (blocking; retried until done)."""
        if mapping["_kind"] == "postgres":
            from firebox.triggers.esm import pg_changes

            pg_changes.tear_down(mapping)
        else:
            self.push.tear_down(mapping)

    def on_store_change(self, change: Change) -> None:
        """A committed write anywhere in the fleet (the metadata store's change feed)."""
        self.policies.on_change(change)
        self.urls.on_change(change)
        if change.kind in ("", ESM, ESM_TEARDOWN):
            self.esm.on_store_change(change)

    async def start(
        self,
        *,
        urls: bool = True,
        pollers: bool = True,
        under_lease: UnderLease | None = None,
    ) -> None:
        """Serve function URLs (the api role) and run schedules and event source mappings
        (the poller role) — in a fleet, each on one process at a time (``under_lease``)."""
        if urls and self.settings.url_port > 0:
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
