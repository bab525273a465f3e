"""Payload format 2.0 for function URLs: request → event, result → response."""

from __future__ import annotations

import base64
import json

from multidict import CIMultiDict, MultiDict

from firebox.triggers.url_events import build_event, is_text, map_result


def _event(headers: list[tuple[str, str]], body: bytes = b"", query: str = "") -> dict:
    q: MultiDict[str] = MultiDict()
    for part in filter(None, query.split("&")):
        k, _, v = part.partition("=")
        q.add(k, v)
    return build_event(
        method="POST",
        raw_path="/p",
        raw_query=query,
        query=q,
        headers=CIMultiDict(headers),
        body=body,
        source_ip="10.0.0.1",
        account_id="anonymous",
        url_id="a" * 32,
        domain_name="h:9001",
        request_id="rid",
        now=1700000000.5,
    )


def test_headers_cookies_query() -> None:
    ev = _event(
        [
            ("X-A", "1"),
            ("x-a", "2"),
            ("Cookie", "a=1; b=2"),
            ("Cookie", "c=3"),
            ("User-Agent", "ua"),
        ],
        query="k=1&k=2&z=",
    )
    assert ev["headers"]["x-a"] == "1,2"
    assert ev["cookies"] == ["a=1", "b=2", "c=3"]
    assert ev["queryStringParameters"] == {"k": "1,2", "z": ""}
    assert ev["requestContext"]["http"]["userAgent"] == "ua"
    assert ev["requestContext"]["timeEpoch"] == 1700000000500
    assert ev["requestContext"]["time"] == "14/Nov/2023:22:13:20 +0000"
    assert ev["headers"]["x-forwarded-for"] == "10.0.0.1"
    assert ev["headers"]["x-forwarded-port"] == "9001"


def test_bodies() -> None:
    assert _event([("Content-Type", "text/plain")], b"hi")["body"] == "hi"
    ev = _event([("Content-Type", "image/png")], b"\x89PNG")
    assert ev["isBase64Encoded"] and base64.b64decode(ev["body"]) == b"\x89PNG"
    # Declared text that is not UTF-8 still arrives intact.
    ev = _event([("Content-Type", "text/plain")], b"\xff\xfe")
    assert ev["isBase64Encoded"] and base64.b64decode(ev["body"]) == b"\xff\xfe"
    assert "body" not in _event([])
    assert is_text("application/vnd.api+json; charset=utf-8") and not is_text("")


def test_results() -> None:
    r = map_result(b'{"statusCode": "404", "headers": {"X-B": true}, "body": {"a": 1}}')
    assert r.status == 404 and r.headers["X-B"] == "true"
    assert json.loads(r.body) == {"a": 1}
    assert r.headers["Content-Type"] == "application/json"
    r = map_result(b'{"statusCode": 200, "body": "AAE=", "isBase64Encoded": true}')
    assert r.body == b"\x00\x01"
    r = map_result(b'"just text"')
    assert (r.status, r.body) == (200, b"just text")
    r = map_result(b"[1, 2]")
    assert (r.status, r.body) == (200, b"[1, 2]")
    r = map_result(b"")
    assert r.status == 200 and r.body == b""
    r = map_result(b'{"statusCode": 204}')
    assert r.status == 204 and r.body == b""
