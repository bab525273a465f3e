"""AddPermission, RemovePermission and GetPolicy (the Lambda REST API's policy routes)."""

from __future__ import annotations

from aiohttp import web

from firebox.api.params import control_call, function_ref
from firebox.api.server import APP_KEY, json_response, read_json

P = "/2015-03-31/functions/{FunctionName}/policy"


async def add_permission(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request)
    params = await read_json(request)
    result = await control_call(app.triggers.policies.add, ref.name, ref.qualifier, params)
    return json_response(result, 201)


async def remove_permission(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request)
    await control_call(
        app.triggers.policies.remove,
        ref.name,
        ref.qualifier,
        request.match_info["StatementId"],
        request.query.get("RevisionId"),
    )
    return web.Response(status=204)


async def get_policy(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request)
    return json_response(await control_call(app.triggers.policies.get, ref.name, ref.qualifier))


def register(web_app: web.Application) -> None:
    r = web_app.router
    r.add_post(P, add_permission)
    r.add_get(P, get_policy)
    r.add_delete(P + "/{StatementId}", remove_permission)
