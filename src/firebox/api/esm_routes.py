"""Create/Get/Update/Delete/ListEventSourceMappings (Lambda REST API, 2015-03-31)."""

from __future__ import annotations

from aiohttp import web

from firebox.api.operations import add_operation
from firebox.api.params import control_call, inputs
from firebox.api.server import json_response
from firebox.control.event_sources import EventSourceMappings

MAPPINGS_KEY = web.AppKey("event_source_mappings", EventSourceMappings)


async def create(request: web.Request) -> web.Response:
    mappings = request.app[MAPPINGS_KEY]
    return json_response(await control_call(mappings.create, inputs(request)), 202)


async def get(request: web.Request) -> web.Response:
    mappings = request.app[MAPPINGS_KEY]
    return json_response(await control_call(mappings.get, inputs(request)["UUID"]))


async def update(request: web.Request) -> web.Response:
    mappings = request.app[MAPPINGS_KEY]
    params = inputs(request)
    return json_response(await control_call(mappings.update, params["UUID"], params), 202)


async def delete(request: web.Request) -> web.Response:
    mappings = request.app[MAPPINGS_KEY]
    return json_response(await control_call(mappings.delete, inputs(request)["UUID"]), 202)


async def list_mappings(request: web.Request) -> web.Response:
    mappings = request.app[MAPPINGS_KEY]
    q = inputs(request)
    return json_response(
        await control_call(
            mappings.list,
            q.get("EventSourceArn"),
            q.get("FunctionName"),
            q.get("Marker"),
            q.get("MaxItems"),
        )
    )


def register(web_app: web.Application, mappings: EventSourceMappings) -> None:
    web_app[MAPPINGS_KEY] = mappings
    add_operation(web_app, "CreateEventSourceMapping", create)
    add_operation(web_app, "ListEventSourceMappings", list_mappings)
    add_operation(web_app, "GetEventSourceMapping", get)
    add_operation(web_app, "UpdateEventSourceMapping", update)
    add_operation(web_app, "DeleteEventSourceMapping", delete)
