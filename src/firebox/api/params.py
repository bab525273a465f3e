"""A Lambda REST request's common parameters (the function and its qualifier, the invoke
headers), read from the input the operation's model has already checked
(``request[INPUT_KEY]``, operations.py), and control-plane calls made off the event loop."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from firebox.api.operations import INPUT_KEY
from firebox.api.server import FRONT_KEY
from firebox.arn import FunctionRef, parse_function_ref
from firebox.messages import CLIENT_CONTEXT_INVALID, CLIENT_CONTEXT_TOO_LARGE, UNQUALIFIED_ONLY


def inputs(request: web.Request) -> dict[str, Any]:
    """The operation's input, checked against its shape (member name → value)."""
    checked: dict[str, Any] = request[INPUT_KEY]
    return checked


def function_ref(request: web.Request, allow_qualifier: bool = True) -> FunctionRef:
    """FunctionName (a name, partial or full ARN, maybe qualified) with Qualifier."""
    params = inputs(request)
    region = request.app[FRONT_KEY].region
    ref = parse_function_ref(params["FunctionName"], params.get("Qualifier"), region)
    if not allow_qualifier and ref.qualifier is not None:
        raise UNQUALIFIED_ONLY()
    return ref


def invoke_headers(request: web.Request) -> tuple[bool, str | None]:
    """An invoke's LogType (is it Tail?) and decoded ClientContext, which is base64 of a
    JSON object of at most 3583 bytes."""
    params = inputs(request)
    raw = params.get("ClientContext")
    tail = params.get("LogType") == "Tail"
    if not raw:
        return tail, None
    try:
        decoded = base64.b64decode(raw, validate=True)
        text = decoded.decode()
        json.loads(text)
    except (binascii.Error, ValueError) as exc:
        raise CLIENT_CONTEXT_INVALID() from exc
    if len(decoded) > 3583:
        raise CLIENT_CONTEXT_TOO_LARGE()
    return tail, text


async def control_call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a control-plane call (SQLite, files) off the loop. Its input was checked at the
    edge: an exception other than a FireboxError is a bug and becomes a logged 500."""
    return await asyncio.to_thread(fn, *args)
