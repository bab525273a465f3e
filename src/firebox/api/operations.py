"""AWS operations by botocore's name. A route's method and path come from the service model,
and every request is checked against the operation's input shape (validate.py) before its
handler runs, so handlers only see input of the model's shape.

REST (Lambda): ``add_operation(web_app, "CreateFunction", handler)``; the handler finds the
checked input in ``request[INPUT_KEY]`` (member name → value, typed). JSON 1.1 (Logs,
EventBridge): ``json11_operation("logs", "CreateLogGroup", handler)`` wraps a handler of the
body's parameters.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any

import botocore.session
from aiohttp import web
from botocore.model import OperationModel, ServiceModel, Shape

from firebox import messages as m
from firebox.api.server import read_json
from firebox.api.validate import Rules, Violation, lower_first, render, validate
from firebox.errors import FireboxError, LogsInvalidParameter, ValidationError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Params = dict[str, Any]
TargetHandler = Callable[[Params], Awaitable[Params]]

_JAVA_TYPES = {
    "string": "java.lang.String",
    "integer": "java.lang.Integer",
    "long": "java.lang.Long",
    "boolean": "java.lang.Boolean",
    "double": "java.lang.Double",
    "float": "java.lang.Float",
    "blob": "java.nio.ByteBuffer",
    "timestamp": "java.util.Date",
    "list": "java.util.ArrayList",
    "map": "java.util.HashMap",
}
_CORAL_TYPES = {
    "string": "a String",
    "integer": "an Integer",
    "long": "a Long",
    "boolean": "a Boolean",
    "double": "a Double",
    "float": "a Float",
    "blob": "a ByteBuffer",
    "timestamp": "a Date",
    "structure": "a Structure",
    "list": "a List",
    "map": "a Map",
}


def _lambda_wrong_type(path: str, shape: Shape, value: Any) -> FireboxError:
    java = _JAVA_TYPES.get(shape.type_name, shape.name)
    return m.BODY_WRONG_TYPE(java_type=java, path=path)


def _json11_wrong_type(path: str, shape: Shape, value: Any) -> FireboxError:
    if isinstance(value, dict):
        return m.JSON11_START_OF_STRUCTURE()
    if isinstance(value, list):
        return m.JSON11_START_OF_LIST()
    if isinstance(value, bool):
        token = "TRUE_VALUE" if value else "FALSE_VALUE"
    else:
        token = "STRING_VALUE" if isinstance(value, str) else "NUMBER_VALUE"
    return m.JSON11_WRONG_SCALAR(
        token=token, java_type=_CORAL_TYPES.get(shape.type_name, "a Value")
    )


RULES = {
    "lambda": Rules(
        invalid=ValidationError,
        wrong_type=_lambda_wrong_type,
        # Lambda checks runtimes itself (InvalidParameterValueException, RUNTIME_INVALID); the
        # floor of an event's maximum age is AWS's 60 s unless an operator lowered it.
        own_checks=frozenset({("runtime", "enum"), ("maximumEventAgeInSeconds", "min")}),
        enum_order={
            # As AWS lists them (recorded answers), where that differs from the model.
            "RecursiveLoop": ("Terminate", "Allow"),
            "InvokeMode": ("RESPONSE_STREAM", "BUFFERED"),
            "EventSourcePosition": ("LATEST", "AT_TIMESTAMP", "TRIM_HORIZON"),
        },
    ),
    "logs": Rules(
        invalid=LogsInvalidParameter,
        wrong_type=_json11_wrong_type,
        # CloudWatch Logs answers a name over 512 characters itself (LOG_NAME_TOO_LONG).
        own_checks=frozenset({("logGroupName", "max"), ("logStreamName", "max")}),
    ),
    "events": Rules(invalid=ValidationError, wrong_type=_json11_wrong_type),
}


@functools.cache
def service_model(service: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(service)


# --- REST (Lambda) ------------------------------------------------------------------------

_ROUTES_KEY = web.AppKey("lambda_operations", dict)
# (query discriminator, operation, handler) of one route.
_Candidate = tuple[Any, OperationModel, Handler]
INPUT_KEY = web.RequestKey("input", dict)


def add_operation(web_app: web.Application, name: str, handler: Handler) -> None:
    """Route Lambda's operation ``name`` (botocore's name) to ``handler``, input checked."""
    op = service_model("lambda").operation_model(name)
    method = op.http["method"]
    path, _, query = op.http["requestUri"].partition("?")
    # Two operations share a path where the query tells them apart (?find=LayerVersion).
    discriminator = tuple(query.split("=", 1)) if query else None
    path = re.sub(r"\{(\w+)\+\}", r"{\1:.*}", path)
    table: dict[tuple[str, str], tuple[list[_Candidate], Handler]]
    table = web_app.setdefault(_ROUTES_KEY, {})
    key = (method, path.rstrip("/"))
    if key not in table:
        candidates: list[_Candidate] = []
        table[key] = (candidates, _dispatcher(candidates))
        web_app.router.add_route(method, key[1], table[key][1])
        web_app.router.add_route(method, key[1] + "/", table[key][1])
    candidates, dispatch = table[key]
    # Operations with a discriminator are tried first.
    candidates.insert(0 if discriminator else len(candidates), (discriminator, op, handler))
    # The front door reads a route's body limit before its handler runs (api/server.py):
    # the route's is the largest any of its operations allows.
    limit = getattr(handler, "__firebox_body_limit__", None)
    current = getattr(dispatch, "__firebox_body_limit__", None)
    if limit is not None and (current is None or limit[0] > current[0]):
        dispatch.__firebox_body_limit__ = limit  # type: ignore[attr-defined]


def _dispatcher(candidates: list[_Candidate]) -> Handler:
    async def dispatch(request: web.Request) -> web.StreamResponse:
        for discriminator, op, handler in candidates:
            if discriminator is None or request.query.get(discriminator[0]) == discriminator[1]:
                request[INPUT_KEY] = await collect(request, op)
                return await handler(request)
        raise web.HTTPNotFound()

    return dispatch


async def collect(request: web.Request, op: OperationModel) -> Params:
    """The operation's input from the path, query string, headers and JSON body, checked."""
    shape = op.input_shape
    if shape is None:
        return {}
    rules = RULES["lambda"]
    params: Params = {}
    payload = shape.serialization.get("payload")
    body_members = []
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        key = member.serialization.get("name", name)
        raw: Any
        if location == "uri":
            raw = request.match_info.get(key)
        elif location == "querystring":
            if member.type_name == "list":
                raw = request.query.getall(key, None)
            else:
                raw = request.query.get(key)
        elif location == "header":
            raw = request.headers.get(key)
        else:
            if name != payload:
                body_members.append(name)
            continue
        if raw is not None:
            params[name] = _typed(rules, raw, member, lower_first(name))
    if payload is not None:
        # The raw body is the member (Invoke's Payload): its handler reads the same bytes.
        params[payload] = await request.read()
    elif body_members and request.method in ("POST", "PUT", "PATCH"):
        body = await read_json(request)
        params.update((name, body[name]) for name in body_members if name in body)
    validate(rules, shape, params)
    return params


def _typed(rules: Rules, raw: Any, shape: Shape, path: str) -> Any:
    """A path, query or header value as the member's type."""
    kind = shape.type_name
    if kind in ("integer", "long") and isinstance(raw, str):
        if re.fullmatch(r"-?\d{1,18}", raw):
            return int(raw)
        wanted = "an integer"
    elif kind == "boolean" and isinstance(raw, str):
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        wanted = "a boolean"
    else:
        return raw
    # Not a constraint of the model: AWS's wording for it is not on record.
    violation = Violation(path, raw, shape, f"Member must be {wanted}")
    raise rules.invalid(render([violation]))


# --- JSON 1.1 (CloudWatch Logs, EventBridge) -------------------------------------------------


def json11_operation(service: str, name: str, handler: TargetHandler) -> TargetHandler:
    """``handler`` behind a check of its parameters against the operation's input shape."""
    shape = service_model(service).operation_model(name).input_shape
    rules = RULES[service]

    @functools.wraps(handler)  # keeps what the front door reads off it (a body limit)
    async def checked(params: Params) -> Params:
        if shape is not None:
            validate(rules, shape, params)
        return await handler(params)

    return checked


def implemented(web_app: web.Application) -> set[str]:
    """The Lambda operations routed on ``web_app`` (botocore's names)."""
    table = web_app.get(_ROUTES_KEY, {})
    return {op.name for candidates, _ in table.values() for _, op, _ in candidates}
