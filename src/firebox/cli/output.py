"""What the command line prints: aligned tables and progress for people, JSON for programs."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import click

_SINCE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class CliError(click.ClickException):
    """One clear line on stderr, exit status 1: never a traceback."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def fail(message: str) -> NoReturn:
    raise CliError(message)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def progress(message: str) -> None:
    """A step of a longer command, on stderr so stdout stays the result."""
    click.echo(click.style("→ ", fg="cyan") + message, err=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> None:
    """Columns padded to their widest cell; ``right`` lists right-aligned columns."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        line = "  ".join(parts).rstrip()
        click.echo(click.style(line, bold=True) if n == 0 else line)


def timestamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_since(text: str, now: datetime | None = None) -> int:
    """'10m', '2h', '1d', '30s', '1w' ago, or an ISO 8601 time; milliseconds since the epoch."""
    now = now or datetime.now(UTC)
    m = _SINCE.match(text.strip())
    if m:
        return int((now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})).timestamp() * 1000)
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected a duration like 10m, 2h, 1d or an ISO time"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def size(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} GB"
