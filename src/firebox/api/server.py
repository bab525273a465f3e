"""The API front end: one aiohttp application for the Lambda API, the JSON 1.1 APIs
(CloudWatch Logs, EventBridge) and Firebox's own endpoints.

One middleware authenticates (SigV4) and turns every error into AWS's shape, so route
handlers only raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from firebox.api.errors import JSON_11, REST_JSON, error_response
from firebox.api.sigv4 import check_headers, check_signature
from firebox.errors import (
    AccessDenied,
    FireboxError,
    RequestTooLarge,
    ServiceError,
    UnknownOperation,
)
from firebox.messages import BODY_NOT_JSON, JSON11_NOT_JSON

if TYPE_CHECKING:
    from firebox.store.code.base import CodeStore

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TargetHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class FrontDoor:
    """What the front door itself needs: whose signatures it accepts and how stale, the
    region names are read in, and the secret and store behind presigned code URLs."""

    secret_for: Callable[[str], str | None]
    max_clock_skew_s: int
    region: str
    url_secret: bytes
    code: CodeStore


FRONT_KEY = web.AppKey("front_door", FrontDoor)
PUBLIC_KEY = web.AppKey("public_routes", set)
TARGETS_KEY = web.AppKey("targets", dict)
JSON_BODY_KEY = web.RequestKey("json_body", dict)

# Request bodies are limited per route, before any of it is read. Only the operations
# that carry a zip get the large limit (a 50 MB zip is 66.7 MB as base64 inside JSON);
# Invoke carries at most 6 MB (the margin leaves the exact size check to the invoke path);
# everything else is small, as AWS's own limits are (1 MB for an async event, 256 KB for
# an EventBridge event, kilobytes for configuration).
MAX_BODY_BYTES = 70 * 1024 * 1024
INVOKE_BODY_BYTES = 6 * 1024 * 1024 + 64 * 1024
INVOKE_TOO_LARGE = "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
DEFAULT_BODY_BYTES = 1024 * 1024 + 64 * 1024
# Bodies hashed off the loop: SHA-256 runs at about 1 GB/s, so this is about 0.25 ms.
_HASH_INLINE_BYTES = 256 * 1024
# A refused request whose unread body is larger than this is answered on a connection
# that then closes, instead of being read and thrown away.
_DRAIN_UNREAD_BYTES = 64 * 1024
# aiohttp reads and discards an unread body for up to 10 s after the answer by default
# ("lingering"): a refused 4 GB upload would be taken in anyway. The servers run with
# none; what must be drained is drained by _refuse.
LINGERING_TIME_S = 0.0


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
    """The request body as a JSON object (parsed once per request), or the protocol's
    error for a body that is not one."""
    cached = request.get(JSON_BODY_KEY)
    if cached is not None:
        return cached
    body = await request.read()
    data: Any = {}
    if body:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _not_json(request, str(exc)) from None
    if not isinstance(data, dict):
        raise _not_json(request, "expected an object")
    request[JSON_BODY_KEY] = data
    return data


def _not_json(request: web.Request, detail: str) -> FireboxError:
    if _protocol(request) == JSON_11:
        return JSON11_NOT_JSON(detail=detail)
    return BODY_NOT_JSON(detail=detail)


def public(handler: Handler) -> Handler:
    """Mark a route as reachable without a signature (checked by other means)."""
    handler.__firebox_public__ = True  # type: ignore[attr-defined]
    return handler


def body_limit(size_bytes: int, message: str | None = None) -> Callable[[_F], _F]:
    """Allow a route (or a JSON 1.1 target) a request body of up to ``size_bytes``
    instead of DEFAULT_BODY_BYTES; ``message``: what a larger one is told."""

    def mark(handler: _F) -> _F:
        handler.__firebox_body_limit__ = (size_bytes, message)  # type: ignore[attr-defined]
        return handler

    return mark


def _protocol(request: web.Request) -> str:
    return JSON_11 if "X-Amz-Target" in request.headers else REST_JSON


@web.middleware
async def _front_door(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = str(uuid.uuid4())
    request["request_id"] = request_id
    try:
        request = await _admit(request)
        response = await handler(request)
    except FireboxError as exc:
        return await _refuse(request, error_response(exc, _protocol(request), request_id))
    except web.HTTPNotFound:
        return await _refuse(
            request,
            error_response(
                UnknownOperation(f"No operation at {request.method} {request.path}"),
                _protocol(request),
                request_id,
            ),
        )
    except web.HTTPMethodNotAllowed:
        return await _refuse(
            request,
            error_response(
                UnknownOperation(f"{request.method} is not allowed on {request.path}"),
                _protocol(request),
                request_id,
            ),
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


async def _refuse(request: web.Request, response: web.Response) -> web.Response:
    """An error answer. A small unread body is read and dropped, so the connection stays
    usable (closing on unread data resets it under the client's answer); a large one is
    not read at all: the connection closes after the answer (the server runs with no
    lingering, see LINGERING_TIME_S)."""
    if not request.content.at_eof():
        length = request.content_length
        if length is not None and length <= _DRAIN_UNREAD_BYTES:
            with contextlib.suppress(Exception):
                await request.content.read()
        else:
            response.force_close()
    return response


def _route_handler(request: web.Request) -> object:
    info = request.match_info
    handler = getattr(info.route, "handler", None) if info is not None else None
    if handler is _dispatch_target:
        # One route for every JSON 1.1 operation: the operation is the target.
        return request.app[TARGETS_KEY].get(request.headers.get("X-Amz-Target", ""), handler)
    return handler


async def _admit(request: web.Request) -> web.Request:
    """Authenticate from the headers, then read the body within the route's limit, then
    check the signature over it. Returns the request the handler gets: its body is read.
    Raises the AWS auth error, or RequestTooLarge, before reading what it need not."""
    route = _route_handler(request)
    limit, message = getattr(route, "__firebox_body_limit__", (DEFAULT_BODY_BYTES, None))
    front = request.app[FRONT_KEY]
    signed = None
    if not getattr(route, "__firebox_public__", False):
        signed = check_headers(request.headers, front.secret_for, front.max_clock_skew_s)
    too_large = RequestTooLarge(message or f"Request must be smaller than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    request = request.clone(client_max_size=limit)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    if signed is not None:
        if len(body) > _HASH_INLINE_BYTES:
            payload_hash = await asyncio.to_thread(_sha256_hex, body)
        else:
            payload_hash = _sha256_hex(body)
        request["caller"] = check_signature(
            signed, request.method, request.raw_path, body, payload_hash
        )
    return request


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
    front = request.app[FRONT_KEY]
    sha = request.match_info["sha"]
    try:
        expires = int(request.query.get("Expires", "0"))
    except ValueError:
        expires = 0
    expected = hmac.new(front.url_secret, f"{sha}:{expires}".encode(), hashlib.sha256).hexdigest()
    if expires < time.time() or not hmac.compare_digest(
        expected, request.query.get("Signature", "")
    ):
        raise AccessDenied("Request has expired or its signature is invalid")
    try:
        # Up to 50 MB from disk: read in a worker thread, not on the loop serving invokes.
        data = await asyncio.to_thread(front.code.get, sha)
    except KeyError:
        raise AccessDenied("The specified key does not exist.") from None
    return web.Response(body=data, content_type="application/zip")


@public
async def _health(request: web.Request) -> web.StreamResponse:
    return json_response({"status": "ok"})


def build_api(
    front: FrontDoor, registrars: list[Callable[[web.Application], None]]
) -> web.Application:
    """The front-end application; each registrar adds one API's routes."""
    web_app = web.Application(middlewares=[_front_door], client_max_size=MAX_BODY_BYTES)
    web_app[FRONT_KEY] = front
    web_app[TARGETS_KEY] = {}
    web_app.router.add_get("/_firebox/code/{sha}", _code)
    web_app.router.add_get("/_firebox/health", _health)
    for register in registrars:
        register(web_app)
    web_app.router.add_post("/", _dispatch_target)
    return web_app
