"""Code-signing, runtime-management and recursion settings of a function (REST)."""

from __future__ import annotations

from aiohttp import web

from firebox.api.operations import add_operation
from firebox.api.params import control_call, function_ref, inputs
from firebox.api.server import json_response
from firebox.control.function_settings import FunctionSettings

SETTINGS_KEY = web.AppKey("function_settings", FunctionSettings)


async def get_code_signing(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    ref = function_ref(request, allow_qualifier=False)
    return json_response(await control_call(settings.get_code_signing, ref.name))


async def put_code_signing(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    ref = function_ref(request, allow_qualifier=False)
    arn = inputs(request)["CodeSigningConfigArn"]
    return json_response(await control_call(settings.put_code_signing, ref.name, arn))


async def delete_code_signing(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    ref = function_ref(request, allow_qualifier=False)
    await control_call(settings.delete_code_signing, ref.name)
    return web.Response(status=204)


async def get_runtime_management(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    ref = function_ref(request)
    return json_response(
        await control_call(settings.get_runtime_management, ref.name, ref.qualifier)
    )


async def put_runtime_management(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    ref = function_ref(request)
    return json_response(
        await control_call(
            settings.put_runtime_management, ref.name, ref.qualifier, inputs(request)
        )
    )


async def get_recursion(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    ref = function_ref(request, allow_qualifier=False)
    return json_response(await control_call(settings.get_recursion, ref.name))


async def put_recursion(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    ref = function_ref(request, allow_qualifier=False)
    loop = inputs(request)["RecursiveLoop"]
    return json_response(await control_call(settings.put_recursion, ref.name, loop))


def register(web_app: web.Application, settings: FunctionSettings) -> None:
    web_app[SETTINGS_KEY] = settings
    add_operation(web_app, "GetFunctionCodeSigningConfig", get_code_signing)
    add_operation(web_app, "PutFunctionCodeSigningConfig", put_code_signing)
    add_operation(web_app, "DeleteFunctionCodeSigningConfig", delete_code_signing)
    add_operation(web_app, "GetRuntimeManagementConfig", get_runtime_management)
    add_operation(web_app, "PutRuntimeManagementConfig", put_runtime_management)
    add_operation(web_app, "GetFunctionRecursionConfig", get_recursion)
    add_operation(web_app, "PutFunctionRecursionConfig", put_recursion)
