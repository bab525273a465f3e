"""The API front end: one aiohttp application for the Lambda API, the JSON 1.1 APIs
(CloudWatch Logs, EventBridge) and Firebox's own endpoints.

One middleware authenticates (SigV4) and turns every error into AWS's shape, so route
handlers only raise.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from firebox.api.errors import JSON_11, REST_JSON, error_response
from firebox.api.sigv4 import verify
from firebox.errors import (
    AccessDenied,
    FireboxError,
    InvalidRequestContent,
    RequestTooLarge,
    ServiceError,
    UnknownOperation,
)

if TYPE_CHECKING:
    from firebox.app import App

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TargetHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

APP_KEY: web.AppKey[App] = web.AppKey("firebox", t=object)  # type: ignore[arg-type]
PUBLIC_KEY = web.AppKey("public_routes", set)
TARGETS_KEY = web.AppKey("targets", dict)

# CreateFunction carries a 50 MB zip as base64 inside JSON.
MAX_BODY_BYTES = 75 * 1024 * 1024


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        content_type="application/json",
        headers=headers,
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or InvalidRequestContent."""
    body = await request.read()
    if not body:
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestContent(f"Could not parse request body into json: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequestContent("Could not parse request body into json: expected an object")
    return data


def public(handler: Handler) -> Handler:
    """Mark a route as reachable without a signature (checked by other means)."""
    handler.__firebox_public__ = True  # type: ignore[attr-defined]
    return handler


def _protocol(request: web.Request) -> str:
    return JSON_11 if "X-Amz-Target" in request.headers else REST_JSON


@web.middleware
async def _front_door(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = str(uuid.uuid4())
    request["request_id"] = request_id
    try:
        if not getattr(_route_handler(request), "__firebox_public__", False):
            await _authenticate(request)
        response = await handler(request)
    except FireboxError as exc:
        return error_response(exc, _protocol(request), request_id)
    except web.HTTPRequestEntityTooLarge:
        return error_response(
            RequestTooLarge(f"Request must be smaller than {MAX_BODY_BYTES} bytes"),
            _protocol(request),
            request_id,
        )
    except web.HTTPNotFound:
        return error_response(
            UnknownOperation(f"No operation at {request.method} {request.path}"),
            _protocol(request),
            request_id,
        )
    except web.HTTPMethodNotAllowed:
        return error_response(
            UnknownOperation(f"{request.method} is not allowed on {request.path}"),
            _protocol(request),
            request_id,
        )
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            ServiceError("An internal error occurred."), _protocol(request), request_id
        )
    response.headers.setdefault("x-amzn-RequestId", request_id)
    return response


def _route_handler(request: web.Request) -> object:
    info = request.match_info
    return getattr(info.route, "handler", None) if info is not None else None


async def _authenticate(request: web.Request) -> None:
    app = request.app[APP_KEY]
    body = await request.read()
    caller = verify(
        request.method,
        request.raw_path,
        request.headers,
        body,
        app.secret_for,
        app.settings.max_clock_skew_s,
    )
    request["caller"] = caller


async def _dispatch_target(request: web.Request) -> web.StreamResponse:
    """JSON 1.1 APIs: X-Amz-Target names the service and operation."""
    target = request.headers.get("X-Amz-Target")
    if not target:
        raise UnknownOperation("Missing X-Amz-Target")
    handler = request.app[TARGETS_KEY].get(target)
    if handler is None:
        raise UnknownOperation(f"Unknown operation {target}")
    params = await read_json(request)
    result = await handler(params)
    return web.Response(body=json.dumps(result).encode(), content_type="application/x-amz-json-1.1")


def presign_code_url(secret: bytes, base_url: str, sha: str, ttl_s: int = 600) -> str:
    """A URL that serves a package's zip without a signature, for ``ttl_s`` seconds."""
    expires = int(time.time()) + ttl_s
    sig = hmac.new(secret, f"{sha}:{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{base_url}/_firebox/code/{sha}?Expires={expires}&Signature={sig}"


@public
async def _code(request: web.Request) -> web.StreamResponse:
    app = request.app[APP_KEY]
    sha = request.match_info["sha"]
    try:
        expires = int(request.query.get("Expires", "0"))
    except ValueError:
        expires = 0
    expected = hmac.new(app.url_secret, f"{sha}:{expires}".encode(), hashlib.sha256).hexdigest()
    if expires < time.time() or not hmac.compare_digest(
        expected, request.query.get("Signature", "")
    ):
        raise AccessDenied("Request has expired or its signature is invalid")
    try:
        data = app.code.get(sha)
    except KeyError:
        raise AccessDenied("The specified key does not exist.") from None
    return web.Response(body=data, content_type="application/zip")


@public
async def _health(request: web.Request) -> web.StreamResponse:
    return json_response({"status": "ok"})


def build_api(app: App, registrars: list[Callable[[web.Application], None]]) -> web.Application:
    """The front-end application; each registrar adds one API's routes."""
    web_app = web.Application(middlewares=[_front_door], client_max_size=MAX_BODY_BYTES)
    web_app[APP_KEY] = app
    web_app[TARGETS_KEY] = {}
    web_app.router.add_get("/_firebox/code/{sha}", _code)
    web_app.router.add_get("/_firebox/health", _health)
    for register in registrars:
        register(web_app)
    web_app.router.add_post("/", _dispatch_target)
    return web_app
