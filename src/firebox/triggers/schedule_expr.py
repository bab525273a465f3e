"""EventBridge schedule expressions: ``rate(value unit)`` and AWS's six-field ``cron(...)``.

AWS's cron has six fields — minutes, hours, day-of-month, month, day-of-week, year — with
``?`` in one of day-of-month / day-of-week, days of the week numbered 1 (SUN) to 7 (SAT),
and the specials ``L`` (last day of month; ``5L`` last Thursday), ``W`` (``15W`` the weekday
nearest the 15th, ``LW`` the last weekday) and ``#`` (``3#2`` the second Tuesday). All times
are UTC. The expression is translated to the five-field form croniter understands; the
year and ``W`` are applied as filters on croniter's candidates.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

from firebox.errors import FireboxError
from firebox.messages import SCHEDULE_INVALID

_RATE_RE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON_RE = re.compile(r"^cron\((.*)\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}
_DOW_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# Enough to walk through a few years of candidates filtered by W or the year.
_MAX_STEPS = 20000


def invalid() -> FireboxError:
    return SCHEDULE_INVALID()


@dataclass(frozen=True, slots=True)
class Rate:
    period_s: int

    def next_after(self, t: float, anchor: float, scale: float = 1.0) -> float:
        """The first tick strictly after ``t`` of the series anchor + k·period."""
        period = self.period_s / scale
        k = int((t - anchor) // period) + 1
        return anchor + max(k, 1) * period


@dataclass(frozen=True, slots=True)
class Cron:
    expr: str  # five-field, for croniter
    years: frozenset[int] | None
    weekday_dom: str | None  # "15W" / "LW": day of month resolved per month

    def next_after(self, t: float, anchor: float = 0.0, scale: float = 1.0) -> float | None:
        """The first firing time strictly after ``t`` (epoch seconds), or None if never."""
        start = datetime.fromtimestamp(t, UTC)
        if self.years is not None:
            future = [y for y in self.years if y >= start.year]
            if not future:
                return None
            if min(future) > start.year:
                start = datetime(min(future), 1, 1, tzinfo=UTC) - timedelta(seconds=1)
        it = croniter(self.expr, start)
        for _ in range(_MAX_STEPS):
            when: datetime = it.get_next(datetime)
            if self.years is not None:
                if when.year > max(self.years):
                    return None
                if when.year not in self.years:
                    continue
            if self.weekday_dom is not None and when.day != _weekday_day(
                self.weekday_dom, when.year, when.month
            ):
                continue
            return when.timestamp()
        return None


Schedule = Rate | Cron


def parse(expression: str) -> Schedule:
    """Parse a ScheduleExpression; ValidationError if EventBridge would reject it."""
    text = (expression or "").strip()
    m = _RATE_RE.match(text)
    if m:
        value, unit = int(m[1]), m[2]
        if value < 1 or (value == 1) != (not unit.endswith("s")):
            raise invalid()
        return Rate(value * _UNIT_S[unit.rstrip("s")])
    m = _CRON_RE.match(text)
    if m:
        return parse_cron(m[1])
    raise invalid()


def _field(value: str, lo: int, hi: int, names: tuple[str, ...] = (), offset: int = 0) -> str:
    """Validate one numeric field (lists, ranges, steps, *), returning it for croniter."""
    if value == "*":
        return value
    out = []
    for part in value.split(","):
        base, _, step = part.partition("/")
        if step and not step.isdigit():
            raise invalid()
        if base == "*":
            out.append(part)
            continue
        bounds = base.split("-")
        if len(bounds) > 2:
            raise invalid()
        conv = []
        for b in bounds:
            b = b.upper()
            if b in names:
                num = names.index(b) + 1
            elif b.isdigit():
                num = int(b)
            else:
                raise invalid()
            if not lo <= num <= hi:
                raise invalid()
            conv.append(str(num - offset))
        out.append("-".join(conv) + (f"/{step}" if step else ""))
    return ",".join(out)


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def parse_cron(body: str) -> Cron:
    fields = body.split()
    if len(fields) != 6:
        raise invalid()
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        # Exactly one of day-of-month and day-of-week must be '?'.
        raise invalid()
    minute = _field(minute, 0, 59)
    hour = _field(hour, 0, 23)
    month = _field(month, 1, 12, _MONTHS)
    weekday_dom = None
    if dom == "?":
        dom = "*"
    elif dom.upper() == "L":
        dom = "L"
    elif dom.upper() == "LW" or re.match(r"^\d{1,2}W$", dom.upper()):
        weekday_dom = dom.upper()
        if weekday_dom != "LW" and not 1 <= int(weekday_dom[:-1]) <= 31:
            raise invalid()
        dom = "*"
    else:
        dom = _field(dom, 1, 31)
    if dow == "?":
        dow = "*"
    else:
        up = dow.upper()
        m = re.match(r"^([1-7]|[A-Z]{3})(#([1-5])|L)$", up)
        if m:
            day = _field(m[1], 1, 7, _DOW_NAMES, offset=1)
            dow = f"{day}#{m[3]}" if m[3] else f"L{day}"
        else:
            dow = _field(dow, 1, 7, _DOW_NAMES, offset=1)
    years: frozenset[int] | None = None
    if year != "*":
        expanded: set[int] = set()
        for part in year.split(","):
            base, _, step = part.partition("/")
            lo_s, _, hi_s = base.partition("-")
            if not lo_s.isdigit() or (hi_s and not hi_s.isdigit()) or (step and not step.isdigit()):
                raise invalid()
            lo = int(lo_s)
            hi = int(hi_s) if hi_s else (2199 if step else lo)
            if not 1970 <= lo <= hi <= 2199:
                raise invalid()
            expanded.update(range(lo, hi + 1, int(step) if step else 1))
        years = frozenset(expanded)
    expr = f"{minute} {hour} {dom} {month} {dow}"
    if not croniter.is_valid(expr):
        raise invalid()
    return Cron(expr, years, weekday_dom)


def _weekday_day(spec: str, year: int, month: int) -> int:
    """The day of month that ``15W`` / ``LW`` means in a given month."""
    last = calendar.monthrange(year, month)[1]
    if spec == "LW":
        day = last
        while calendar.weekday(year, month, day) >= 5:
            day -= 1
        return day
    day = min(int(spec[:-1]), last)
    wd = calendar.weekday(year, month, day)
    if wd == 5:  # Saturday: the Friday before, unless that leaves the month
        return day - 1 if day > 1 else day + 2
    if wd == 6:  # Sunday: the Monday after, unless that leaves the month
        return day + 1 if day < last else day - 2
    return day
