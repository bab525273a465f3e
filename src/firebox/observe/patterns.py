"""CloudWatch Logs filter patterns, compiled to a predicate on an event's message.

Supported, as CloudWatch reads them (case sensitive):
- terms: ``ERROR timeout`` (all of them), ``"exact phrase"``, ``?ERROR ?WARN`` (any of
  them), ``-DEBUG`` (none of them), mixed freely;
- regular expressions: ``%ERROR [0-9]+%``, in CloudWatch's limited syntax (letters, digits,
  ``: _ # = @ / ; , -`` and space, the operators ``^ $ ? [ ] { } | \\ * + .``; no groups),
  run by RE2, whose time is linear in the message whatever the pattern;
- space-delimited patterns: ``[ip, user, ..., status = 4*, size > 1000]`` over fields split
  at spaces ("quoted" and [bracketed] fields are one field), ``...`` for any run of fields,
  conditions = != < <= > >= and ``||`` / ``&&`` between conditions of one field;
- JSON patterns: ``{ $.level = "error" && ($.ms > 100 || $.user.id NOT EXISTS) }`` with
  =, !=, <, <=, >, >=, IS TRUE / FALSE / NULL, NOT EXISTS, ``*`` wildcards in strings,
  nested selectors ``$.a.b[0]``.
Anything else raises InvalidParameterException, as CloudWatch does for a bad pattern.

Every match runs in time linear in the message (RE2, greedy wildcards, a set-of-states
scan for ``...``), so no pattern can make one request stall the server.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from typing import Any

import re2

from firebox.errors import LogsInvalidParameter

Predicate = Callable[[str], bool]
_JsonTest = Callable[[Any], bool]


def _invalid(pattern: str, why: str) -> LogsInvalidParameter:
    return LogsInvalidParameter(f"Invalid filter pattern {pattern!r}: {why}")


# FilterLogEvents' filterPattern (botocore's logs model: at most 1,024 characters).
MAX_PATTERN_CHARS = 1024
# CloudWatch's regex filter syntax: these characters and nothing else (no parentheses,
# no multi-byte characters). Space is allowed too: a log line's words are separated by it.
_REGEX_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_#=@/;,- ^$?[]{}|\\*+."
)


def _regex(pattern: str, body: str) -> Predicate:
    bad = sorted(set(body) - _REGEX_CHARS)
    if bad:
        raise _invalid(pattern, f"a regular expression cannot contain {''.join(bad)!r}")
    options = re2.Options()
    options.log_errors = False
    try:
        regex = re2.compile(body, options)
    except re2.error as exc:
        raise _invalid(pattern, str(exc)) from None
    return lambda message: regex.search(message) is not None


def compile_pattern(pattern: str | None) -> Predicate:
    text = (pattern or "").strip()
    if not text:
        return lambda _message: True
    if len(text) > MAX_PATTERN_CHARS:
        raise _invalid(text[:64] + "...", f"longer than {MAX_PATTERN_CHARS} characters")
    if text.startswith("{"):
        if not text.endswith("}"):
            raise _invalid(text, "a JSON pattern must end with '}'")
        test = _JsonParser(text, text[1:-1]).parse()
        return lambda message: test(_as_json(message))
    if len(text) >= 2 and text.startswith("%") and text.endswith("%"):
        return _regex(text, text[1:-1])
    if text.startswith("["):
        if not text.endswith("]"):
            raise _invalid(text, "a space-delimited pattern must end with ']'")
        return _delimited(text, text[1:-1])
    return _terms(text)


def required_terms(pattern: str | None) -> tuple[str, ...]:
    """Substrings every match of a term pattern contains (for a store's pre-filter)."""
    text = (pattern or "").strip()
    if not text or text[0] in "{[" or (len(text) >= 2 and text[0] == text[-1] == "%"):
        return ()
    try:
        words = shlex.split(text, posix=True)
    except ValueError:
        return ()
    return tuple(w for w in words if not (w[:1] in "?-" and len(w) > 1))


def _terms(text: str) -> Predicate:
    try:
        words = shlex.split(text, posix=True)
    except ValueError as exc:
        raise _invalid(text, str(exc)) from None
    required: list[str] = []
    optional: list[str] = []
    excluded: list[str] = []
    for word in words:
        if word.startswith("?") and len(word) > 1:
            optional.append(word[1:])
        elif word.startswith("-") and len(word) > 1:
            excluded.append(word[1:])
        else:
            required.append(word)

    def match(message: str) -> bool:
        return (
            all(w in message for w in required)
            and (not optional or any(w in message for w in optional))
            and not any(w in message for w in excluded)
        )

    return match


_MISSING = object()


def _as_json(message: str) -> Any:
    message = message.strip()
    if not message.startswith(("{", "[")):
        # Lambda's Python runtime prefixes lines; the JSON may follow a tab.
        tab = message.rfind("\t{")
        if tab < 0:
            return _MISSING
        message = message[tab + 1 :]
    try:
        return json.loads(message)
    except ValueError:
        return _MISSING


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>&&|\|\||!=|<=|>=|=|<|>|\(|\))
      | (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<word>[^\s()=!<>&|"]+)
    )""",
    re.VERBOSE,
)
_SEL = re.compile(r"\.([A-Za-z0-9_\-@$]+|\*)|\[(\d+|\*)\]")


class _JsonParser:
    """Recursive descent: or := and ('||' and)*; and := atom ('&&' atom)*;
    atom := '(' or ')' | selector comparison."""

    def __init__(self, pattern: str, body: str) -> None:
        self.pattern = pattern
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        body = body.rstrip()
        while pos < len(body):
            m = _TOKEN.match(body, pos)
            if m is None or m.end() == pos:
                raise _invalid(pattern, f"unexpected text at {body[pos:]!r}")
            pos = m.end()
            kind = m.lastgroup
            assert kind is not None
            self.tokens.append((kind, m.group(kind)))
        self.i = 0

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _next(self, what: str) -> tuple[str, str]:
        tok = self._peek()
        if tok is None:
            raise _invalid(self.pattern, f"expected {what}")
        self.i += 1
        return tok

    def parse(self) -> _JsonTest:
        test = self._or()
        if self._peek() is not None:
            raise _invalid(self.pattern, f"unexpected {self._peek()[1]!r}")  # type: ignore[index]
        return test

    def _or(self) -> _JsonTest:
        parts = [self._and()]
        while self._peek() == ("op", "||"):
            self.i += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else lambda doc: any(p(doc) for p in parts)

    def _and(self) -> _JsonTest:
        parts = [self._atom()]
        while self._peek() == ("op", "&&"):
            self.i += 1
            parts.append(self._atom())
        return parts[0] if len(parts) == 1 else lambda doc: all(p(doc) for p in parts)

    def _atom(self) -> _JsonTest:
        kind, value = self._next("a selector")
        if (kind, value) == ("op", "("):
            inner = self._or()
            if self._next("')'") != ("op", ")"):
                raise _invalid(self.pattern, "expected ')'")
            return inner
        if kind != "word" or not value.startswith("$"):
            raise _invalid(self.pattern, f"expected a selector like $.field, got {value!r}")
        path = self._selector(value)
        kind, op = self._next("an operator")
        if kind == "word" and op.upper() == "IS":
            _, what = self._next("TRUE, FALSE or NULL")
            want = {"TRUE": True, "FALSE": False, "NULL": None}.get(what.upper(), _MISSING)
            if want is _MISSING:
                raise _invalid(self.pattern, f"IS {what} is not TRUE, FALSE or NULL")
            return lambda doc: (v := _select(doc, path)) is not _MISSING and v is want
        if kind == "word" and op.upper() == "NOT":
            _, what = self._next("EXISTS")
            if what.upper() != "EXISTS":
                raise _invalid(self.pattern, f"expected NOT EXISTS, got NOT {what}")
            return lambda doc: doc is not _MISSING and _select(doc, path) is _MISSING
        if kind != "op" or op not in ("=", "!=", "<", "<=", ">", ">="):
            raise _invalid(self.pattern, f"expected an operator, got {op!r}")
        vkind, raw = self._next("a value")
        if vkind == "op":
            raise _invalid(self.pattern, f"expected a value, got {raw!r}")
        return _comparison(path, op, vkind, raw, self.pattern)

    def _selector(self, text: str) -> list[str | int]:
        path: list[str | int] = []
        pos = 1
        while pos < len(text):
            m = _SEL.match(text, pos)
            if m is None:
                raise _invalid(self.pattern, f"bad selector {text!r}")
            if m.group(1) is not None:
                path.append(m.group(1))
            else:
                path.append(int(m.group(2)) if m.group(2) != "*" else "*")
            pos = m.end()
        return path


def _select(doc: Any, path: list[str | int]) -> Any:
    if doc is _MISSING:
        return _MISSING
    for key in path:
        if key == "*":
            return doc  # a wildcard step: match against the container itself
        if isinstance(key, int):
            if not isinstance(doc, list) or key >= len(doc):
                return _MISSING
            doc = doc[key]
        else:
            if not isinstance(doc, dict) or key not in doc:
                return _MISSING
            doc = doc[key]
    return doc


def _number(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


def _comparison(path: list[str | int], op: str, vkind: str, raw: str, pattern: str) -> _JsonTest:
    if op in ("<", "<=", ">", ">="):
        bound = _number(raw)
        if bound is None or vkind == "str":
            raise _invalid(pattern, f"{op} needs a number, got {raw!r}")
        cmp: Callable[[float], bool] = {
            "<": lambda v: v < bound,
            "<=": lambda v: v <= bound,
            ">": lambda v: v > bound,
            ">=": lambda v: v >= bound,
        }[op]

        def numeric(doc: Any) -> bool:
            v = _select(doc, path)
            return isinstance(v, int | float) and not isinstance(v, bool) and cmp(v)

        return numeric
    number = _number(raw) if vkind == "word" else None
    text = json.loads(raw) if vkind == "str" else raw
    wildcard = _wildcard(text)

    def equal(doc: Any) -> bool:
        v = _select(doc, path)
        if v is _MISSING:
            return False
        if isinstance(v, bool) or v is None:
            return False
        if number is not None and isinstance(v, int | float):
            return float(v) == number
        if isinstance(v, list):
            return any(isinstance(x, str) and wildcard(x) for x in v)
        return wildcard(str(v))

    if op == "=":
        return equal
    return lambda doc: _select(doc, path) is not _MISSING and not equal(doc)


def _wildcard(text: str) -> Callable[[str], bool]:
    """A whole-value match where ``*`` stands for any run of characters. Taking each
    piece at its leftmost place is enough (nothing but ``*`` varies), so the time is
    linear in the value: a backtracking regex of many ``.*`` would not be."""
    if "*" not in text:
        return lambda value: value == text
    first, *middle, last = text.split("*")

    def match(value: str) -> bool:
        end = len(value) - len(last)
        if end < len(first) or not value.startswith(first) or not value.endswith(last):
            return False
        pos = len(first)
        for piece in middle:
            found = value.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True

    return match


# RE2: an unclosed "[" or '"' before many others costs a backtracking engine a rescan of
# the rest of the message from each of them.
_FIELD = re2.compile(r'"[^"]*"|\[[^\]]*\]|\S+')
_FIELD_COND = re.compile(r"^\s*([A-Za-z0-9_$]+)\s*(!=|<=|>=|=|<|>)\s*(.+?)\s*$")


def _message_fields(message: str) -> list[str]:
    out = []
    for token in _FIELD.findall(message):
        if len(token) >= 2 and token[0] + token[-1] in ('""', "[]"):
            token = token[1:-1]
        out.append(token)
    return out


def _field_test(pattern: str, spec: str) -> Callable[[str], bool] | None:
    """One field of a space-delimited pattern: None when it only names the field."""
    spec = spec.strip()
    if _FIELD_COND.match(spec) is None and "||" not in spec and "&&" not in spec:
        if not re.fullmatch(r"[A-Za-z0-9_$]+", spec):
            raise _invalid(pattern, f"bad field {spec!r}")
        return None
    ors = []
    for alternative in spec.split("||"):
        ands = []
        for cond in alternative.split("&&"):
            m = _FIELD_COND.match(cond)
            if m is None:
                raise _invalid(pattern, f"bad condition {cond.strip()!r}")
            _, op, raw = m.groups()
            vkind = "str" if raw.startswith('"') and raw.endswith('"') and len(raw) > 1 else "word"
            ands.append(_comparison([], op, vkind, raw, pattern))
        ors.append(ands)

    def test(value: str) -> bool:
        number = _number(value)
        doc: Any = (
            number
            if number is not None and not value.lower().startswith(("nan", "inf", "-inf", "+inf"))
            else value
        )
        if isinstance(doc, float) and doc.is_integer():
            doc = int(doc)
        return any(all(t(doc) for t in ands) for ands in ors)

    return test


def _delimited(pattern: str, body: str) -> Predicate:
    specs = [p for p in body.split(",")] if body.strip() else []
    fields: list[Callable[[str], bool] | None | str] = []
    for spec in specs:
        if spec.strip() == "...":
            if not fields or fields[-1] != "...":  # "..., ..." says no more than "..."
                fields.append("...")
        else:
            fields.append(_field_test(pattern, spec))

    def match(message: str) -> bool:
        # The set of fields that could come next, advanced one value at a time (a "..."
        # both stays and steps on): time in values × fields, never exponential.
        count = len(fields)

        def closure(states: set[int]) -> set[int]:
            out: set[int] = set()
            stack = list(states)
            while stack:
                i = stack.pop()
                if i not in out:
                    out.add(i)
                    if i < count and fields[i] == "...":
                        stack.append(i + 1)
            return out

        states = closure({0})
        for value in _message_fields(message):
            following: set[int] = set()
            for i in states:
                if i == count:
                    continue
                f = fields[i]
                if f == "...":
                    following.add(i)
                elif f is None or f(value):  # type: ignore[operator]
                    following.add(i + 1)
            if not following:
                return False
            states = closure(following)
        return count in states

    return match
