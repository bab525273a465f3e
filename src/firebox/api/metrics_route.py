"""GET /metrics: Prometheus text format, public (no signature), as scrapers expect."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from firebox.api.server import APP_KEY, public
from firebox.control.catalog import FUNCTION
from firebox.observe.metrics import LiveState, render_fleet

if TYPE_CHECKING:
    from firebox.app import App

log = logging.getLogger(__name__)


async def live_state(app: App) -> LiveState:
    """The present, per function: concurrency, provisioned use and async queues. Parts that
    other components may not provide yet are read defensively."""
    names = [key for key, _ in await asyncio.to_thread(app.metadata.list, FUNCTION)]
    state = LiveState()
    for name in names:
        state.concurrent[name] = app.limiter.running(name)
        manager = app.manager
        state.provisioned_in_use[name] = manager.provisioned_in_use(name) if manager else 0
    stats_fn = getattr(app, "queue_stats", None)
    if callable(stats_fn):
        try:
            stats: Any = stats_fn()
            if inspect.isawaitable(stats):
                stats = await stats
            if isinstance(stats, dict):
                state.queues = {str(k): v for k, v in stats.items() if isinstance(v, dict)}
        except Exception:
            log.exception("queue_stats() failed; async queue gauges omitted")
    return state


@public
async def metrics(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    state = await live_state(app)
    if app.directory is None or app.wire is None:
        body = app.metrics.render(state)
    else:
        body = render_fleet(await _gather(app, state), app.member)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _gather(app: App, state: LiveState) -> dict[str, list[dict[str, Any]]]:
    """Every member's metrics (one answer per process), this one's included; a member that
    does not answer within a second is left out of this scrape."""
    assert app.directory is not None and app.wire is not None
    by_node = {app.member: app.metrics.families(state)}
    own = app.wire.advertised
    others = [(addr, mid) for addr, mid in app.directory.members().items() if addr != own]

    async def ask(address: str, member: str) -> None:
        try:
            async with asyncio.timeout(1.0):
                got = await app.remote_at(member, address).call("metrics")
            by_node[str(got["node"])] = got["families"]
        except Exception as exc:
            log.warning("no metrics from %s: %s", address, exc)

    await asyncio.gather(*(ask(a, m) for a, m in others))
    return by_node


def register(web_app: web.Application) -> None:
    web_app.router.add_get("/metrics", metrics)
