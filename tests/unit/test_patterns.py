"""EventBridge event pattern matching, with the examples of AWS's documentation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from firebox.errors import InvalidEventPattern
from firebox.triggers.patterns import matches, parse_pattern

EVENT: dict[str, Any] = {
    "version": "0",
    "id": "1",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2026-11-25T00:00:00Z",
    "region": "us-west-2",
    "resources": ["arn:aws:ec2:us-west-2:123456789012:instance/i-1"],
    "detail": {
        "instance-id": "i-1",
        "state": "running",
        "c-count": 5,
        "d-count": 3,
        "x-limit": 301.8,
        "source-ip": "10.0.0.7",
        "tags": ["a", "b"],
        "nested": {"deep": "value"},
        "flag": False,
        "nothing": None,
    },
}


def m(pattern: dict[str, Any]) -> bool:
    return matches(parse_pattern(json.dumps(pattern)), EVENT)


def test_exact_and_nested() -> None:
    assert m({"source": ["aws.ec2"]})
    assert m({"source": ["aws.s3", "aws.ec2"], "detail": {"state": ["running"]}})
    assert not m({"source": ["aws.s3"]})
    assert not m({"detail": {"state": ["stopped"]}})
    assert m({"detail": {"nested": {"deep": ["value"]}}})
    assert not m({"detail": {"nested": {"deep": ["other"]}}})
    assert m({"detail": {"tags": ["b"]}})  # any element of an array
    assert m({"detail": {"c-count": [5]}}) and m({"detail": {"c-count": [5.0]}})
    assert not m({"detail": {"c-count": ["5"]}})
    assert m({"detail": {"flag": [False]}}) and m({"detail": {"nothing": [None]}})


def test_prefix_suffix_ignore_case_wildcard() -> None:
    assert m({"source": [{"prefix": "aws."}]})
    assert not m({"source": [{"prefix": "custom."}]})
    assert m({"detail": {"instance-id": [{"suffix": "-1"}]}})
    assert m({"detail-type": [{"equals-ignore-case": "ec2 instance state-change notification"}]})
    assert m({"source": [{"prefix": {"equals-ignore-case": "AWS."}}]})
    assert m({"resources": [{"wildcard": "arn:aws:ec2:*:instance/*"}]})


def test_anything_but() -> None:
    assert m({"detail": {"state": [{"anything-but": "stopped"}]}})
    assert not m({"detail": {"state": [{"anything-but": ["running", "stopped"]}]}})
    assert m({"detail": {"state": [{"anything-but": {"prefix": "stop"}}]}})
    assert not m({"detail": {"state": [{"anything-but": {"prefix": "run"}}]}})
    assert m({"detail": {"c-count": [{"anything-but": [1, 2]}]}})
    assert not m({"detail": {"missing": [{"anything-but": "x"}]}})


def test_numeric_exists_cidr() -> None:
    assert m({"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}})
    assert not m({"detail": {"d-count": [{"numeric": ["<", 3]}]}})
    assert m({"detail": {"x-limit": [{"numeric": ["=", 301.8]}]}})
    assert not m({"detail": {"state": [{"numeric": [">", 0]}]}})
    assert m({"detail": {"state": [{"exists": True}]}})
    assert not m({"detail": {"missing": [{"exists": True}]}})
    assert m({"detail": {"missing": [{"exists": False}]}})
    assert not m({"detail": {"state": [{"exists": False}]}})
    assert m({"absent": {"inner": [{"exists": False}]}})
    assert m({"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}})
    assert not m({"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}})


def test_or() -> None:
    assert m({"$or": [{"source": ["nope"]}, {"detail": {"c-count": [5]}}]})
    assert not m({"$or": [{"source": ["nope"]}, {"detail": {"c-count": [6]}}]})


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        "{}",
        '{"source": "aws.ec2"}',
        '{"a": [{"numeric": [">"]}]}',
        '{"a": [{"bogus": 1}]}',
        '{"a": [{"exists": "yes"}]}',
        '{"$or": [{"a": [1]}]}',
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidEventPattern):
        parse_pattern(text)
