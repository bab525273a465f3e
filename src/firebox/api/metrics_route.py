"""GET /metrics: Prometheus text format, public (no signature), as scrapers expect.

In a fleet, every member's samples, each labelled with its ``node``."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from firebox.api.server import public
from firebox.fleet.gather import FleetGather
from firebox.observe.live import LiveView
from firebox.observe.metrics import Metrics, render_fleet


@dataclass(frozen=True, slots=True)
class MetricsApi:
    metrics: Metrics
    live: LiveView
    # The fleet's other members (None: a lone process), and this one's name among them.
    fleet: FleetGather | None
    node: str


METRICS_KEY = web.AppKey("metrics_api", MetricsApi)


@public
async def metrics(request: web.Request) -> web.Response:
    api = request.app[METRICS_KEY]
    state = await api.live.state()
    if api.fleet is None:
        body = api.metrics.render(state)
    else:
        by_node = await api.fleet.metrics()
        by_node[api.node] = api.metrics.families(state)
        body = render_fleet(by_node, api.node)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def register(web_app: web.Application, api: MetricsApi) -> None:
    web_app[METRICS_KEY] = api
    web_app.router.add_get("/metrics", metrics)
