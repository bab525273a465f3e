"""Provisioned concurrency configs: /2019-09-30/functions/{FunctionName}/provisioned-concurrency
(Put, Get, Delete by Qualifier; List with ?List=ALL)."""

from __future__ import annotations

from aiohttp import web

from firebox.api.operations import add_operation
from firebox.api.params import control_call, function_ref, inputs
from firebox.api.server import json_response
from firebox.control.provisioned import ProvisionedConcurrency

PROVISIONED_KEY = web.AppKey("provisioned", ProvisionedConcurrency)


def _target(request: web.Request) -> tuple[str, str]:
    """The function and its Qualifier (required by the model for these operations)."""
    ref = function_ref(request)
    return ref.name, ref.qualifier or inputs(request)["Qualifier"]


async def put_config(request: web.Request) -> web.Response:
    provisioned = request.app[PROVISIONED_KEY]
    name, qualifier = _target(request)
    requested = inputs(request)["ProvisionedConcurrentExecutions"]
    result = await control_call(provisioned.put, name, qualifier, requested)
    return json_response(result, 202)


async def get_config(request: web.Request) -> web.Response:
    provisioned = request.app[PROVISIONED_KEY]
    name, qualifier = _target(request)
    return json_response(await control_call(provisioned.get, name, qualifier))


async def list_configs(request: web.Request) -> web.Response:
    provisioned = request.app[PROVISIONED_KEY]
    params = inputs(request)
    name = function_ref(request, allow_qualifier=False).name
    return json_response(
        await control_call(provisioned.list, name, params.get("Marker"), params.get("MaxItems"))
    )


async def delete_config(request: web.Request) -> web.Response:
    provisioned = request.app[PROVISIONED_KEY]
    name, qualifier = _target(request)
    await control_call(provisioned.delete, name, qualifier)
    return web.Response(status=204)


def register(web_app: web.Application, provisioned: ProvisionedConcurrency) -> None:
    web_app[PROVISIONED_KEY] = provisioned
    add_operation(web_app, "PutProvisionedConcurrencyConfig", put_config)
    add_operation(web_app, "GetProvisionedConcurrencyConfig", get_config)
    add_operation(web_app, "ListProvisionedConcurrencyConfigs", list_configs)
    add_operation(web_app, "DeleteProvisionedConcurrencyConfig", delete_config)
