"""Create/Get/Update/Delete/ListFunctionUrlConfigs (Lambda REST API, 2021-10-31)."""

from __future__ import annotations

from aiohttp import web

from firebox.api.params import control_call, function_ref, max_items
from firebox.api.server import APP_KEY, json_response, read_json

U = "/2021-10-31/functions/{FunctionName}"


async def create(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request)
    params = await read_json(request)
    return json_response(
        await control_call(app.triggers.urls.create, ref.name, ref.qualifier, params), 201
    )


async def get(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request)
    return json_response(await control_call(app.triggers.urls.get, ref.name, ref.qualifier))


async def update(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request)
    params = await read_json(request)
    return json_response(
        await control_call(app.triggers.urls.update, ref.name, ref.qualifier, params)
    )


async def delete(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request)
    await control_call(app.triggers.urls.delete, ref.name, ref.qualifier)
    return web.Response(status=204)


async def list_configs(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request)
    limit = max_items(request, 50)
    return json_response(
        await control_call(app.triggers.urls.list, ref.name, request.query.get("Marker"), limit)
    )


def register(web_app: web.Application) -> None:
    r = web_app.router
    r.add_post(U + "/url", create)
    r.add_get(U + "/url", get)
    r.add_put(U + "/url", update)
    r.add_delete(U + "/url", delete)
    r.add_get(U + "/urls", list_configs)
