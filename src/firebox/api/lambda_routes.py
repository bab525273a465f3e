"""The Lambda REST API (/2015-03-31/… and friends): call the control plane or the invoke
path with the operation's checked input, shape the reply as botocore's model says.

Routes come from botocore's model (operations.add_operation); ``inputs(request)`` is the
request's input, already checked against the operation's input shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from firebox.api.operations import add_operation
from firebox.api.params import control_call, function_ref, inputs, invoke_headers
from firebox.api.server import (
    INVOKE_BODY_BYTES,
    INVOKE_TOO_LARGE,
    MAX_BODY_BYTES,
    body_limit,
    json_response,
)
from firebox.arn import FunctionRef, parse_layer_name
from firebox.control.aliases import Aliases
from firebox.control.functions import Functions
from firebox.control.layers import Layers
from firebox.control.resolve import Resolver
from firebox.control.versions import Versions
from firebox.invoke.enqueue import EventIntake
from firebox.invoke.sync import Invoker


@dataclass(frozen=True, slots=True)
class LambdaApi:
    """What the Lambda REST routes need: the control plane and the invoke path."""

    functions: Functions
    versions: Versions
    aliases: Aliases
    layers: Layers
    invoker: Invoker
    resolver: Resolver
    intake: EventIntake


LAMBDA_KEY = web.AppKey("lambda_api", LambdaApi)

# --- functions ------------------------------------------------------------------------


@body_limit(MAX_BODY_BYTES)
async def create_function(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    return json_response(await control_call(api.functions.create, inputs(request)), 201)


async def get_function(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request)
    return json_response(await control_call(api.functions.get, ref.name, ref.qualifier))


async def get_function_configuration(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request)
    return json_response(await control_call(api.functions.get_config, ref.name, ref.qualifier))


async def list_functions(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    params = inputs(request)
    return json_response(
        await control_call(
            api.functions.list,
            params.get("Marker"),
            params.get("MaxItems"),
            params.get("FunctionVersion") == "ALL",
        )
    )


@body_limit(MAX_BODY_BYTES)
async def update_function_code(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request, allow_qualifier=False)
    return json_response(await control_call(api.functions.update_code, ref.name, inputs(request)))


async def update_function_configuration(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request, allow_qualifier=False)
    return json_response(await control_call(api.functions.update_config, ref.name, inputs(request)))


async def delete_function(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request)
    await control_call(api.functions.delete, ref.name, ref.qualifier)
    return web.Response(status=204)


# --- versions and aliases --------------------------------------------------------------


async def publish_version(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request, allow_qualifier=False)
    return json_response(await control_call(api.versions.publish, ref.name, inputs(request)), 201)


async def list_versions(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request, allow_qualifier=False)
    params = inputs(request)
    return json_response(
        await control_call(
            api.versions.list, ref.name, params.get("Marker"), params.get("MaxItems")
        )
    )


async def create_alias(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request, allow_qualifier=False)
    return json_response(await control_call(api.aliases.create, ref.name, inputs(request)), 201)


async def get_alias(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request, allow_qualifier=False)
    return json_response(await control_call(api.aliases.get, ref.name, inputs(request)["Name"]))


async def update_alias(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request, allow_qualifier=False)
    params = inputs(request)
    return json_response(await control_call(api.aliases.update, ref.name, params["Name"], params))


async def delete_alias(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request, allow_qualifier=False)
    await control_call(api.aliases.delete, ref.name, inputs(request)["Name"])
    return web.Response(status=204)


async def list_aliases(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request, allow_qualifier=False)
    params = inputs(request)
    return json_response(
        await control_call(
            api.aliases.list,
            ref.name,
            params.get("FunctionVersion"),
            params.get("Marker"),
            params.get("MaxItems"),
        )
    )


# --- layers --------------------------------------------------------------------------


def _layer(request: web.Request) -> str:
    return parse_layer_name(inputs(request)["LayerName"])


@body_limit(MAX_BODY_BYTES)
async def publish_layer_version(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    return json_response(
        await control_call(api.layers.publish, _layer(request), inputs(request)), 201
    )


async def get_layer_version(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    version = inputs(request)["VersionNumber"]
    return json_response(await control_call(api.layers.get, _layer(request), version))


async def delete_layer_version(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    version = inputs(request)["VersionNumber"]
    await control_call(api.layers.delete, _layer(request), version)
    return web.Response(status=204)


async def list_layer_versions(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    params = inputs(request)
    return json_response(
        await control_call(
            api.layers.list_versions,
            _layer(request),
            params.get("CompatibleRuntime"),
            params.get("CompatibleArchitecture"),
            params.get("Marker"),
            params.get("MaxItems"),
        )
    )


async def list_layers(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    params = inputs(request)
    return json_response(
        await control_call(
            api.layers.list_layers,
            params.get("CompatibleRuntime"),
            params.get("CompatibleArchitecture"),
            params.get("Marker"),
            params.get("MaxItems"),
        )
    )


async def get_layer_version_by_arn(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    return json_response(await control_call(api.layers.get_by_arn, inputs(request)["Arn"]))


# --- invoke --------------------------------------------------------------------------


@body_limit(INVOKE_BODY_BYTES, INVOKE_TOO_LARGE)
async def invoke(request: web.Request) -> web.StreamResponse:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request)
    invocation_type = inputs(request).get("InvocationType") or "RequestResponse"
    payload = await request.read()
    if invocation_type == "DryRun":
        await api.resolver.resolve(ref.name, ref.qualifier)
        return web.Response(status=204)
    if invocation_type == "Event":
        return await _enqueue(api, ref, payload, request)
    log_tail, client_context = invoke_headers(request)
    result = await api.invoker.invoke(
        ref, payload, log_tail=log_tail, client_context=client_context
    )
    headers = {
        "X-Amz-Executed-Version": result.executed_version,
        "x-amzn-RequestId": result.request_id,
    }
    if result.function_error:
        headers["X-Amz-Function-Error"] = result.function_error
    if result.log_result is not None:
        headers["X-Amz-Log-Result"] = result.log_result
    return web.Response(
        status=200, body=result.payload, headers=headers, content_type="application/json"
    )


async def _enqueue(
    api: LambdaApi, ref: FunctionRef, payload: bytes, request: web.Request
) -> web.Response:
    """InvocationType=Event: queued durably (synced to disk), then 202."""
    rid = await api.intake.submit(ref, payload, request_id=request.get("request_id"))
    return web.Response(status=202, headers={"x-amzn-RequestId": rid})


# --- concurrency, account, tags -----------------------------------------------------------


async def put_concurrency(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request, allow_qualifier=False)
    reserved = inputs(request)["ReservedConcurrentExecutions"]
    return json_response(await control_call(api.functions.put_concurrency, ref.name, reserved))


async def get_concurrency(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request, allow_qualifier=False)
    return json_response(await control_call(api.functions.get_concurrency, ref.name))


async def delete_concurrency(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    ref = function_ref(request, allow_qualifier=False)
    await control_call(api.functions.delete_concurrency, ref.name)
    return web.Response(status=204)


async def account_settings(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    return json_response(await control_call(api.functions.account_settings))


async def tag_resource(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    params = inputs(request)
    await control_call(api.functions.tag, params["Resource"], params["Tags"])
    return web.Response(status=204)


async def untag_resource(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    params = inputs(request)
    await control_call(api.functions.untag, params["Resource"], params["TagKeys"])
    return web.Response(status=204)


async def list_tags(request: web.Request) -> web.Response:
    api = request.app[LAMBDA_KEY]
    return json_response(await control_call(api.functions.list_tags, inputs(request)["Resource"]))


def register(web_app: web.Application, api: LambdaApi) -> None:
    web_app[LAMBDA_KEY] = api
    for name, handler in {
        "CreateFunction": create_function,
        "ListFunctions": list_functions,
        "GetFunction": get_function,
        "DeleteFunction": delete_function,
        "GetFunctionConfiguration": get_function_configuration,
        "UpdateFunctionConfiguration": update_function_configuration,
        "UpdateFunctionCode": update_function_code,
        "Invoke": invoke,
        "PublishVersion": publish_version,
        "ListVersionsByFunction": list_versions,
        "CreateAlias": create_alias,
        "ListAliases": list_aliases,
        "GetAlias": get_alias,
        "UpdateAlias": update_alias,
        "DeleteAlias": delete_alias,
        "PutFunctionConcurrency": put_concurrency,
        "DeleteFunctionConcurrency": delete_concurrency,
        "GetFunctionConcurrency": get_concurrency,
        "GetAccountSettings": account_settings,
        "TagResource": tag_resource,
        "UntagResource": untag_resource,
        "ListTags": list_tags,
        "ListLayers": list_layers,
        "GetLayerVersionByArn": get_layer_version_by_arn,
        "PublishLayerVersion": publish_layer_version,
        "ListLayerVersions": list_layer_versions,
        "GetLayerVersion": get_layer_version,
        "DeleteLayerVersion": delete_layer_version,
    }.items():
        add_operation(web_app, name, handler)
