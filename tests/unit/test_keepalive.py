"""The adaptive keep-alive policy (workers/keepalive.py), on made-up arrival times."""

from __future__ import annotations

from firebox.workers.keepalive import KeepAlivePolicy


def test_one_off_gets_half_the_base() -> None:
    p = KeepAlivePolicy(300)
    assert p.keepalive_s("new") == 150
    p.observe("new", 0)
    assert p.keepalive_s("new") == 150


def test_regular_rhythm_is_kept_past_the_base_up_to_four_times() -> None:
    p = KeepAlivePolicy(300)
    for i in range(6):
        p.observe("cron", i * 420.0)  # every 7 minutes
    assert 600 <= p.keepalive_s("cron") <= 700  # 1.5 × 420 plus a little spread
    q = KeepAlivePolicy(300)
    for i in range(6):
        q.observe("hourly", i * 3600.0)
    assert q.keepalive_s("hourly") == 1200  # capped at 4 × base


def test_irregular_or_frequent_traffic_gets_the_base() -> None:
    p = KeepAlivePolicy(300)
    for t in (0, 5, 900, 910, 2000, 2001):
        p.observe("bursty", t)
    assert p.keepalive_s("bursty") == 300
    q = KeepAlivePolicy(300)
    for i in range(10):
        q.observe("busy", i * 1.0)
    assert q.keepalive_s("busy") == 300  # never below the base


def test_adaptation_can_be_turned_off_and_forgotten() -> None:
    p = KeepAlivePolicy(300, adaptive=False)
    assert p.keepalive_s("x") == 300
    a = KeepAlivePolicy(300)
    for i in range(5):
        a.observe("f", i * 600.0)
    a.forget("f")
    assert a.keepalive_s("f") == 150
