"""The metadata store contract, over every backend (SQLite in a data dir; PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firebox.store.metadata.base import Delete, DeletePrefix, MetadataStore, Put
from firebox.store.metadata.feed import EVERYTHING, Change
from services import fresh_database, missing_service, postgres_problem

Opener = Callable[[], MetadataStore]


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a store on the same data each time it is called (another process or node)."""
    opened: list[MetadataStore] = []
    if request.param == "sqlite":
        from firebox.store.metadata.sqlite import SqliteMetadataStore

        def open_sqlite() -> MetadataStore:
            opened.append(SqliteMetadataStore(tmp_path / "metadata.db"))
            return opened[-1]

        yield open_sqlite
    else:
        if postgres_problem():
            missing_service(postgres_problem() or "")
        from firebox.store.metadata.postgres import PostgresMetadataStore
        from firebox.store.postgres import PostgresDatabase

        with fresh_database() as url:
            dbs: list[PostgresDatabase] = []

            def open_postgres() -> MetadataStore:
                dbs.append(PostgresDatabase(url))
                opened.append(PostgresMetadataStore(dbs[-1]))
                return opened[-1]

            yield open_postgres
            for store in opened:
                store.close()
            for db in dbs:
                db.close()
            return
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Opener) -> MetadataStore:
    return opener()


def test_put_get_insert_delete(store: MetadataStore) -> None:
    assert store.get("function", "f") is None
    store.put("function", "f", {"a": 1, "nested": {"b": [1, "x"]}, "nul": "\x00é"})
    assert store.get("function", "f") == {"a": 1, "nested": {"b": [1, "x"]}, "nul": "\x00é"}
    store.put("function", "f", {"a": 2})
    assert store.get("function", "f") == {"a": 2}
    assert store.get("version", "f") is None  # kinds are separate namespaces
    assert store.insert("function", "f", {"a": 3}) is False
    assert store.get("function", "f") == {"a": 2}
    assert store.insert("function", "g", {"a": 4}) is True
    assert store.delete("function", "f") is True
    assert store.delete("function", "f") is False
    assert store.get("function", "f") is None


def test_list_orders_keys_by_code_point_with_prefix_after_and_limit(store: MetadataStore) -> None:
    keys = ["a/2", "a/10", "a/1", "a", "b/1", "A/1", "a/é", "a/z", "a/\U0001f600", "ab/1"]
    for k in keys:
        store.put("k", k, {"k": k})
    store.put("other", "a/0", {})
    every = [k for k, _ in store.list("k")]
    assert every == sorted(keys)  # Python sorts str by code point, as the API pages
    assert [k for k, _ in store.list("k", prefix="a/")] == sorted(
        k for k in keys if k.startswith("a/")
    )
    assert [k for k, _ in store.list("k", prefix="a/", after="a/2")] == ["a/z", "a/é", "a/😀"]
    assert [k for k, _ in store.list("k", prefix="a/", limit=2)] == ["a/1", "a/10"]
    # An "after" below the prefix does not reach outside it.
    assert [k for k, _ in store.list("k", prefix="b/", after="a")] == ["b/1"]
    assert store.list("k", prefix="a/", after="a/😀") == []
    assert store.list("k", prefix="zz") == []
    assert dict(store.list("k", prefix="b/")) == {"b/1": {"k": "b/1"}}


def test_batch_applies_every_write_or_none(store: MetadataStore) -> None:
    store.put("version", "f/1", {"v": 1})
    store.put("version", "f/2", {"v": 2})
    store.put("version", "g/1", {"v": 1})
    store.batch(
        [
            Put("function", "f", {"n": 1}),
            DeletePrefix("version", "f/"),
            Put("version", "f/3", {"v": 3}),
            Delete("version", "g/1"),
        ]
    )
    assert store.get("function", "f") == {"n": 1}
    assert [k for k, _ in store.list("version")] == ["f/3"]

    # A write that fails halfway (a document JSON cannot hold) leaves nothing of the batch.
    with pytest.raises(TypeError):
        store.batch(
            [
                Put("function", "f", {"n": 2}),
                Delete("version", "f/3"),
                Put("function", "bad", {"x": object()}),
            ]
        )
    assert store.get("function", "f") == {"n": 1}
    assert store.get("version", "f/3") == {"v": 3}
    assert store.get("function", "bad") is None


def test_counters_are_atomic_across_threads_and_stores(opener: Opener) -> None:
    stores = [opener(), opener()]
    assert stores[0].next_counter("c") == 1
    got: list[int] = []
    lock = threading.Lock()

    def bump(s: MetadataStore) -> None:
        for _ in range(25):
            n = s.next_counter("c")
            with lock:
                got.append(n)

    threads = [threading.Thread(target=bump, args=(stores[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(2, 102))
    assert stores[1].next_counter("other") == 1


def test_two_stores_on_the_same_data_see_each_others_writes(opener: Opener) -> None:
    a, b = opener(), opener()
    a.put("function", "f", {"from": "a"})
    assert b.get("function", "f") == {"from": "a"}
    assert b.insert("function", "f", {"from": "b"}) is False
    b.batch([Put("alias", "f/live", {"from": "b"}), Delete("function", "f")])
    assert a.get("function", "f") is None
    assert a.list("alias") == [("f/live", {"from": "b"})]


def test_reopened_store_keeps_everything(opener: Opener) -> None:
    first = opener()
    first.put("function", "f", {"x": 1})
    first.next_counter("c")
    first.close()
    again = opener()
    assert again.get("function", "f") == {"x": 1}
    assert again.next_counter("c") == 2


def test_change_feed_tells_subscribers_of_each_committed_write(store: MetadataStore) -> None:
    seen: list[Change] = []
    arrived = threading.Condition()

    def on_change(change: Change) -> None:
        with arrived:
            seen.append(change)
            arrived.notify_all()

    unsubscribe = store.subscribe(on_change)
    store.put("function", "f", {})
    store.insert("function", "f", {})  # no write: no change
    store.insert("alias", "f/a", {})
    store.batch([DeletePrefix("version", "f/"), Delete("function", "gone")])
    store.delete("alias", "f/a")
    store.delete("alias", "f/a")  # nothing deleted: no change
    expected = [
        Change("function", "f"),
        Change("alias", "f/a"),
        Change("version", "f/", prefix=True),
        Change("function", "gone"),
        Change("alias", "f/a"),
    ]
    with arrived:
        assert arrived.wait_for(lambda: len(seen) >= len(expected), timeout=5)
    assert seen == expected
    unsubscribe()
    store.put("function", "after", {})
    # A marker through a second subscriber shows the first one hears nothing more.
    marker: list[Change] = []
    store.subscribe(lambda c: marker.append(c))
    store.put("function", "marker", {})
    deadline = time.monotonic() + 5
    while not marker and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker and seen == expected


async def test_watch_yields_the_stores_own_writes(store: MetadataStore) -> None:
    async with store.watch() as changes:
        await asyncio.to_thread(store.put, "function", "f", {})
        await asyncio.to_thread(store.batch, [Delete("function", "f"), Put("alias", "f/a", {})])
        got = [await changes.get(timeout_s=5) for _ in range(3)]
    assert got == [Change("function", "f"), Change("function", "f"), Change("alias", "f/a")]


@pytest.fixture(params=["sqlite-shared", "postgres"])
def two_nodes(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[MetadataStore, MetadataStore]]:
    """Two stores on the same data, as two processes (``--processes``, SQLite shared in a
    data dir) or two nodes (PostgreSQL, pools and listeners of their own) have them."""
    if request.param == "sqlite-shared":
        from firebox.store.metadata.sqlite import SqliteMetadataStore

        pair = [SqliteMetadataStore(tmp_path / "metadata.db", shared=True) for _ in range(2)]
        yield pair[0], pair[1]
        for s in pair:
            s.close()
        return
    yield from _two_pg_nodes(request.getfixturevalue("pg_url"))


@pytest.fixture
def two_pg_nodes(pg_url: str) -> Iterator[tuple[MetadataStore, MetadataStore]]:
    yield from _two_pg_nodes(pg_url)


def _two_pg_nodes(pg_url: str) -> Iterator[tuple[MetadataStore, MetadataStore]]:
    """Two PostgreSQL stores with pools and listeners of their own: two nodes."""
    from firebox.store.metadata.postgres import PostgresMetadataStore
    from firebox.store.postgres import PostgresDatabase

    dbs = [PostgresDatabase(pg_url), PostgresDatabase(pg_url)]
    stores = [PostgresMetadataStore(db) for db in dbs]
    yield stores[0], stores[1]
    for s, db in zip(stores, dbs, strict=True):
        s.close()
        db.close()


async def test_change_feed_delivers_another_nodes_write_within_a_second(
    two_nodes: tuple[MetadataStore, MetadataStore],
) -> None:
    watcher, writer = two_nodes
    async with watcher.watch() as changes:
        for i in range(3):
            began = time.monotonic()
            await asyncio.to_thread(writer.put, "function", f"f{i}", {"i": i})
            assert await changes.get(timeout_s=1.0) == Change("function", f"f{i}")
            assert time.monotonic() - began < 1.0
            # Each change arrives once, not again from the table the writer also fills.
            # What the change announces is readable on the watching node at once.
            assert watcher.get("function", f"f{i}") == {"i": i}
        # A batch rolled back announces nothing; the next write arrives next.
        with pytest.raises(TypeError):
            await asyncio.to_thread(writer.batch, [Put("function", "x", {"o": object()})])
        await asyncio.to_thread(writer.delete, "function", "f0")
        assert await changes.get(timeout_s=1.0) == Change("function", "f0")


async def test_change_feed_says_everything_after_losing_its_connection(
    two_pg_nodes: tuple[MetadataStore, MetadataStore], pg_url: str
) -> None:
    import psycopg

    watcher, writer = two_pg_nodes
    async with watcher.watch() as changes:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            # Every LISTEN connection on this test's database: both nodes' listeners.
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
            ).fetchall()
        assert len(killed) == 2
        # Notifications may have been missed while it was away: caches must drop it all.
        assert await changes.get(timeout_s=10) == EVERYTHING
        await asyncio.to_thread(writer.put, "function", "after", {})
        assert await changes.get(timeout_s=5) == Change("function", "after")


def test_change_covers() -> None:
    assert Change("function", "f").covers("function", "f")
    assert not Change("function", "f").covers("function", "f2")
    assert not Change("function", "f").covers("alias", "f")
    assert Change("version", "f/", prefix=True).covers("version", "f/0000000001")
    assert not Change("version", "f/", prefix=True).covers("version", "g/1")
    assert EVERYTHING.covers("anything", "at all")
