"""The Lambda REST API (/2015-03-31/… and friends): parse, call the control plane or the
invoke path, shape the reply as botocore's model says."""

from __future__ import annotations

from aiohttp import web

from firebox.api.params import control_call, function_ref, invoke_headers, max_items
from firebox.api.server import (
    APP_KEY,
    INVOKE_BODY_BYTES,
    INVOKE_TOO_LARGE,
    MAX_BODY_BYTES,
    body_limit,
    json_response,
    read_json,
)
from firebox.arn import parse_layer_name
from firebox.errors import InvalidParameterValue

F = "/2015-03-31/functions"


# --- functions ------------------------------------------------------------------------


@body_limit(MAX_BODY_BYTES)
async def create_function(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    params = await read_json(request)
    return json_response(await control_call(app.functions.create, params), 201)


async def get_function(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request)
    return json_response(await control_call(app.functions.get, ref.name, ref.qualifier))


async def get_function_configuration(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request)
    return json_response(await control_call(app.functions.get_config, ref.name, ref.qualifier))


async def list_functions(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    all_versions = request.query.get("FunctionVersion") == "ALL"
    return json_response(
        await control_call(
            app.functions.list, request.query.get("Marker"), max_items(request), all_versions
        )
    )


@body_limit(MAX_BODY_BYTES)
async def update_function_code(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    params = await read_json(request)
    return json_response(await control_call(app.functions.update_code, ref.name, params))


async def update_function_configuration(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    params = await read_json(request)
    return json_response(await control_call(app.functions.update_config, ref.name, params))


async def delete_function(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request)
    await control_call(app.functions.delete, ref.name, ref.qualifier)
    return web.Response(status=204)


# --- versions and aliases --------------------------------------------------------------


async def publish_version(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    params = await read_json(request)
    return json_response(await control_call(app.versions.publish, ref.name, params), 201)


async def list_versions(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    return json_response(
        await control_call(
            app.versions.list, ref.name, request.query.get("Marker"), max_items(request)
        )
    )


async def create_alias(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    params = await read_json(request)
    return json_response(await control_call(app.aliases.create, ref.name, params), 201)


async def get_alias(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    return json_response(await control_call(app.aliases.get, ref.name, request.match_info["Name"]))


async def update_alias(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    params = await read_json(request)
    return json_response(
        await control_call(app.aliases.update, ref.name, request.match_info["Name"], params)
    )


async def delete_alias(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    await control_call(app.aliases.delete, ref.name, request.match_info["Name"])
    return web.Response(status=204)


async def list_aliases(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    return json_response(
        await control_call(
            app.aliases.list,
            ref.name,
            request.query.get("FunctionVersion"),
            request.query.get("Marker"),
            max_items(request),
        )
    )


# --- layers --------------------------------------------------------------------------


def _layer(request: web.Request) -> str:
    return parse_layer_name(request.match_info["LayerName"])


@body_limit(MAX_BODY_BYTES)
async def publish_layer_version(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    params = await read_json(request)
    return json_response(await control_call(app.layers.publish, _layer(request), params), 201)


async def get_layer_version(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    return json_response(
        await control_call(app.layers.get, _layer(request), request.match_info["VersionNumber"])
    )


async def delete_layer_version(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    await control_call(app.layers.delete, _layer(request), request.match_info["VersionNumber"])
    return web.Response(status=204)


async def list_layer_versions(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    q = request.query
    return json_response(
        await control_call(
            app.layers.list_versions,
            _layer(request),
            q.get("CompatibleRuntime"),
            q.get("CompatibleArchitecture"),
            q.get("Marker"),
            max_items(request),
        )
    )


async def list_layers_or_find(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    q = request.query
    if q.get("find") == "LayerVersion":
        arn = q.get("Arn")
        if not arn:
            raise InvalidParameterValue("Arn is required")
        return json_response(await control_call(app.layers.get_by_arn, arn))
    return json_response(
        await control_call(
            app.layers.list_layers,
            q.get("CompatibleRuntime"),
            q.get("CompatibleArchitecture"),
            q.get("Marker"),
            max_items(request),
        )
    )


# --- invoke --------------------------------------------------------------------------


@body_limit(INVOKE_BODY_BYTES, INVOKE_TOO_LARGE)
async def invoke(request: web.Request) -> web.StreamResponse:
    app = request.app[APP_KEY]
    ref = function_ref(request)
    invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
    payload = await request.read()
    if invocation_type == "DryRun":
        app.resolver.resolve(ref.name, ref.qualifier)
        return web.Response(status=204)
    if invocation_type == "Event":
        return await app.enqueue_event(ref, payload, request)
    if invocation_type != "RequestResponse":
        raise InvalidParameterValue(
            f"1 validation error detected: Value '{invocation_type}' at 'invocationType' failed "
            "to satisfy constraint: Member must satisfy enum value set: [Event, "
            "RequestResponse, DryRun]"
        )
    log_tail, client_context = invoke_headers(request)
    result = await app.invoker.invoke(
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


# --- concurrency, account, tags -----------------------------------------------------------


async def put_concurrency(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    params = await read_json(request)
    return json_response(
        await control_call(
            app.functions.put_concurrency, ref.name, params.get("ReservedConcurrentExecutions")
        )
    )


async def get_concurrency(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    return json_response(await control_call(app.functions.get_concurrency, ref.name))


async def delete_concurrency(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    ref = function_ref(request, allow_qualifier=False)
    await control_call(app.functions.delete_concurrency, ref.name)
    return web.Response(status=204)


async def account_settings(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    return json_response(await control_call(app.functions.account_settings))


async def tag_resource(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    params = await read_json(request)
    await control_call(app.functions.tag, request.match_info["Resource"], params.get("Tags"))
    return web.Response(status=204)


async def untag_resource(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    keys = request.query.getall("tagKeys", [])
    await control_call(app.functions.untag, request.match_info["Resource"], keys)
    return web.Response(status=204)


async def list_tags(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    return json_response(
        await control_call(app.functions.list_tags, request.match_info["Resource"])
    )


def register(web_app: web.Application) -> None:
    r = web_app.router
    fn = F + "/{FunctionName}"
    r.add_post(F, create_function)
    r.add_get(F, list_functions)
    r.add_get(F + "/", list_functions)
    r.add_get(fn, get_function)
    r.add_delete(fn, delete_function)
    r.add_get(fn + "/configuration", get_function_configuration)
    r.add_put(fn + "/configuration", update_function_configuration)
    r.add_put(fn + "/code", update_function_code)
    r.add_post(fn + "/invocations", invoke)
    r.add_post(fn + "/versions", publish_version)
    r.add_get(fn + "/versions", list_versions)
    r.add_post(fn + "/aliases", create_alias)
    r.add_get(fn + "/aliases", list_aliases)
    r.add_get(fn + "/aliases/{Name}", get_alias)
    r.add_put(fn + "/aliases/{Name}", update_alias)
    r.add_delete(fn + "/aliases/{Name}", delete_alias)
    c = "/2017-10-31/functions/{FunctionName}/concurrency"
    r.add_put(c, put_concurrency)
    r.add_delete(c, delete_concurrency)
    r.add_get("/2019-09-30/functions/{FunctionName}/concurrency", get_concurrency)
    r.add_get("/2016-08-19/account-settings", account_settings)
    r.add_get("/2016-08-19/account-settings/", account_settings)
    t = "/2017-03-31/tags/{Resource}"
    r.add_post(t, tag_resource)
    r.add_delete(t, untag_resource)
    r.add_get(t, list_tags)
    layers = "/2018-10-31/layers"
    r.add_get(layers, list_layers_or_find)
    r.add_post(layers + "/{LayerName}/versions", publish_layer_version)
    r.add_get(layers + "/{LayerName}/versions", list_layer_versions)
    r.add_get(layers + "/{LayerName}/versions/{VersionNumber}", get_layer_version)
    r.add_delete(layers + "/{LayerName}/versions/{VersionNumber}", delete_layer_version)
