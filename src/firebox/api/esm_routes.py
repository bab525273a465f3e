"""Create/Get/Update/Delete/ListEventSourceMappings (Lambda REST API, 2015-03-31)."""

from __future__ import annotations

from aiohttp import web

from firebox.api.params import control_call, max_items
from firebox.api.server import APP_KEY, json_response, read_json

E = "/2015-03-31/event-source-mappings"


async def create(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    params = await read_json(request)
    return json_response(await control_call(app.triggers.event_sources.create, params), 202)


async def get(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    return json_response(
        await control_call(app.triggers.event_sources.get, request.match_info["UUID"])
    )


async def update(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    params = await read_json(request)
    return json_response(
        await control_call(app.triggers.event_sources.update, request.match_info["UUID"], params),
        202,
    )


async def delete(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    return json_response(
        await control_call(app.triggers.event_sources.delete, request.match_info["UUID"]), 202
    )


async def list_mappings(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    q = request.query
    limit = max_items(request, 10000)
    return json_response(
        await control_call(
            app.triggers.event_sources.list,
            q.get("EventSourceArn"),
            q.get("FunctionName"),
            q.get("Marker"),
            limit,
        )
    )


def register(web_app: web.Application) -> None:
    r = web_app.router
    r.add_post(E, create)
    r.add_post(E + "/", create)
    r.add_get(E, list_mappings)
    r.add_get(E + "/", list_mappings)
    r.add_get(E + "/{UUID}", get)
    r.add_put(E + "/{UUID}", update)
    r.add_delete(E + "/{UUID}", delete)
