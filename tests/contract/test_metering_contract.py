"""The usage store contract, over every backend (SQLite in a data dir; PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backends import opener as backend_opener

from firebox.store.metering.base import Totals, UsageStore

Opener = Callable[[], UsageStore]


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    from firebox.store.metering.postgres import PostgresUsageStore
    from firebox.store.metering.sqlite import SqliteUsageStore

    with backend_opener(
        request.param,
        tmp_path,
        lambda d: SqliteUsageStore(d / "metering.db"),
        PostgresUsageStore,
    ) as open_store:
        yield open_store


def test_totals_add_up_per_day_and_function(opener: Opener) -> None:
    store = opener()
    store.add({("2026-01-01", "f"): Totals(1, 10, 1280), ("2026-01-02", "f"): Totals(2, 5, 640)})
    store.add({("2026-01-01", "f"): Totals(3, 30, 3840), ("2026-01-01", "g"): Totals(1, 1, 128)})
    store.add({})
    rows = dict(store.read("2026-01-01", "2026-01-01", None))
    assert rows == {
        ("2026-01-01", "f"): Totals(4, 40, 5120),
        ("2026-01-01", "g"): Totals(1, 1, 128),
    }
    assert dict(store.read("2026-01-01", "9999-12-31", "f")) == {
        ("2026-01-01", "f"): Totals(4, 40, 5120),
        ("2026-01-02", "f"): Totals(2, 5, 640),
    }
    assert store.read("2026-01-03", "2026-12-31", None) == []


def test_two_stores_adding_at_once_lose_nothing(opener: Opener) -> None:
    stores = [opener(), opener()]

    def add(s: UsageStore) -> None:
        for _ in range(20):
            s.add({("2026-01-01", "f"): Totals(1, 2, 256), ("2026-01-01", "g"): Totals(1, 1, 128)})

    threads = [threading.Thread(target=add, args=(stores[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = dict(stores[0].read("2026-01-01", "2026-01-01", None))
    assert rows[("2026-01-01", "f")] == Totals(80, 160, 20480)
    assert rows[("2026-01-01", "g")] == Totals(80, 80, 10240)


def test_totals_survive_reopening(opener: Opener) -> None:
    first = opener()
    first.add({("2026-01-01", "f"): Totals(1, 100, 12800)})
    first.close()
    assert opener().read("2026-01-01", "2026-01-01", "f") == [
        (("2026-01-01", "f"), Totals(1, 100, 12800))
    ]
