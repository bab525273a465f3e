"""Payload format 2.0 for function URLs: request → event, result → response."""

from __future__ import annotations

import base64
import json

from multidict import CIMultiDict

from firebox.triggers.url_events import build_event, is_text, map_result


def _event(
    headers: list[tuple[str, str]], body: bytes = b"", query: str = "", path: str = "/p"
) -> dict:
    return build_event(
        method="POST",
        raw_path=path,
        raw_query=query,
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
    # Function URLs keep the cookie header too (API Gateway's HTTP APIs drop it).
    assert ev["headers"]["cookie"] == "a=1; b=2; c=3"
    assert ev["queryStringParameters"] == {"k": "1,2", "z": ""}
    assert ev["requestContext"]["http"]["userAgent"] == "ua"
    assert ev["requestContext"]["timeEpoch"] == 1700000000500
    assert ev["requestContext"]["time"] == "14/Nov/2023:22:13:20 +0000"
    assert ev["headers"]["x-forwarded-for"] == "10.0.0.1"
    assert ev["headers"]["x-forwarded-port"] == "9001"


def test_raw_path_and_query_reach_the_function_exactly_as_sent() -> None:
    query = (
        "b=x%20y&repeat=one&repeat=two&redirect=https%3A%2F%2Fexample.com%2Fa%2Fb"
        "&literalPlus=a+b&encodedPlus=a%2Bb&empty=&flag&caf%C3%A9=%E2%82%AC"
    )
    ev = _event([], query=query, path="/capture/space%20value/a%2Fb")
    assert ev["rawQueryString"] == query
    assert ev["rawPath"] == "/capture/space%20value/a%2Fb"
    assert ev["requestContext"]["http"]["path"] == "/capture/space value/a/b"
    # Decoded as a form is: '+' is a space, '%2B' a plus; repeated names comma-joined.
    assert ev["queryStringParameters"] == {
        "b": "x y",
        "repeat": "one,two",
        "redirect": "https://example.com/a/b",
        "literalPlus": "a b",
        "encodedPlus": "a+b",
        "empty": "",
        "flag": "",
        "café": "€",
    }


def test_cookies_are_listed_undecoded() -> None:
    ev = _event([("Cookie", "token=a%20b; theme=dark+blue;;  x=")])
    assert ev["cookies"] == ["token=a%20b", "theme=dark+blue", "x="]
    assert ev["headers"]["cookie"] == "token=a%20b; theme=dark+blue;;  x="


def test_no_query_no_parameters() -> None:
    ev = _event([])
    assert ev["rawQueryString"] == ""
    assert "queryStringParameters" not in ev
    assert ev["rawPath"] == "/p" and ev["requestContext"]["http"]["path"] == "/p"


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
