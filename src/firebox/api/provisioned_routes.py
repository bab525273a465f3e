"""Provisioned concurrency configs: /2019-09-30/functions/{FunctionName}/provisioned-concurrency
(Put, Get, Delete by Qualifier; List with ?List=ALL)."""

from __future__ import annotations

from aiohttp import web

from firebox.api.params import control_call, max_items
from firebox.api.server import APP_KEY, json_response, read_json
from firebox.arn import parse_function_ref

PATH = "/2019-09-30/functions/{FunctionName}/provisioned-concurrency"


def _target(request: web.Request) -> tuple[str, str | None]:
    ref = parse_function_ref(request.match_info["FunctionName"], request.query.get("Qualifier"))
    return ref.name, ref.qualifier


async def put_config(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    name, qualifier = _target(request)
    params = await read_json(request)
    result = await control_call(
        app.provisioned.put, name, qualifier, params.get("ProvisionedConcurrentExecutions")
    )
    return json_response(result, 202)


async def get_or_list(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    if request.query.get("List") == "ALL":
        name = parse_function_ref(request.match_info["FunctionName"]).name
        return json_response(
            await control_call(
                app.provisioned.list, name, request.query.get("Marker"), max_items(request, 50)
            )
        )
    name, qualifier = _target(request)
    return json_response(await control_call(app.provisioned.get, name, qualifier))


async def delete_config(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    name, qualifier = _target(request)
    await control_call(app.provisioned.delete, name, qualifier)
    return web.Response(status=204)


def register(web_app: web.Application) -> None:
    r = web_app.router
    r.add_put(PATH, put_config)
    r.add_get(PATH, get_or_list)
    r.add_delete(PATH, delete_config)
