"""Lambda's payload format 2.0 for function URLs: HTTP request → event, result → response.

As Lambda's function URLs do it (checked against events captured from AWS):
- ``rawPath`` and ``rawQueryString`` are exactly as the client sent them, percent-encoding
  and all; ``requestContext.http.path`` is the path percent-decoded;
- ``queryStringParameters`` are decoded as a form is (``+`` is a space, ``%2B`` a plus),
  repeated names comma-joined;
- header names are lowercased and repeated values comma-joined; the ``cookie`` header
  stays among them and its cookies are also listed, undecoded, in ``cookies`` (API
  Gateway's HTTP APIs drop the header; function URLs keep it);
- a body that is not text is passed base64-encoded with ``isBase64Encoded``.
A result with a ``statusCode`` is a response description; anything else is a 200 JSON
body.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from multidict import CIMultiDict, MultiMapping

_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/yaml",
    "application/x-yaml",
)


def is_text(content_type: str) -> bool:
    ct = content_type.split(";", 1)[0].strip().lower()
    return ct.startswith(_TEXT_TYPES) or ct.endswith(("+json", "+xml"))


def query_parameters(raw_query: str) -> dict[str, str]:
    """``queryStringParameters`` from the query string as sent: form-decoded, repeated
    names comma-joined, a name without ``=`` an empty value."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True, errors="replace"):
        params[name] = f"{params[name]},{value}" if name in params else value
    return params


def build_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: MultiMapping[str],
    body: bytes,
    source_ip: str,
    account_id: str,
    url_id: str,
    domain_name: str,
    request_id: str,
    protocol: str = "HTTP/1.1",
    now: float | None = None,
) -> dict[str, Any]:
    """The event for one request; ``raw_path`` and ``raw_query`` as the client sent them
    (percent-encoded, without the ``?``)."""
    now = time.time() if now is None else now
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers.items():
        lname = name.lower()
        if lname == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            # Several cookie headers make one, as HTTP/2 joins them (RFC 9113, 8.2.3).
            joined[lname] = f"{joined[lname]}; {value}" if lname in joined else value
            continue
        joined[lname] = f"{joined[lname]},{value}" if lname in joined else value
    # What Lambda's front end adds (there it is a load balancer; here the caller itself).
    if source_ip:
        prior = joined.get("x-forwarded-for")
        joined["x-forwarded-for"] = f"{prior}, {source_ip}" if prior else source_ip
    joined.setdefault("x-forwarded-proto", "http")
    if ":" in domain_name:
        joined.setdefault("x-forwarded-port", domain_name.rsplit(":", 1)[1])
    params = query_parameters(raw_query)
    raw_path = raw_path or "/"
    stamp = datetime.fromtimestamp(now, UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": joined,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": url_id,
            "domainName": domain_name,
            "domainPrefix": url_id,
            "http": {
                "method": method,
                "path": unquote(raw_path, errors="replace"),
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": headers.get("User-Agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": stamp.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if account_id:
        event["requestContext"]["accountId"] = account_id
    if cookies:
        event["cookies"] = cookies
    if params:
        event["queryStringParameters"] = params
    if body:
        text = is_text(headers.get("Content-Type", ""))
        if text:
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                text = False
        if not text:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


@dataclass(slots=True)
class UrlResponse:
    status: int = 200
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    body: bytes = b""


def map_result(payload: bytes) -> UrlResponse:
    """The function's result as the HTTP response Lambda would send."""
    try:
        result = json.loads(payload) if payload.strip() else None
    except (ValueError, UnicodeDecodeError):
        # Not JSON at all: Lambda passes the bytes through as the body.
        return UrlResponse(200, CIMultiDict({"Content-Type": "application/json"}), payload)
    if not isinstance(result, dict) or "statusCode" not in result:
        body = result.encode() if isinstance(result, str) else payload
        return UrlResponse(200, CIMultiDict({"Content-Type": "application/json"}), body)
    out = UrlResponse()
    try:
        out.status = int(result["statusCode"])
    except (TypeError, ValueError):
        out.status = 500
    for name, value in (result.get("headers") or {}).items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.headers[str(name)] = str(value)
    out.headers.setdefault("Content-Type", "application/json")
    for cookie in result.get("cookies") or []:
        out.headers.add("Set-Cookie", str(cookie))
    raw = result.get("body")
    if raw is None:
        out.body = b""
    elif result.get("isBase64Encoded"):
        try:
            out.body = base64.b64decode(str(raw))
        except ValueError:
            out.status, out.body = 502, b'{"Message":"Internal Server Error"}'
    elif isinstance(raw, str):
        out.body = raw.encode()
    else:
        out.body = json.dumps(raw).encode()
    return out
