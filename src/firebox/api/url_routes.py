"""Create/Get/Update/Delete/ListFunctionUrlConfigs (Lambda REST API, 2021-10-31)."""

from __future__ import annotations

from aiohttp import web

from firebox.api.operations import add_operation
from firebox.api.params import control_call, function_ref, inputs
from firebox.api.server import json_response
from firebox.control.urls import FunctionUrls

URLS_KEY = web.AppKey("function_urls", FunctionUrls)


async def create(request: web.Request) -> web.Response:
    urls = request.app[URLS_KEY]
    ref = function_ref(request)
    return json_response(
        await control_call(urls.create, ref.name, ref.qualifier, inputs(request)), 201
    )


async def get(request: web.Request) -> web.Response:
    urls = request.app[URLS_KEY]
    ref = function_ref(request)
    return json_response(await control_call(urls.get, ref.name, ref.qualifier))


async def update(request: web.Request) -> web.Response:
    urls = request.app[URLS_KEY]
    ref = function_ref(request)
    return json_response(await control_call(urls.update, ref.name, ref.qualifier, inputs(request)))


async def delete(request: web.Request) -> web.Response:
    urls = request.app[URLS_KEY]
    ref = function_ref(request)
    await control_call(urls.delete, ref.name, ref.qualifier)
    return web.Response(status=204)


async def list_configs(request: web.Request) -> web.Response:
    urls = request.app[URLS_KEY]
    ref = function_ref(request, allow_qualifier=False)
    params = inputs(request)
    return json_response(
        await control_call(urls.list, ref.name, params.get("Marker"), params.get("MaxItems"))
    )


def register(web_app: web.Application, urls: FunctionUrls) -> None:
    web_app[URLS_KEY] = urls
    add_operation(web_app, "CreateFunctionUrlConfig", create)
    add_operation(web_app, "GetFunctionUrlConfig", get)
    add_operation(web_app, "UpdateFunctionUrlConfig", update)
    add_operation(web_app, "DeleteFunctionUrlConfig", delete)
    add_operation(web_app, "ListFunctionUrlConfigs", list_configs)
