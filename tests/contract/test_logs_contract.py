"""The log store contract, over every backend (SQLite in a data dir; PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firebox.store.logs.base import LogStore
from services import fresh_database, missing_service, postgres_problem

Opener = Callable[[], LogStore]
DAY_MS = 86_400_000


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[LogStore] = []
    closers: list[Callable[[], None]] = []
    if request.param == "sqlite":
        from firebox.store.logs.sqlite import SqliteLogStore

        def open_sqlite() -> LogStore:
            opened.append(SqliteLogStore(tmp_path / "logs.db"))
            return opened[-1]

        yield open_sqlite
    else:
        if postgres_problem():
            missing_service(postgres_problem() or "")
        from firebox.store.logs.postgres import PostgresLogStore
        from firebox.store.postgres import PostgresDatabase

        with fresh_database() as url:

            def open_postgres() -> LogStore:
                db = PostgresDatabase(url)
                closers.append(db.close)
                opened.append(PostgresLogStore(db))
                return opened[-1]

            yield open_postgres
            for store in opened:
                store.close()
            for close in closers:
                close()
            return
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Opener) -> LogStore:
    return opener()


def now_ms() -> int:
    return int(time.time() * 1000)


def test_append_creates_group_and_stream_and_reads_in_time_order(store: LogStore) -> None:
    t = now_ms()
    store.append("/aws/lambda/f", "s1", [(t + 2, "third"), (t, "first"), (t + 1, "second")])
    store.append("/aws/lambda/f", "s1", [(t + 1, "second again")])
    events = store.read("/aws/lambda/f", "s1", None, None, None, True, 100)
    assert [e.message for e in events] == ["first", "second", "second again", "third"]
    assert all(e.stream == "s1" for e in events)
    # Pages forward from a cursor, and backward (the newest page, still oldest first).
    page = store.read("/aws/lambda/f", "s1", None, None, events[1].cursor, True, 2)
    assert [e.message for e in page] == ["second again", "third"]
    back = store.read("/aws/lambda/f", "s1", None, None, None, False, 2)
    assert [e.message for e in back] == ["second again", "third"]
    before = store.read("/aws/lambda/f", "s1", None, None, back[0].cursor, False, 10)
    assert [e.message for e in before] == ["first", "second"]
    # start inclusive, end exclusive.
    assert [e.message for e in store.read("/aws/lambda/f", "s1", t + 1, t + 2, None, True, 10)] == [
        "second",
        "second again",
    ]
    (info,) = store.streams("/aws/lambda/f")
    assert (info.name, info.first_ts, info.last_ts) == ("s1", t, t + 2)
    sizes = sum(len(m.encode()) + 26 for m in ("first", "second", "third", "second again"))
    assert info.stored_bytes == sizes
    (group,) = store.groups("/aws/lambda/")
    assert (group.name, group.stored_bytes, group.retention_days) == ("/aws/lambda/f", sizes, None)


def test_append_batch_writes_many_streams_at_once_and_seen_by_another_connection(
    opener: Opener,
) -> None:
    store = opener()
    t = now_ms()
    store.append("/aws/lambda/f", "s1", [(t, "before")])
    store.append_batch(
        {
            ("/aws/lambda/f", "s1"): [(t + 1, "one")],
            ("/aws/lambda/f", "s2"): [(t + 2, "two"), (t + 3, "three")],
            ("/aws/lambda/g", "s1"): [(t + 4, "other group")],
            ("/aws/lambda/h", "s1"): [],  # nothing to write: not even a group
        }
    )
    # What append_batch returned from is committed: a second connection reads it.
    other = opener()
    assert [e.message for e in other.read("/aws/lambda/f", "s1", None, None, None, True, 10)] == [
        "before",
        "one",
    ]
    assert [e.message for e in other.read("/aws/lambda/f", "s2", None, None, None, True, 10)] == [
        "two",
        "three",
    ]
    assert [e.message for e in other.read("/aws/lambda/g", "s1", None, None, None, True, 10)] == [
        "other group"
    ]
    assert [g.name for g in other.groups("/aws/lambda/")] == ["/aws/lambda/f", "/aws/lambda/g"]
    s2 = next(i for i in other.streams("/aws/lambda/f") if i.name == "s2")
    assert (s2.first_ts, s2.last_ts, s2.stored_bytes) == (t + 2, t + 3, 3 + 26 + 5 + 26)
    # A stream or group deleted and written again starts afresh, batch after batch.
    assert store.delete_stream("/aws/lambda/f", "s2") is True
    assert store.delete_group("/aws/lambda/g") is True
    for n in range(2):
        store.append_batch(
            {("/aws/lambda/f", "s2"): [(t + 5, f"again {n}")], ("/aws/lambda/g", "s1"): [(t, "g")]}
        )
    assert [e.message for e in store.read("/aws/lambda/f", "s2", None, None, None, True, 10)] == [
        "again 0",
        "again 1",
    ]
    assert [e.message for e in store.read("/aws/lambda/g", "s1", None, None, None, True, 10)] == [
        "g",
        "g",
    ]


def test_messages_keep_every_character(store: LogStore) -> None:
    t = now_ms()
    odd = ["nul \x00 inside", "é ü 😀", "tab\tand\nnewline", ""]
    store.append("g", "s", [(t + i, m) for i, m in enumerate(odd)])
    assert [e.message for e in store.read("g", "s", None, None, None, True, 10)] == odd
    found, _ = store.filter("g", None, None, None, None, None, lambda m: True, 10, 100, ["\x00"])
    assert [e.message for e in found] == ["nul \x00 inside"]


def test_groups_streams_lifecycle_and_missing_ones(store: LogStore) -> None:
    assert store.create_group("/aws/lambda/a") is True
    assert store.create_group("/aws/lambda/a") is False
    store.create_group("/aws/lambda/B")
    store.create_group("/other")
    # Prefixes are case-sensitive; listing is in byte order.
    assert [g.name for g in store.groups("/aws/lambda/")] == ["/aws/lambda/B", "/aws/lambda/a"]
    assert [g.name for g in store.groups("/aws/lambda/b")] == []
    assert [g.name for g in store.groups("/aws/lambda_")] == []  # "_" is not a wildcard
    assert store.create_stream("/aws/lambda/a", "s") is True
    assert store.create_stream("/aws/lambda/a", "s") is False
    with pytest.raises(KeyError):
        store.create_stream("/missing", "s")
    with pytest.raises(KeyError):
        store.streams("/missing")
    with pytest.raises(KeyError):
        store.read("/aws/lambda/a", "missing", None, None, None, True, 10)
    store.append("/aws/lambda/a", "s", [(now_ms(), "x")])
    assert store.delete_stream("/aws/lambda/a", "s") is True
    assert store.delete_stream("/aws/lambda/a", "s") is False
    assert store.streams("/aws/lambda/a") == []
    assert store.delete_group("/aws/lambda/a") is True
    assert store.delete_group("/aws/lambda/a") is False
    # A group made again is empty: nothing of the old one comes back.
    store.append("/aws/lambda/a", "s", [(now_ms(), "new")])
    assert [e.message for e in store.read("/aws/lambda/a", "s", None, None, None, True, 10)] == [
        "new"
    ]


def test_tags(store: LogStore) -> None:
    store.create_group("g")
    assert store.tags("g") == {}
    assert store.set_tags("g", {"a": "1", "b": "2"}) == {"a": "1", "b": "2"}
    assert store.set_tags("g", {"c": "3"}, ["a"]) == {"b": "2", "c": "3"}
    assert store.tags("g") == {"b": "2", "c": "3"}
    with pytest.raises(KeyError):
        store.tags("missing")
    with pytest.raises(KeyError):
        store.set_tags("missing", {"a": "1"})


def test_retention_hides_and_sweep_deletes_old_events(store: LogStore) -> None:
    t = now_ms()
    old, recent = t - 3 * DAY_MS, t - 1000
    store.append("g", "s", [(old, "old"), (recent, "recent")])
    store.append("keep", "s", [(old, "kept")])
    assert store.set_retention("g", 1) is True
    assert store.set_retention("missing", 1) is False
    # Past retention is never returned, swept or not.
    assert [e.message for e in store.read("g", "s", None, None, None, True, 10)] == ["recent"]
    assert store.sweep(t) == 1
    (info,) = store.streams("g")
    assert info.first_ts == recent
    assert info.stored_bytes == len(b"recent") + 26
    assert [e.message for e in store.read("keep", "s", None, None, None, True, 10)] == ["kept"]


def test_filter_across_streams_pages_and_stops_at_the_scan_limit(store: LogStore) -> None:
    t = now_ms()
    store.append("g", "a", [(t + i, f"a{i} {'ERROR' if i % 2 else 'ok'}") for i in range(0, 10, 2)])
    store.append("g", "b", [(t + i, f"b{i} {'ERROR' if i % 3 else 'ok'}") for i in range(1, 10, 2)])
    store.append("g", "c-other", [(t + 100, "c ERROR")])

    def errors(m: str) -> bool:
        return "ERROR" in m

    found, resume = store.filter("g", None, None, None, None, None, errors, 3, 1000)
    assert [e.message for e in found] == ["b1 ERROR", "b5 ERROR", "b7 ERROR"]
    assert [e.stream for e in found] == ["b", "b", "b"]
    assert resume is not None
    rest, done = store.filter("g", None, None, None, None, resume, errors, 10, 1000)
    assert [e.message for e in rest] == ["c ERROR"] and done is None
    # Streams by name and by prefix; a time window (end inclusive here).
    by_name, _ = store.filter("g", ["a"], None, None, None, None, lambda m: True, 10, 100)
    assert [e.message for e in by_name] == [f"a{i} ok" for i in range(0, 10, 2)]
    by_prefix, _ = store.filter("g", None, "c-", None, None, None, lambda m: True, 10, 100)
    assert [e.message for e in by_prefix] == ["c ERROR"]
    window, _ = store.filter("g", None, None, t + 2, t + 4, None, lambda m: True, 10, 100)
    assert [e.message for e in window] == ["a2 ok", "b3 ok", "a4 ok"]
    # The scan stops after scan_limit events, telling where to go on.
    partial, cursor = store.filter("g", None, None, None, None, None, errors, 10, 4)
    assert [e.message for e in partial] == ["b1 ERROR"]
    assert cursor is not None and cursor[0] == t + 3
    # must_contain is a pre-filter the backend may apply: the result is the same.
    pre, _ = store.filter("g", None, None, None, None, None, errors, 10, 1000, ["b7"])
    assert [e.message for e in pre] == ["b7 ERROR"]
    assert store.filter("g", ["nope"], None, None, None, None, errors, 10, 100) == ([], None)
    with pytest.raises(KeyError):
        store.filter("missing", None, None, None, None, None, errors, 10, 100)


def test_two_stores_append_to_one_stream_at_once(opener: Opener) -> None:
    stores = [opener(), opener()]
    t = now_ms()

    def write(i: int) -> None:
        for n in range(20):
            stores[i].append("/aws/lambda/shared", "s", [(t + n, f"w{i}-{n}")])

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    events = stores[0].read("/aws/lambda/shared", "s", None, None, None, True, 100)
    assert sorted(e.message for e in events) == sorted(
        f"w{i}-{n}" for i in range(2) for n in range(20)
    )
    assert len({e.event_id for e in events}) == 40
    (info,) = stores[1].streams("/aws/lambda/shared")
    assert info.stored_bytes == sum(len(e.message) + 26 for e in events)


def test_filter_out_of_time_returns_a_page_and_where_to_go_on(store: LogStore) -> None:
    t = now_ms()
    store.append("g", "s", [(t + i, f"e{i}") for i in range(100)])
    seen: list[str] = []
    after = None
    for _ in range(20):
        page, after = store.filter(
            "g", None, None, None, None, after, lambda m: True, 1000, 10_000, budget_s=0.0
        )
        assert len(page) < 100  # the budget cut the search short
        seen += [e.message for e in page]
        if after is None:
            break
    assert seen == [f"e{i}" for i in range(100)]
