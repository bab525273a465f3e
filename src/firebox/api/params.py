"""A Lambda REST request's common parameters (the function and qualifier in the path,
MaxItems), and control-plane calls made off the event loop."""

from __future__ import annotations

import asyncio
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


async def control_call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a control-plane call (SQLite, files) off the loop. A field of the wrong type,
    which botocore refuses client-side but a hand-made request may carry, is a 400."""
    try:
        return await asyncio.to_thread(fn, *args)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise InvalidParameterValue(f"Invalid request: {exc}") from None
