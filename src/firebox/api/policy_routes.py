"""AddPermission, RemovePermission and GetPolicy (the Lambda REST API's policy routes)."""

from __future__ import annotations

from aiohttp import web

from firebox.api.operations import add_operation
from firebox.api.params import control_call, function_ref, inputs
from firebox.api.server import json_response
from firebox.control.policies import Policies

POLICIES_KEY = web.AppKey("policies", Policies)


async def add_permission(request: web.Request) -> web.Response:
    policies = request.app[POLICIES_KEY]
    ref = function_ref(request)
    params = inputs(request)
    result = await control_call(policies.add, ref.name, ref.qualifier, params)
    return json_response(result, 201)


async def remove_permission(request: web.Request) -> web.Response:
    policies = request.app[POLICIES_KEY]
    ref = function_ref(request)
    await control_call(
        policies.remove,
        ref.name,
        ref.qualifier,
        inputs(request)["StatementId"],
        inputs(request).get("RevisionId"),
    )
    return web.Response(status=204)


async def get_policy(request: web.Request) -> web.Response:
    policies = request.app[POLICIES_KEY]
    ref = function_ref(request)
    return json_response(await control_call(policies.get, ref.name, ref.qualifier))


def register(web_app: web.Application, policies: Policies) -> None:
    web_app[POLICIES_KEY] = policies
    add_operation(web_app, "AddPermission", add_permission)
    add_operation(web_app, "GetPolicy", get_policy)
    add_operation(web_app, "RemovePermission", remove_permission)
