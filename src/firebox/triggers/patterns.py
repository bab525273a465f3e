"""EventBridge event patterns: validation and matching.

A pattern is a JSON object whose leaves are arrays of allowed values; a field matches if
the event's value (or any element, when the event's value is an array) matches any of
them. Besides literals an array may hold matchers: ``{"prefix": s}``, ``{"suffix": s}``,
``{"equals-ignore-case": s}``, ``{"wildcard": s}``, ``{"anything-but": v | [v…] |
{"prefix"|"suffix"|"equals-ignore-case": s}}``, ``{"numeric": [op, n, (op, n)]}``,
``{"exists": bool}`` and ``{"cidr": "10.0.0.0/24"}``; ``"$or": [pattern…]`` at any level.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
from typing import Any

from firebox.errors import FireboxError
from firebox.messages import EVENT_PATTERN_INVALID

_NUMERIC_OPS = {"<", "<=", "=", ">", ">="}
_MISSING = object()


def _invalid(reason: str) -> FireboxError:
    return EVENT_PATTERN_INVALID(reason=reason)


def parse_pattern(text: str) -> dict[str, Any]:
    try:
        pattern = json.loads(text)
    except (ValueError, TypeError):
        raise _invalid("Filter is not valid JSON") from None
    if not isinstance(pattern, dict) or not pattern:
        raise _invalid("Filter is not an object")
    _validate(pattern)
    return pattern


def _validate(pattern: dict[str, Any]) -> None:
    for key, value in pattern.items():
        if key == "$or":
            if (
                not isinstance(value, list)
                or len(value) < 2
                or not all(isinstance(p, dict) for p in value)
            ):
                raise _invalid("$or must be an array of at least two objects")
            for p in value:
                _validate(p)
        elif isinstance(value, dict):
            _validate(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _validate_matcher(item)
        else:
            raise _invalid(f'"{key}" must be an object or an array')


def _validate_matcher(m: dict[str, Any]) -> None:
    if len(m) != 1:
        raise _invalid("a matcher has one key")
    ((op, arg),) = m.items()
    bad = _invalid(f'bad "{op}" matcher')
    if op in ("prefix", "suffix", "equals-ignore-case", "wildcard", "cidr"):
        if (
            isinstance(arg, dict)
            and op in ("prefix", "suffix")
            and list(arg) == ["equals-ignore-case"]
        ):
            return
        if not isinstance(arg, str):
            raise _invalid(f"{op} match pattern must be a string")
    elif op == "exists":
        if not isinstance(arg, bool):
            raise bad
    elif op == "numeric":
        if not isinstance(arg, list):
            raise _invalid("Value of numeric must be an array.")
        if len(arg) not in (2, 4):
            raise bad
        for i in range(0, len(arg), 2):
            if (
                arg[i] not in _NUMERIC_OPS
                or isinstance(arg[i + 1], bool)
                or not isinstance(arg[i + 1], int | float)
            ):
                raise bad
    elif op == "anything-but":
        if isinstance(arg, dict):
            if len(arg) != 1 or next(iter(arg)) not in (
                "prefix",
                "suffix",
                "equals-ignore-case",
                "wildcard",
            ):
                raise bad
    else:
        raise _invalid(f"Unrecognized match type {op}")


def matches(pattern: dict[str, Any], event: Any) -> bool:
    """Whether ``event`` (a decoded JSON object) matches ``pattern``."""
    if not isinstance(event, dict):
        return False
    for key, want in pattern.items():
        if key == "$or":
            if not any(matches(p, event) for p in want):
                return False
            continue
        value = event.get(key, _MISSING)
        if isinstance(want, dict):
            if value is _MISSING:
                # A nested pattern on an absent object matches only if it asks for absence.
                if not _only_absent(want):
                    return False
                continue
            if isinstance(value, list):
                if not any(matches(want, v) for v in value):
                    return False
            elif not matches(want, value):
                return False
            continue
        if not _leaf(want, value):
            return False
    return True


def _only_absent(pattern: dict[str, Any]) -> bool:
    for want in pattern.values():
        if isinstance(want, dict):
            if not _only_absent(want):
                return False
        elif not (
            isinstance(want, list)
            and any(isinstance(m, dict) and m.get("exists") is False for m in want)
        ):
            return False
    return True


def _leaf(allowed: list[Any], value: Any) -> bool:
    if value is _MISSING:
        return any(isinstance(m, dict) and m.get("exists") is False for m in allowed)
    values = value if isinstance(value, list) else [value]
    for m in allowed:
        if isinstance(m, dict):
            if "exists" in m:
                if m["exists"] is True:
                    return True
                continue
            if "anything-but" in m:
                # Every value must avoid the excluded ones.
                if values and all(_anything_but(m["anything-but"], v) for v in values):
                    return True
                continue
            if any(_matcher(m, v) for v in values):
                return True
        elif any(_equal(m, v) for v in values):
            return True
    return False


def _equal(want: Any, value: Any) -> bool:
    if isinstance(want, bool) or isinstance(value, bool):
        return want is value
    if isinstance(want, int | float) and isinstance(value, int | float):
        return float(want) == float(value)
    return bool(want == value)


def _matcher(m: dict[str, Any], value: Any) -> bool:
    ((op, arg),) = m.items()
    if op == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        for i in range(0, len(arg), 2):
            if not _compare(arg[i], float(value), float(arg[i + 1])):
                return False
        return True
    if not isinstance(value, str):
        return False
    if op == "prefix":
        if isinstance(arg, dict):
            return value.lower().startswith(str(arg["equals-ignore-case"]).lower())
        return value.startswith(arg)
    if op == "suffix":
        if isinstance(arg, dict):
            return value.lower().endswith(str(arg["equals-ignore-case"]).lower())
        return value.endswith(arg)
    if op == "equals-ignore-case":
        return value.lower() == str(arg).lower()
    if op == "wildcard":
        return fnmatch.fnmatchcase(value, str(arg).replace("[", "[[]"))
    if op == "cidr":
        try:
            return ipaddress.ip_address(value) in ipaddress.ip_network(arg, strict=False)
        except ValueError:
            return False
    return False


def _compare(op: str, a: float, b: float) -> bool:
    return {"<": a < b, "<=": a <= b, "=": a == b, ">": a > b, ">=": a >= b}[op]


def _anything_but(arg: Any, value: Any) -> bool:
    """True when ``value`` is NOT excluded by anything-but's argument."""
    if isinstance(arg, dict):
        return not _matcher(arg, value)
    excluded = arg if isinstance(arg, list) else [arg]
    return not any(_equal(e, value) for e in excluded)
