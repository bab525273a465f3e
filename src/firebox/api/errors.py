"""FireboxError → the error response botocore parses, per wire protocol. The only place
errors become responses."""

from __future__ import annotations

import functools
import json
import logging

import botocore.session
from aiohttp import web

from firebox.errors import FireboxError

log = logging.getLogger(__name__)

REST_JSON = "rest-json"  # Lambda API
JSON_11 = "json-1.1"  # CloudWatch Logs, EventBridge


@functools.cache
def _lambda_message_keys() -> dict[str, str]:
    """Lambda's error shapes spell their message member "Message" or "message"; the body
    uses the model's spelling (ResourceNotFoundException: "Message")."""
    model = botocore.session.get_session().get_service_model("lambda")
    return {
        shape.name: ("Message" if "Message" in shape.members else "message")
        for shape in model.error_shapes
    }


@functools.cache
def _lambda_header_members() -> dict[str, frozenset[str]]:
    """Members of Lambda's error shapes that the model binds to a header (TooManyRequests'
    retryAfterSeconds is Retry-After): they go in ``exc.headers()``, never in the body."""
    model = botocore.session.get_session().get_service_model("lambda")
    return {
        shape.name: frozenset(
            name
            for name, member in shape.members.items()
            if member.serialization.get("location") == "header"
        )
        for shape in model.error_shapes
    }


def error_response(exc: FireboxError, protocol: str, request_id: str) -> web.Response:
    headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": exc.code, **exc.headers()}
    body: dict[str, object]
    if protocol == JSON_11:
        body = {"__type": exc.code, "message": exc.message, **exc.fields}
        content_type = "application/x-amz-json-1.1"
    else:
        body = {} if exc.kind is None else {"Type": exc.kind}
        body[_lambda_message_keys().get(exc.code, "message")] = exc.message
        in_headers = _lambda_header_members().get(exc.code, frozenset())
        body.update((k, v) for k, v in exc.fields.items() if k not in in_headers)
        content_type = "application/json"
    return web.Response(
        status=exc.status,
        body=json.dumps(body).encode(),
        content_type=content_type,
        headers=headers,
    )
