"""InvokeWithResponseStream:
POST /2021-11-15/functions/{FunctionName}/response-streaming-invocations.

The reply is an event stream: a PayloadChunk event per piece of the function's response as
it arrives, then one InvokeComplete (ErrorCode/ErrorDetails when the function failed,
LogResult with LogType=Tail). A function that does not stream answers with its whole
response as a single PayloadChunk.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from firebox.api.eventstream import event
from firebox.api.operations import add_operation
from firebox.api.params import function_ref, inputs, invoke_headers
from firebox.api.server import INVOKE_BODY_BYTES, INVOKE_TOO_LARGE, body_limit
from firebox.invoke.sync import Invoker, InvokeResult
from firebox.workers.stream import ResponseStream

INVOKER_KEY = web.AppKey("streaming_invoker", Invoker)


def _chunk(data: bytes) -> bytes:
    return event("PayloadChunk", data, "application/octet-stream")


def _complete(result: InvokeResult) -> bytes:
    body: dict[str, str] = {}
    if result.function_error:
        try:
            parsed = json.loads(result.payload)
        except ValueError:
            parsed = None
        error_type = parsed.get("errorType") if isinstance(parsed, dict) else None
        body["ErrorCode"] = str(error_type or result.function_error)
        body["ErrorDetails"] = result.payload.decode(errors="replace")
    if result.log_result is not None:
        body["LogResult"] = result.log_result
    return event("InvokeComplete", json.dumps(body).encode(), "application/json")


@body_limit(INVOKE_BODY_BYTES, INVOKE_TOO_LARGE)
async def invoke_with_response_stream(request: web.Request) -> web.StreamResponse:
    invoker = request.app[INVOKER_KEY]
    ref = function_ref(request)
    invocation_type = inputs(request).get("InvocationType") or "RequestResponse"
    payload = await request.read()
    if invocation_type == "DryRun":
        await invoker.resolver.resolve(ref.name, ref.qualifier)
        return web.Response(status=204)
    log_tail, client_context = invoke_headers(request)
    stream = ResponseStream()
    task = asyncio.ensure_future(
        invoker.invoke(
            ref,
            payload,
            log_tail=log_tail,
            client_context=client_context,
            stream=stream,
        )
    )
    if not await stream.wait_started(task):
        result = await task  # errors before any response (404, 429 …) are raised here
        resp = _response(request, result.executed_version, "application/json")
        await resp.prepare(request)
        if not result.function_error and result.payload:
            await resp.write(_chunk(result.payload))
        await resp.write(_complete(result))
        await resp.write_eof()
        return resp
    resp = _response(request, stream.version, stream.content_type)
    try:
        await resp.prepare(request)
        async for chunk in stream:
            await resp.write(_chunk(chunk))
        result = await task
        await resp.write(_complete(result))
        await resp.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        # The caller went away: the stream is cancelled (what the function sends next is
        # dropped, not held) and the invocation runs to its end, unobserved.
        stream.cancel()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        raise
    return resp


def _response(request: web.Request, version: str, content_type: str) -> web.StreamResponse:
    resp = web.StreamResponse(status=200)
    resp.headers["X-Amz-Executed-Version"] = version
    resp.headers["Content-Type"] = content_type
    resp.headers["x-amzn-RequestId"] = request.get("request_id", "")
    return resp


def register(web_app: web.Application, invoker: Invoker) -> None:
    web_app[INVOKER_KEY] = invoker
    add_operation(web_app, "InvokeWithResponseStream", invoke_with_response_stream)
