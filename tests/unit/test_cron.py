"""Schedule expressions against the examples in AWS's EventBridge documentation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from firebox.errors import ValidationError
from firebox.triggers.schedule_expr import Cron, Rate, parse


def _ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def _fires(expr: str, start: float, n: int) -> list[datetime]:
    sched = parse(expr)
    out = []
    t = start
    for _ in range(n):
        nxt = sched.next_after(t, 0.0)
        assert nxt is not None
        out.append(datetime.fromtimestamp(nxt, UTC))
        t = nxt
    return out


# Wednesday 2026-11-25 03:00 UTC
START = _ts(2026, 11, 25, 3, 0)


def d(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_aws_documented_examples() -> None:
    assert _fires("cron(0 10 * * ? *)", START, 2) == [d(2026, 11, 25, 10), d(2026, 11, 26, 10)]
    assert _fires("cron(15 12 * * ? *)", START, 1) == [d(2026, 11, 25, 12, 15)]
    # 6:00 PM Monday through Friday: Wed, Thu, Fri, then Monday.
    assert _fires("cron(0 18 ? * MON-FRI *)", START, 4) == [
        d(2026, 11, 25, 18),
        d(2026, 11, 26, 18),
        d(2026, 11, 27, 18),
        d(2026, 11, 30, 18),
    ]
    assert _fires("cron(0 8 1 * ? *)", START, 2) == [d(2026, 12, 1, 8), d(2027, 1, 1, 8)]
    assert _fires("cron(0/15 * * * ? *)", START, 3) == [
        d(2026, 11, 25, 3, 15),
        d(2026, 11, 25, 3, 30),
        d(2026, 11, 25, 3, 45),
    ]
    # Every 10 minutes Monday through Friday, from Friday 23:50 on to Monday.
    assert _fires("cron(0/10 * ? * MON-FRI *)", _ts(2026, 11, 27, 23, 45), 2) == [
        d(2026, 11, 27, 23, 50),
        d(2026, 11, 30, 0, 0),
    ]
    # Every 5 minutes between 8:00 AM and 5:55 PM weekdays.
    fires = _fires("cron(0/5 8-17 ? * MON-FRI *)", _ts(2026, 11, 27, 17, 50), 2)
    assert fires == [d(2026, 11, 27, 17, 55), d(2026, 11, 30, 8, 0)]
    # 9:00 AM on the first Monday of each month (1=SUN, so 2=MON).
    assert _fires("cron(0 9 ? * 2#1 *)", START, 2) == [d(2026, 12, 7, 9), d(2027, 1, 4, 9)]


def test_day_of_week_numbering_is_sunday_one() -> None:
    assert _fires("cron(0 12 ? * 1 *)", START, 1) == [d(2026, 11, 29, 12)]  # Sunday
    assert _fires("cron(0 12 ? * 7 *)", START, 1) == [d(2026, 11, 28, 12)]  # Saturday
    assert _fires("cron(0 12 ? * SUN,SAT *)", START, 2) == [
        d(2026, 11, 28, 12),
        d(2026, 11, 29, 12),
    ]


def test_l_w_and_year() -> None:
    assert _fires("cron(0 0 L * ? *)", START, 2) == [d(2026, 11, 30), d(2026, 12, 31)]
    # Last Friday (6L) of the month.
    assert _fires("cron(0 0 ? * 6L *)", START, 2) == [d(2026, 11, 27), d(2026, 12, 25)]
    # The weekday nearest the 15th: 2026-11-15 is a Sunday → Monday the 16th;
    # 2027-05-15 is a Saturday → Friday the 14th.
    assert _fires("cron(0 0 15W * ? *)", _ts(2026, 11, 1), 1) == [d(2026, 11, 16)]
    assert _fires("cron(0 0 15W * ? *)", _ts(2027, 5, 1), 1) == [d(2027, 5, 14)]
    # Last weekday of January 2027 (the 31st is a Sunday) is Friday the 29th.
    assert _fires("cron(0 0 LW * ? *)", _ts(2027, 1, 2), 1) == [d(2027, 1, 29)]
    assert _fires("cron(0 12 1 1 ? 2028-2029)", START, 2) == [d(2028, 1, 1, 12), d(2029, 1, 1, 12)]
    assert parse("cron(0 12 1 1 ? 2020)").next_after(START, 0.0) is None


def test_rate() -> None:
    assert parse("rate(1 minute)") == Rate(60)
    assert parse("rate(5 minutes)") == Rate(300)
    assert parse("rate(1 hour)") == Rate(3600)
    assert parse("rate(2 days)") == Rate(172800)
    r = Rate(60)
    assert r.next_after(100.0, 0.0) == 120.0
    assert r.next_after(120.0, 0.0) == 180.0
    assert r.next_after(130.0, 0.0, scale=60.0) == 131.0
    assert isinstance(parse("cron(0 10 * * ? *)"), Cron)


@pytest.mark.parametrize(
    "expr",
    [
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(0 minutes)",
        "rate(5 weeks)",
        "rate(x minutes)",
        "cron(0 10 * * ?)",
        "cron(0 10 * * * *)",
        "cron(0 10 ? * ? *)",
        "cron(60 10 * * ? *)",
        "cron(0 24 * * ? *)",
        "cron(0 10 32 * ? *)",
        "cron(0 10 ? * 8 *)",
        "cron(0 10 * 13 ? *)",
        "every day",
        "",
        "cron(0 10 * * ? 1800)",
    ],
)
def test_invalid(expr: str) -> None:
    with pytest.raises(ValidationError):
        parse(expr)
