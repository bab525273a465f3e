"""A bug in Firebox is a logged 500 ServiceException, never a 400 that blames the client."""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from firebox.api.server import FRONT_KEY, _front_door, public
from firebox.errors import InvalidParameterValue

# The front door keeps its request id under a plain string key.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


def _app() -> web.Application:
    @public
    async def buggy(request: web.Request) -> web.StreamResponse:
        return web.json_response({}[request.match_info["key"]])

    @public
    async def refuses(request: web.Request) -> web.StreamResponse:
        raise InvalidParameterValue("bad input")

    app = web.Application(middlewares=[_front_door])
    # Public routes need nothing of the front door (no credentials to check).
    app[FRONT_KEY] = SimpleNamespace()  # type: ignore[assignment]
    app.router.add_get("/buggy/{key}", buggy)
    app.router.add_get("/refuses", refuses)
    return app


async def _get(path: str) -> tuple[int, dict[str, str], dict[str, str]]:
    async with TestClient(TestServer(_app())) as client:
        resp = await client.get(path)
        return resp.status, dict(resp.headers), json.loads(await resp.read())


def test_a_key_error_in_a_handler_is_a_logged_500(caplog):
    with caplog.at_level(logging.ERROR, logger="firebox.api.server"):
        status, headers, body = asyncio.run(_get("/buggy/x"))
    assert status == 500
    assert headers["x-amzn-ErrorType"] == "ServiceException"
    assert body == {"Type": "Service", "Message": "An internal error occurred."}
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def test_a_firebox_error_is_the_clients_400_with_the_models_message_key():
    status, headers, body = asyncio.run(_get("/refuses"))
    assert status == 400
    assert headers["x-amzn-ErrorType"] == "InvalidParameterValueException"
    assert body == {"Type": "User", "message": "bad input"}
