"""Triggers: everything that invokes a function other than a direct Invoke call —
resource policies (who may), function URLs, EventBridge rules and schedules, and event
source mappings on message brokers. ``Triggers`` is the one object App holds for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from firebox.control.policies import Policies
from firebox.control.urls import FunctionUrls
from firebox.triggers.function_urls import UrlServer

if TYPE_CHECKING:
    from firebox.app import App


class Triggers:
    def __init__(self, app: App) -> None:
        from firebox.api import policy_routes, url_routes

        self.app = app
        self.policies = Policies(app.catalog)
        self.url_server = UrlServer(app)
        self.urls = FunctionUrls(app.catalog, self.url_server.url_for)
        self.registrars: list[Callable[[web.Application], None]] = [
            policy_routes.register,
            url_routes.register,
        ]

    async def start(self) -> None:
        if self.app.settings.url_port:
            await self.url_server.start()

    async def stop(self) -> None:
        await self.url_server.stop()
