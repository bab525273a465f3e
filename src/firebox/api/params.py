"""A Lambda REST request's common parameters (the function and qualifier in the path,
MaxItems), and control-plane calls made off the event loop."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from firebox.arn import FunctionRef, parse_function_ref
from firebox.errors import InvalidParameterValue, ValidationError


def function_ref(request: web.Request, allow_qualifier: bool = True) -> FunctionRef:
    """{FunctionName} of the path with ?Qualifier=; ValidationError if malformed."""
    ref = parse_function_ref(request.match_info["FunctionName"], request.query.get("Qualifier"))
    if not allow_qualifier and ref.qualifier is not None:
        raise InvalidParameterValue(
            "Qualifier is not supported for this operation: use the unqualified function name"
        )
    return ref


def max_items(request: web.Request, high: int = 10000) -> int | None:
    """?MaxItems=, between 1 and ``high`` (the operation's limit in botocore's model)."""
    raw = request.query.get("MaxItems")
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= high:
        raise ValidationError(
            f"1 validation error detected: Value '{raw}' at 'maxItems' failed to satisfy "
            f"constraint: Member must have value between 1 and {high}"
        )
    return int(raw)


def invoke_headers(request: web.Request) -> tuple[bool, str | None]:
    """An invoke's X-Amz-Log-Type (is it Tail?) and decoded X-Amz-Client-Context, which
    is base64 of a JSON object of at most 3583 bytes."""
    log_type = request.headers.get("X-Amz-Log-Type", "None")
    if log_type not in ("None", "Tail"):
        raise InvalidParameterValue(f"Invalid LogType: {log_type}")
    raw = request.headers.get("X-Amz-Client-Context")
    if not raw:
        return log_type == "Tail", None
    try:
        decoded = base64.b64decode(raw, validate=True)
        json.loads(decoded)
    except (binascii.Error, ValueError) as exc:
        raise InvalidParameterValue(
            "Client context must be a valid Base64-encoded JSON object."
        ) from exc
    if len(decoded) > 3583:
        raise InvalidParameterValue("Client context must be at most 3583 bytes.")
    return log_type == "Tail", decoded.decode()


async def control_call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a control-plane call (SQLite, files) off the loop. A field of the wrong type,
    which botocore refuses client-side but a hand-made request may carry, is a 400."""
    try:
        return await asyncio.to_thread(fn, *args)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise InvalidParameterValue(f"Invalid request: {exc}") from None
