"""Create/Get/Update/Delete/ListFunctionUrlConfigs (Lambda REST API, 2021-10-31)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from firebox.api.server import APP_KEY, json_response, read_json
from firebox.arn import FunctionRef, parse_function_ref
from firebox.errors import InvalidParameterValue, ValidationError

U = "/2021-10-31/functions/{FunctionName}"


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a control-plane call off the loop; a field of the wrong type (which botocore
    refuses client-side) is a 400, not a 500."""
    try:
        return await asyncio.to_thread(fn, *args)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise InvalidParameterValue(f"Invalid request: {exc}") from None


def _ref(request: web.Request) -> FunctionRef:
    return parse_function_ref(request.match_info["FunctionName"], request.query.get("Qualifier"))


async def create(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = _ref(request)
    params = await read_json(request)
    return json_response(
        await _call(app.triggers.urls.create, ref.name, ref.qualifier, params), 201
    )


async def get(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = _ref(request)
    return json_response(await _call(app.triggers.urls.get, ref.name, ref.qualifier))


async def update(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = _ref(request)
    params = await read_json(request)
    return json_response(await _call(app.triggers.urls.update, ref.name, ref.qualifier, params))


async def delete(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = _ref(request)
    await _call(app.triggers.urls.delete, ref.name, ref.qualifier)
    return web.Response(status=204)


async def list_configs(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = _ref(request)
    raw = request.query.get("MaxItems")
    max_items = None
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= 50:
            raise ValidationError(
                f"1 validation error detected: Value '{raw}' at 'maxItems' failed to satisfy "
                "constraint: Member must have value between 1 and 50"
            )
        max_items = int(raw)
    return json_response(
        await _call(app.triggers.urls.list, ref.name, request.query.get("Marker"), max_items)
    )


def register(web_app: web.Application) -> None:
    r = web_app.router
    r.add_post(U + "/url", create)
    r.add_get(U + "/url", get)
    r.add_put(U + "/url", update)
    r.add_delete(U + "/url", delete)
    r.add_get(U + "/urls", list_configs)
