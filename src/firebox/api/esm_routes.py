"""Create/Get/Update/Delete/ListEventSourceMappings (Lambda REST API, 2015-03-31)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from firebox.api.server import APP_KEY, json_response, read_json
from firebox.errors import InvalidParameterValue, ValidationError

E = "/2015-03-31/event-source-mappings"


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a control-plane call off the loop; a field of the wrong type (which botocore
    refuses client-side) is a 400, not a 500."""
    try:
        return await asyncio.to_thread(fn, *args)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise InvalidParameterValue(f"Invalid request: {exc}") from None


async def create(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    params = await read_json(request)
    return json_response(await _call(app.triggers.event_sources.create, params), 202)


async def get(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    return json_response(await _call(app.triggers.event_sources.get, request.match_info["UUID"]))


async def update(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    params = await read_json(request)
    return json_response(
        await _call(app.triggers.event_sources.update, request.match_info["UUID"], params),
        202,
    )


async def delete(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    return json_response(
        await _call(app.triggers.event_sources.delete, request.match_info["UUID"]), 202
    )


async def list_mappings(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    q = request.query
    raw = q.get("MaxItems")
    max_items = None
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= 10000:
            raise ValidationError(
                f"1 validation error detected: Value '{raw}' at 'maxItems' failed to satisfy "
                "constraint: Member must have value between 1 and 10000"
            )
        max_items = int(raw)
    return json_response(
        await _call(
            app.triggers.event_sources.list,
            q.get("EventSourceArn"),
            q.get("FunctionName"),
            q.get("Marker"),
            max_items,
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
