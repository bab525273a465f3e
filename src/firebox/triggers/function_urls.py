"""The function URL server: its own aiohttp site on settings.url_port.

Two ways to name a URL:
  host-based   http://<url-id>.lambda-url.<region>.localhost:<port>/<path>   (as Lambda)
  path-based   http://127.0.0.1:<port>/<url-id>/<path>   for clients that cannot set Host

Every request becomes a payload format 2.0 event and goes through ``app.invoker.invoke``,
so concurrency limits, throttles, logs, metrics and metering apply as for a direct Invoke.
Authorisation as Lambda does it: AWS_IAM URLs need a SigV4 signature (service ``lambda``)
by a known key; NONE URLs need a resource policy statement allowing
lambda:InvokeFunctionUrl to ``*`` with FunctionUrlAuthType NONE.

With InvokeMode RESPONSE_STREAM a function that streams (Node's
``awslambda.streamifyResponse``, a custom runtime's streamed response) reaches the client
chunk by chunk; one that does not is answered as in BUFFERED mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict

from firebox.api.server import LINGERING_TIME_S
from firebox.api.sigv4 import check_headers, check_signature
from firebox.arn import FunctionRef
from firebox.errors import FireboxError, ResourceNotFound, TooManyRequests
from firebox.store.metadata.base import Doc
from firebox.triggers.url_events import build_event, map_result
from firebox.workers.stream import ResponseStream

if TYPE_CHECKING:
    from firebox.control.policies import Policies
    from firebox.control.urls import FunctionUrls
    from firebox.invoke.sync import Invoker
    from firebox.settings import Settings

log = logging.getLogger(__name__)

_HOST_RE = re.compile(r"^([a-z0-9]{32})\.lambda-url\.")
_PATH_RE = re.compile(r"^/([a-z0-9]{32})(/.*)?$")
PRELUDE_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
PRELUDE_END = b"\x00" * 8
# A function URL request, like a sync Invoke, carries at most 6 MB.
MAX_BODY_BYTES = 6 * 1024 * 1024
# A streamed response's prelude (status, headers, cookies as JSON before eight NUL bytes)
# is a response head: past this, without its end, the response is refused (502).
MAX_PRELUDE_BYTES = 64 * 1024


def _message(status: int, message: str | None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps({"Message": message}).encode(),
        content_type="application/json",
    )


def _closing(response: web.Response) -> web.Response:
    """An answer after which the connection closes: what is left of the body is not read."""
    response.force_close()
    return response


async def _forbidden(request: web.Request) -> web.Response:
    """403 before the body is read: a small one is read and dropped (closing on unread
    data would reset the connection under the client's answer); a large one is not read,
    and the connection closes after the answer."""
    response = _message(403, "Forbidden")
    length = request.content_length
    if not request.content.at_eof():
        if length is not None and length <= 64 * 1024:
            with contextlib.suppress(Exception):
                await request.content.read()
        else:
            _closing(response)
    return response


async def _sha256_hex(body: bytes) -> str:
    if len(body) > 256 * 1024:
        # A 6 MB body takes milliseconds to hash: not on the loop.
        return await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
    return hashlib.sha256(body).hexdigest()


def _origin_allowed(cors: Doc, origin: str) -> str | None:
    origins = cors.get("AllowOrigins") or []
    if "*" in origins:
        return "*" if not cors.get("AllowCredentials") else origin
    return origin if origin in origins else None


def _cors_headers(cors: Doc | None, origin: str | None) -> dict[str, str]:
    """Headers added to an ordinary response for a cross-origin caller."""
    if not cors or not origin:
        return {}
    allowed = _origin_allowed(cors, origin)
    if allowed is None:
        return {}
    out = {"Access-Control-Allow-Origin": allowed}
    if cors.get("ExposeHeaders"):
        out["Access-Control-Expose-Headers"] = ",".join(cors["ExposeHeaders"])
    if cors.get("AllowCredentials"):
        out["Access-Control-Allow-Credentials"] = "true"
    if allowed != "*":
        out["Vary"] = "Origin"
    return out


def _preflight(cors: Doc, request: web.Request) -> web.Response:
    origin = request.headers.get("Origin", "")
    allowed = _origin_allowed(cors, origin)
    method = request.headers.get("Access-Control-Request-Method", "").upper()
    methods = [m.upper() for m in cors.get("AllowMethods") or []]
    headers: dict[str, str] = {}
    if allowed is not None and method and ("*" in methods or method in methods):
        headers["Access-Control-Allow-Origin"] = allowed
        headers["Access-Control-Allow-Methods"] = ",".join(methods)
        if cors.get("AllowHeaders"):
            headers["Access-Control-Allow-Headers"] = ",".join(cors["AllowHeaders"])
        if cors.get("MaxAge") is not None:
            headers["Access-Control-Max-Age"] = str(cors["MaxAge"])
        if cors.get("AllowCredentials"):
            headers["Access-Control-Allow-Credentials"] = "true"
        if cors.get("ExposeHeaders"):
            headers["Access-Control-Expose-Headers"] = ",".join(cors["ExposeHeaders"])
        if allowed != "*":
            headers["Vary"] = "Origin"
    return web.Response(status=200, headers=headers)


def url_for(settings: Settings, url_id: str) -> str:
    """A function URL as Lambda forms it, on this server's URL port."""
    return f"http://{url_id}.lambda-url.{settings.region}.localhost:{settings.url_port}/"


class UrlServer:
    """Serves function URLs on their own port (the api role)."""

    def __init__(
        self,
        settings: Settings,
        invoker: Invoker,
        secret_for: Callable[[str], str | None],
        urls: FunctionUrls,
        policies: Policies,
    ) -> None:
        self.settings = settings
        self.invoker = invoker
        self.secret_for = secret_for
        self.urls = urls
        self.policies = policies
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        web_app = web.Application(client_max_size=MAX_BODY_BYTES)
        web_app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(
            web_app, access_log=None, handle_signals=False, lingering_time=LINGERING_TIME_S
        )
        await self._runner.setup()
        s = self.settings
        site = web.TCPSite(
            self._runner, s.host, s.url_port, reuse_address=True, reuse_port=s.processes > 1
        )
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _locate(self, request: web.Request) -> tuple[str, str, str] | None:
        """(url id, path the function sees, raw path as the client sent it)."""
        raw = request.raw_path.split("?", 1)[0]
        m = _HOST_RE.match(request.host.lower())
        if m:
            return m[1], raw, raw
        m = _PATH_RE.match(raw)
        if m:
            return m[1], m[2] or "/", raw
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._handle(request)
        except (web.HTTPException, ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("function URL request %s %s failed", request.method, request.path)
            return _message(500, "Internal Server Error")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        located = self._locate(request)
        if located is None:
            return _message(403, "Forbidden")
        url_id, path, _ = located
        hit = await self.urls.lookup(url_id)
        if hit is None:
            return _message(403, "Forbidden")
        name, qualifier, config = hit
        cors = config.get("Cors")
        origin = request.headers.get("Origin")
        if (
            request.method == "OPTIONS"
            and cors
            and "Access-Control-Request-Method" in request.headers
        ):
            return _preflight(cors, request)
        # Who is asking is settled from the headers before any of the body is read.
        signed = None
        if config["AuthType"] == "AWS_IAM":
            try:
                signed = check_headers(
                    request.headers, self.secret_for, self.settings.max_clock_skew_s
                )
            except FireboxError:
                return await _forbidden(request)
            if signed.caller.service != "lambda":
                return await _forbidden(request)
        elif not await self.policies.allows(
            name, qualifier, "lambda:InvokeFunctionUrl", url_auth_type="NONE", anonymous=True
        ):
            return await _forbidden(request)
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _closing(_message(413, "Request Entity Too Large"))
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _closing(_message(413, "Request Entity Too Large"))
        if signed is not None:
            try:
                check_signature(
                    signed,
                    request.method,
                    request.raw_path,
                    body,
                    await _sha256_hex(body),
                )
            except FireboxError:
                return _message(403, "Forbidden")
        request_id = str(uuid.uuid4())
        event = build_event(
            method=request.method,
            raw_path=path,
            # As sent: aiohttp's query_string is percent-decoded.
            raw_query=request.raw_path.partition("?")[2],
            headers=request.headers,
            body=body,
            source_ip=request.remote or "",
            account_id=self.settings.account_id if config["AuthType"] == "AWS_IAM" else "anonymous",
            url_id=url_id,
            domain_name=request.host,
            request_id=request_id,
            protocol=f"HTTP/{request.version.major}.{request.version.minor}",
        )
        extra = CIMultiDict(_cors_headers(cors, origin))
        extra["x-amzn-RequestId"] = request_id
        ref = FunctionRef(name, qualifier)
        payload = json.dumps(event).encode()
        stream = ResponseStream() if config.get("InvokeMode") == "RESPONSE_STREAM" else None
        task = asyncio.ensure_future(
            self.invoker.invoke(
                ref, payload, request_id=request_id, payload_checked=True, stream=stream
            )
        )
        if stream is not None and await stream.wait_started(task):
            return await self._stream(request, stream, task, extra)
        try:
            result = await task
        except FireboxError as exc:
            return self._finish(self._invoke_error(name, exc), extra)
        if result.function_error:
            return self._finish(_message(502, "Internal Server Error"), extra)
        mapped = map_result(result.payload)
        response = web.Response(status=mapped.status, body=mapped.body, headers=mapped.headers)
        return self._finish(response, extra)

    def _invoke_error(self, name: str, exc: FireboxError) -> web.Response:
        if isinstance(exc, TooManyRequests):
            return _message(429, "Rate Exceeded.")
        if isinstance(exc, ResourceNotFound):
            return _message(404, None)
        log.info("function URL invoke of %s failed: %s", name, exc.message)
        return _message(502, "Internal Server Error")

    async def _stream(
        self,
        request: web.Request,
        stream: ResponseStream,
        task: asyncio.Future[Any],
        extra: CIMultiDict[str],
    ) -> web.StreamResponse:
        """RESPONSE_STREAM: pass the function's chunks on as they come. A response made
        with awslambda.HttpResponseStream.from starts with a JSON prelude (statusCode,
        headers, cookies) and eight NUL bytes."""
        try:
            return await self._relay(request, stream, task, extra)
        except (ConnectionError, asyncio.CancelledError):
            # The client went away: the stream is cancelled (what the function sends next
            # is dropped, not held) and the invocation runs to its end, unobserved.
            stream.cancel()
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            raise

    async def _relay(
        self,
        request: web.Request,
        stream: ResponseStream,
        task: asyncio.Future[Any],
        extra: CIMultiDict[str],
    ) -> web.StreamResponse:
        chunks = stream.__aiter__()
        status = 200
        headers: CIMultiDict[str] = CIMultiDict({"Content-Type": stream.content_type})
        first = b""
        if stream.content_type == PRELUDE_CONTENT_TYPE:
            buf = bytearray()
            async for chunk in chunks:
                seen = len(buf)
                buf += chunk
                # Only the new bytes (and the seven before them) can complete the end.
                if buf.find(PRELUDE_END, max(0, seen - len(PRELUDE_END) + 1)) >= 0:
                    break
                if len(buf) > MAX_PRELUDE_BYTES:
                    # No end of the prelude in sight: the response cannot be formed.
                    stream.cancel()
                    task.add_done_callback(lambda t: t.cancelled() or t.exception())
                    log.info(
                        "function URL %s: streamed prelude over %d bytes",
                        request.path,
                        MAX_PRELUDE_BYTES,
                    )
                    return self._finish(_message(502, "Internal Server Error"), extra)
            prelude_raw, _, rest = bytes(buf).partition(PRELUDE_END)
            first = rest
            try:
                prelude = json.loads(prelude_raw) if prelude_raw.strip() else {}
            except ValueError:
                prelude = {}
            if not isinstance(prelude, dict):
                prelude = {}
            with contextlib.suppress(TypeError, ValueError):
                status = int(prelude.get("statusCode", 200))
            headers = CIMultiDict({"Content-Type": "application/octet-stream"})
            for key, value in (prelude.get("headers") or {}).items():
                headers[str(key)] = str(value)
            for cookie in prelude.get("cookies") or []:
                headers.add("Set-Cookie", str(cookie))
        response = web.StreamResponse(status=status, headers=headers)
        for key, value in extra.items():
            response.headers[key] = value
        response.enable_chunked_encoding()
        await response.prepare(request)
        if first:
            await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
        with contextlib.suppress(FireboxError):
            await task  # an error after streaming began just ends the body, as in Lambda
        await response.write_eof()
        return response

    def _finish(self, response: web.Response, extra: CIMultiDict[str]) -> web.Response:
        for key, value in extra.items():
            response.headers[key] = value
        return response
