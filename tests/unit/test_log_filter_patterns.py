"""CloudWatch Logs filter patterns: terms, phrases, ?OR, -exclusion, regex, JSON, delimited."""

from __future__ import annotations

import pytest

from firebox.errors import LogsInvalidParameter
from firebox.observe.patterns import compile_pattern

ACCESS = '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 404 1534'
JSON = '{"level": "error", "ms": 250, "ok": false, "user": {"id": "u1"}, "tags": ["a", "b"]}'


@pytest.mark.parametrize(
    ("pattern", "message", "expected"),
    [
        ("", "anything", True),
        ("ERROR", "ERROR: disk full", True),
        ("ERROR", "error: disk full", False),  # case sensitive, as CloudWatch is
        ("ERROR disk", "ERROR: disk full", True),
        ("ERROR memory", "ERROR: disk full", False),
        ('"disk full"', "ERROR: disk full", True),
        ('"full disk"', "ERROR: disk full", False),
        ("?ERROR ?WARN", "WARN slow", True),
        ("?ERROR ?WARN", "INFO fine", False),
        ("ERROR -disk", "ERROR: disk full", False),
        ("ERROR -memory", "ERROR: disk full", True),
        ("%ERR[A-Z]+%", "ERROR x", True),
        ("%^INFO%", "ERROR x", False),
        ('{ $.level = "error" }', JSON, True),
        ("{ $.level = err* }", JSON, True),
        ('{ $.level != "error" }', JSON, False),
        ("{ $.ms > 100 }", JSON, True),
        ("{ $.ms <= 100 }", JSON, False),
        ("{ $.ms = 250 }", JSON, True),
        ("{ $.ok IS FALSE }", JSON, True),
        ("{ $.user.id = u1 && $.ms >= 250 }", JSON, True),
        ("{ ($.ms < 10 || $.level = error) && $.nope NOT EXISTS }", JSON, True),
        ("{ $.tags[1] = b }", JSON, True),
        ("{ $.level = error }", "not json at all", False),
        ("{ $.level = error }", '2024-01-01T00:00:00Z\treq\tINFO\t{"level": "error"}', True),
        ("[ip, user, username, timestamp, request, status_code, bytes]", ACCESS, True),
        ("[ip, user, username, timestamp, request, status_code = 4*, bytes > 1000]", ACCESS, True),
        ("[ip, ..., status_code = 404, bytes]", ACCESS, True),
        ("[..., bytes < 1000]", ACCESS, False),
        ("[ip, user]", ACCESS, False),
        ("[ip = 127.*, ...]", ACCESS, True),
        ("[..., code = 2* || code = 4*, bytes]", ACCESS, True),
    ],
)
def test_pattern_matches_as_cloudwatch_does(pattern, message, expected):
    assert compile_pattern(pattern)(message) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        "{ $.ms > }",
        "{ $.ms > abc }",
        "{ level = 1 }",
        "{ $.a = 1",
        "%(%",
        '"unclosed',
        "[a, b",
        "[a b c = ]",
        "{ $.a IS MAYBE }",
    ],
)
def test_bad_patterns_are_invalid_parameter(pattern):
    with pytest.raises(LogsInvalidParameter):
        compile_pattern(pattern)
