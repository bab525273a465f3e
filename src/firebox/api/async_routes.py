"""Asynchronous invocation routes: event invoke configs, the old InvokeAsync API, and
Firebox's own view of the event queue (/_firebox/queues, /_firebox/dead-letters)."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import asdict, dataclass

from aiohttp import web

from firebox.api.operations import add_operation
from firebox.api.params import function_ref, inputs
from firebox.api.server import (
    INVOKE_BODY_BYTES,
    INVOKE_TOO_LARGE,
    body_limit,
    json_response,
)
from firebox.control.event_invoke import EventInvokeConfigs
from firebox.errors import ValidationError
from firebox.invoke.enqueue import EventIntake
from firebox.store.queue.base import EventQueue, stats_by_function


@dataclass(frozen=True, slots=True)
class AsyncApi:
    """What the asynchronous-invocation routes need."""

    configs: EventInvokeConfigs
    intake: EventIntake
    queue: EventQueue


ASYNC_KEY = web.AppKey("async_api", AsyncApi)


async def put_config(request: web.Request) -> web.Response:
    api = request.app[ASYNC_KEY]
    params = inputs(request)
    return json_response(await asyncio.to_thread(api.configs.put, function_ref(request), params))


async def update_config(request: web.Request) -> web.Response:
    api = request.app[ASYNC_KEY]
    params = inputs(request)
    return json_response(
        await asyncio.to_thread(api.configs.put, function_ref(request), params, True)
    )


async def get_config(request: web.Request) -> web.Response:
    api = request.app[ASYNC_KEY]
    return json_response(await asyncio.to_thread(api.configs.get, function_ref(request)))


async def delete_config(request: web.Request) -> web.Response:
    api = request.app[ASYNC_KEY]
    await asyncio.to_thread(api.configs.delete, function_ref(request))
    return web.Response(status=204)


async def list_configs(request: web.Request) -> web.Response:
    api = request.app[ASYNC_KEY]
    ref = function_ref(request, allow_qualifier=False)
    params = inputs(request)
    return json_response(
        await asyncio.to_thread(
            api.configs.list, ref.name, params.get("Marker"), params.get("MaxItems")
        )
    )


@body_limit(INVOKE_BODY_BYTES, INVOKE_TOO_LARGE)
async def invoke_async(request: web.Request) -> web.Response:
    """The deprecated InvokeAsync: the body is the event; 202 with an empty object (the
    model binds its one output member, Status, to the status code)."""
    api = request.app[ASYNC_KEY]
    ref = function_ref(request)
    rid = await api.intake.submit(ref, await request.read(), request_id=request["request_id"])
    return json_response({}, 202, headers={"x-amzn-RequestId": rid})


async def queues(request: web.Request) -> web.Response:
    api = request.app[ASYNC_KEY]
    return json_response(await asyncio.to_thread(stats_by_function, api.queue))


async def dead_letters(request: web.Request) -> web.Response:
    api = request.app[ASYNC_KEY]
    function = request.query.get("FunctionName") or None
    raw = request.query.get("MaxItems", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise ValidationError("MaxItems must be between 1 and 1000")
    letters = await asyncio.to_thread(api.queue.dead_letters, function, int(raw))
    out = []
    for letter in letters:
        item = asdict(letter)
        payload = item.pop("payload")
        try:
            item["payload"] = payload.decode()
        except UnicodeDecodeError:
            item["payloadBase64"] = base64.b64encode(payload).decode()
        out.append(item)
    return json_response({"DeadLetters": out})


def register(web_app: web.Application, api: AsyncApi) -> None:
    web_app[ASYNC_KEY] = api
    add_operation(web_app, "PutFunctionEventInvokeConfig", put_config)
    add_operation(web_app, "UpdateFunctionEventInvokeConfig", update_config)
    add_operation(web_app, "GetFunctionEventInvokeConfig", get_config)
    add_operation(web_app, "DeleteFunctionEventInvokeConfig", delete_config)
    add_operation(web_app, "ListFunctionEventInvokeConfigs", list_configs)
    add_operation(web_app, "InvokeAsync", invoke_async)
    r = web_app.router
    r.add_get("/_firebox/queues", queues)
    r.add_get("/_firebox/dead-letters", dead_letters)
