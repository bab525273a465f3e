"""Code-signing, runtime-management and recursion settings of a function (REST)."""

from __future__ import annotations

from aiohttp import web

from firebox.api.params import control_call, function_ref
from firebox.api.server import APP_KEY, json_response, read_json

CSC = "/2020-06-30/functions/{FunctionName}/code-signing-config"
RMC = "/2021-07-20/functions/{FunctionName}/runtime-management-config"
REC = "/2024-08-31/functions/{FunctionName}/recursion-config"


async def get_code_signing(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    return json_response(await control_call(app.function_settings.get_code_signing, ref.name))


async def put_code_signing(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    params = await read_json(request)
    return json_response(
        await control_call(
            app.function_settings.put_code_signing, ref.name, params.get("CodeSigningConfigArn")
        )
    )


async def delete_code_signing(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    await control_call(app.function_settings.delete_code_signing, ref.name)
    return web.Response(status=204)


async def get_runtime_management(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request)
    return json_response(
        await control_call(app.function_settings.get_runtime_management, ref.name, ref.qualifier)
    )


async def put_runtime_management(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request)
    params = await read_json(request)
    return json_response(
        await control_call(
            app.function_settings.put_runtime_management, ref.name, ref.qualifier, params
        )
    )


async def get_recursion(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    return json_response(await control_call(app.function_settings.get_recursion, ref.name))


async def put_recursion(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    params = await read_json(request)
    return json_response(
        await control_call(
            app.function_settings.put_recursion, ref.name, params.get("RecursiveLoop")
        )
    )


def register(web_app: web.Application) -> None:
    r = web_app.router
    r.add_get(CSC, get_code_signing)
    r.add_put(CSC, put_code_signing)
    r.add_delete(CSC, delete_code_signing)
    r.add_get(RMC, get_runtime_management)
    r.add_put(RMC, put_runtime_management)
    r.add_get(REC, get_recursion)
    r.add_put(REC, put_recursion)
