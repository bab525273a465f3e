"""AddPermission, RemovePermission and GetPolicy (the Lambda REST API's policy routes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from firebox.api.server import APP_KEY, json_response, read_json
from firebox.arn import FunctionRef, parse_function_ref
from firebox.errors import InvalidParameterValue

P = "/2015-03-31/functions/{FunctionName}/policy"


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a control-plane call off the loop; a field of the wrong type (which botocore
    refuses client-side) is a 400, not a 500."""
    try:
        return await asyncio.to_thread(fn, *args)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise InvalidParameterValue(f"Invalid request: {exc}") from None


def _ref(request: web.Request) -> FunctionRef:
    return parse_function_ref(request.match_info["FunctionName"], request.query.get("Qualifier"))


async def add_permission(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = _ref(request)
    params = await read_json(request)
    result = await _call(app.triggers.policies.add, ref.name, ref.qualifier, params)
    return json_response(result, 201)


async def remove_permission(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = _ref(request)
    await _call(
        app.triggers.policies.remove,
        ref.name,
        ref.qualifier,
        request.match_info["StatementId"],
        request.query.get("RevisionId"),
    )
    return web.Response(status=204)


async def get_policy(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = _ref(request)
    return json_response(await _call(app.triggers.policies.get, ref.name, ref.qualifier))


def register(web_app: web.Application) -> None:
    r = web_app.router
    r.add_post(P, add_permission)
    r.add_get(P, get_policy)
    r.add_delete(P + "/{StatementId}", remove_permission)
