"""FireboxError → the error response botocore parses, per wire protocol. The only place
errors become responses."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from firebox.errors import FireboxError

log = logging.getLogger(__name__)

REST_JSON = "rest-json"  # Lambda API
JSON_11 = "json-1.1"  # CloudWatch Logs, EventBridge


def error_response(exc: FireboxError, protocol: str, request_id: str) -> web.Response:
    headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": exc.code, **exc.headers()}
    if protocol == JSON_11:
        body = {"__type": exc.code, "message": exc.message, **exc.fields}
        content_type = "application/x-amz-json-1.1"
    else:
        body = {"Type": exc.kind, "message": exc.message, **exc.fields}
        content_type = "application/json"
    return web.Response(
        status=exc.status,
        body=json.dumps(body).encode(),
        content_type=content_type,
        headers=headers,
    )
