"""Checking a request against its operation's input shape in botocore's model, as AWS's
front door does before the service sees it: required members, JSON types, string lengths
and patterns, enums, numeric ranges, list and map sizes.

What the model forbids is answered in AWS's words ("1 validation error detected: Value
'x' at 'functionName' failed to satisfy constraint: Member must ..."), with the error class
the service uses for it (``Rules``); a member of the wrong JSON type is the service's
deserialisation error. Everything past this point may trust the input's shape, so a
TypeError or KeyError further in is a bug in Firebox (a logged 500), never bad input.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

from firebox.errors import FireboxError

log = logging.getLogger(__name__)

_NUMBERS = ("integer", "long", "float", "double")
# AWS's wording of each constraint.
_LENGTH_MAX = "Member must have length less than or equal to {}"
_LENGTH_MIN = "Member must have length greater than or equal to {}"
_PATTERN = "Member must satisfy regular expression pattern: {}"
_ENUM = "Member must satisfy enum value set: [{}]"
_VALUE_MAX = "Member must have value less than or equal to {}"
_VALUE_MIN = "Member must have value greater than or equal to {}"


@dataclass(frozen=True, slots=True)
class Rules:
    """How one service reports what its model forbids."""

    # The error of a model violation: ValidationException (Lambda, EventBridge) or
    # InvalidParameterException (CloudWatch Logs).
    invalid: type[FireboxError]
    # The error of a body member of the wrong JSON type: (dotted path, shape, value).
    wrong_type: Callable[[str, Shape, Any], FireboxError]
    # (dotted path, constraint) pairs the service checks itself, in its own words, after
    # the front door: the validator leaves them alone. Constraints: "enum", "max", "min",
    # "pattern".
    own_checks: frozenset[tuple[str, str]] = frozenset()
    # AWS lists some enums in an order of its own, not the model's.
    enum_order: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The constraints of each (shape, path), worked out once: the invoke path checks its
    # input on every call.
    _checks: dict[tuple[str, str], list[tuple[str, str, Any]]] = field(
        default_factory=dict, compare=False, repr=False
    )


@dataclass(frozen=True, slots=True)
class Violation:
    path: str
    value: Any
    shape: Shape
    constraint: str


class WrongType(Exception):
    def __init__(self, path: str, shape: Shape, value: Any) -> None:
        super().__init__(path)
        self.path, self.shape, self.value = path, shape, value


@functools.cache
def lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def validate(rules: Rules, shape: StructureShape, params: Mapping[str, Any]) -> None:
    """Raise the service's error for the first wrong type or for every model violation.

    ``params`` maps the input shape's member names to the values received, with
    values from the path, query string and headers already converted to their types.
    """
    checker = _Checker(rules)
    try:
        checker.structure(shape, params, "")
    except WrongType as wrong:
        raise rules.wrong_type(wrong.path, wrong.shape, wrong.value) from None
    if checker.found:
        raise rules.invalid(render(checker.found))


def render(violations: list[Violation]) -> str:
    n = len(violations)
    parts = []
    for v in violations:
        if v.value is None:
            shown = "Value null"
        elif v.shape.metadata.get("sensitive"):
            # AWS does not echo a sensitive member (environment variables, payloads …).
            shown = "Value"
        else:
            shown = f"Value '{java_str(v.value, v.shape)}'"
        parts.append(f"{shown} at '{v.path}' failed to satisfy constraint: {v.constraint}")
    noun = "error" if n == 1 else "errors"
    return f"{n} validation {noun} detected: " + "; ".join(parts)


def java_str(value: Any, shape: Shape | None) -> str:
    """A value as AWS's Java services print it in messages (toString of the request object)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if shape is not None and shape.type_name in ("float", "double"):
            return java_double(float(value))
        return str(value)
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        member = shape.member if isinstance(shape, ListShape) else None
        return "[" + ", ".join(java_str(v, member) for v in value) + "]"
    if isinstance(value, dict):
        if isinstance(shape, StructureShape):
            fields = ", ".join(
                f"{lower_first(name)}={java_str(value.get(name), member)}"
                for name, member in shape.members.items()
            )
            return f"{shape.name}({fields})"
        item = shape.value if isinstance(shape, MapShape) else None
        return "{" + ", ".join(f"{k}={java_str(v, item)}" for k, v in value.items()) + "}"
    return str(value)


def java_double(x: float) -> str:
    """Java's Double.toString: 2.0, 0.5, 1.0E10."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0 or 1e-3 <= abs(x) < 1e7:
        return repr(float(x))
    sign, digits, exponent = Decimal(repr(x)).normalize().as_tuple()
    text = "".join(map(str, digits))
    power = len(text) - 1 + int(exponent)
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{power}"


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str] | None:
    """botocore's patterns are Java regexes; translate what Python's re lacks."""
    translated = pattern.replace(r"\p{L}", r"\w").replace(r"\p{Z}", r"\s").replace(r"\p{N}", r"\d")
    # Java reads "[\w-_]" as \w, '-' and '_'; Python calls it a bad range.
    translated = re.sub(r"(\\[wdsWDS])-", r"\1\\-", translated)
    try:
        return re.compile(translated)
    except re.error:
        log.warning("model pattern %r has no Python equivalent; not checked", pattern)
        return None


def _utf16_len(text: str) -> int:
    """Java's String.length(): UTF-16 code units, so an emoji counts twice."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _scalar_checks(shape: Shape, rules: Rules, path: str) -> list[tuple[str, str, Any]]:
    """The constraints of a scalar shape: (kind, AWS's wording, bound), in AWS's order."""
    key = (shape.name, path)
    cached = rules._checks.get(key)
    if cached is None:
        cached = rules._checks[key] = _work_out_checks(shape, rules, path)
    return cached


def _work_out_checks(shape: Shape, rules: Rules, path: str) -> list[tuple[str, str, Any]]:
    meta = shape.metadata
    checks: list[tuple[str, str, Any]] = []
    if shape.type_name == "string":
        if "max" in meta:
            checks.append(("max", _LENGTH_MAX.format(meta["max"]), meta["max"]))
        if "min" in meta:
            checks.append(("min", _LENGTH_MIN.format(meta["min"]), meta["min"]))
        if "pattern" in meta:
            checks.append(("pattern", _PATTERN.format(meta["pattern"]), meta["pattern"]))
        if shape.enum:
            order = rules.enum_order.get(shape.name, tuple(shape.enum))
            checks.append(("enum", _ENUM.format(", ".join(order)), shape.enum))
    elif shape.type_name in _NUMBERS:
        if "max" in meta:
            checks.append(("max", _VALUE_MAX.format(java_str(meta["max"], shape)), meta["max"]))
        if "min" in meta:
            checks.append(("min", _VALUE_MIN.format(java_str(meta["min"], shape)), meta["min"]))
    return [c for c in checks if (path, c[0]) not in rules.own_checks]


def _fails(kind: str, bound: Any, value: Any, shape: Shape) -> bool:
    if shape.type_name == "string":
        if kind == "max":
            return bool(_utf16_len(value) > bound)
        if kind == "min":
            return bool(_utf16_len(value) < bound)
        if kind == "pattern":
            compiled = _pattern(bound)
            return compiled is not None and compiled.fullmatch(value) is None
        if kind == "enum":
            return value not in bound
        return False
    if kind == "max":
        return bool(value > bound)
    if kind == "min":
        return bool(value < bound)
    return False


def _type_ok(shape: Shape, value: Any) -> bool:
    kind = shape.type_name
    if kind == "structure" or kind == "map":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "blob":
        # base64 text in a JSON body; the raw bytes when the blob is the whole body.
        return isinstance(value, str | bytes)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("integer", "long"):
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind in ("float", "double"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "timestamp":
        return isinstance(value, int | float | str) and not isinstance(value, bool)
    return True


class _Checker:
    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.found: list[Violation] = []

    def _add(self, path: str, value: Any, shape: Shape, constraint: str) -> None:
        self.found.append(Violation(path, value, shape, constraint))

    def structure(self, shape: StructureShape, value: Mapping[str, Any], prefix: str) -> None:
        required = set(shape.required_members)
        for name, member in shape.members.items():
            path = f"{prefix}{lower_first(name)}"
            item = value.get(name)
            if item is None:
                if name in required:
                    self._add(path, None, member, "Member must not be null")
                continue
            self.value(member, item, path)

    def value(self, shape: Shape, value: Any, path: str) -> None:
        if not _type_ok(shape, value):
            raise WrongType(path, shape, value)
        if isinstance(shape, StructureShape):
            self.structure(shape, value, path + ".")
        elif isinstance(shape, ListShape):
            self._sized(shape, value, path)
            self._elements(shape, value, path)
        elif isinstance(shape, MapShape):
            self._sized(shape, value, path)
            self._entries(shape, value, path)
        else:
            if isinstance(value, float) and shape.type_name in ("integer", "long"):
                value = int(value)
            for kind, text, bound in _scalar_checks(shape, self.rules, path):
                if _fails(kind, bound, value, shape):
                    self._add(path, value, shape, text)

    def _sized(self, shape: Shape, value: list[Any] | dict[str, Any], path: str) -> None:
        meta, own = shape.metadata, self.rules.own_checks
        if "max" in meta and len(value) > meta["max"] and (path, "max") not in own:
            self._add(path, value, shape, _LENGTH_MAX.format(meta["max"]))
        if "min" in meta and len(value) < meta["min"] and (path, "min") not in own:
            self._add(path, value, shape, _LENGTH_MIN.format(meta["min"]))

    def _bracket(self, shape: Shape, items: Iterable[Any], path: str, not_null: bool) -> str | None:
        """The "[Member must ..., ...]" list of a scalar member's constraints, if an item
        breaks one of them (AWS then names them all)."""
        checks = _scalar_checks(shape, self.rules, path)
        broken = False
        for item in items:
            if item is None:
                broken = broken or not_null
                continue
            if not _type_ok(shape, item):
                raise WrongType(path, shape, item)
            broken = broken or any(_fails(k, b, item, shape) for k, _, b in checks)
        if not broken:
            return None
        texts = [t for _, t, _ in checks] + (["Member must not be null"] if not_null else [])
        return "[" + ", ".join(texts) + "]"

    def _elements(self, shape: ListShape, value: list[Any], path: str) -> None:
        member = shape.member
        if member.type_name in ("structure", "list", "map"):
            for i, item in enumerate(value, 1):
                item_path = f"{path}.{i}.member"
                if item is None:
                    self._add(item_path, None, member, "Member must not be null")
                else:
                    self.value(member, item, item_path)
            return
        bracket = self._bracket(member, value, path, not_null=True)
        if bracket:
            self._add(path, value, shape, f"Member must satisfy constraint: {bracket}")

    def _entries(self, shape: MapShape, value: dict[str, Any], path: str) -> None:
        keys = self._bracket(shape.key, value.keys(), path, not_null=False)
        if keys:
            self._add(path, value, shape, f"Map keys must satisfy constraint: {keys}")
        if shape.value.type_name in ("structure", "list", "map"):
            for key, item in value.items():
                if item is None:
                    self._add(f"{path}.{key}", None, shape.value, "Member must not be null")
                else:
                    self.value(shape.value, item, f"{path}.{key}")
            return
        values = self._bracket(shape.value, value.values(), path, not_null=True)
        if values:
            self._add(path, value, shape, f"Map value must satisfy constraint: {values}")
