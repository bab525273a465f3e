"""LogWriter.durable: a barrier that returns once the lines appended so far are committed,
shared by every waiter of one commit (group commit), and that says when lines were lost."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from firebox.observe.logs import LogsNotWritten, LogWriter
from firebox.store.logs.base import Event
from firebox.store.logs.sqlite import SqliteLogStore


class CountingStore(SqliteLogStore):
    """The real store; counts commits, and holds each one until its gate (if any) opens."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.commits = 0
        self.fail = False
        self.gates: list[threading.Event] = []
        self.entered = threading.Semaphore(0)

    def append_batch(self, batch: Mapping[tuple[str, str], Sequence[Event]]) -> None:
        if self.gates:
            gate = self.gates.pop(0)
            self.entered.release()
            assert gate.wait(10)
        if self.fail:
            raise OSError("disk full")
        super().append_batch(batch)
        self.commits += 1


def messages(store: SqliteLogStore, stream: str) -> list[str]:
    try:
        return [e.message for e in store.read("g", stream, None, None, None, True, 1000)]
    except KeyError:
        return []


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path / "logs.db")


async def test_durable_returns_once_the_lines_are_stored_well_before_the_interval(
    store: CountingStore,
) -> None:
    # An interval no test would wait for: only the barrier can get the lines written.
    writer = LogWriter(store, flush_interval_s=3600)
    task = asyncio.create_task(writer.run())
    try:
        writer.append("g", "s", [(1, "hello")])
        assert messages(store, "s") == []
        await asyncio.wait_for(writer.durable(), 10)
        assert messages(store, "s") == ["hello"]
    finally:
        task.cancel()


async def test_durable_with_nothing_pending_does_not_wait_for_a_commit(
    store: CountingStore,
) -> None:
    writer = LogWriter(store, flush_interval_s=3600)
    await asyncio.wait_for(writer.durable(), 1)  # no run() task: it must not need one
    assert store.commits == 0


async def test_waiters_of_many_invocations_share_one_commit(store: CountingStore) -> None:
    writer = LogWriter(store, flush_interval_s=3600)
    task = asyncio.create_task(writer.run())
    try:
        for i in range(50):
            writer.append("g", f"s{i}", [(i, f"line {i}")])
        await asyncio.wait_for(asyncio.gather(*(writer.durable() for _ in range(50))), 10)
        assert store.commits == 1
        assert all(messages(store, f"s{i}") == [f"line {i}"] for i in range(50))
    finally:
        task.cancel()


async def test_lines_appended_during_a_commit_wait_for_the_next_one(
    store: CountingStore,
) -> None:
    writer = LogWriter(store, flush_interval_s=3600)
    task = asyncio.create_task(writer.run())
    try:
        gate1, gate2 = threading.Event(), threading.Event()
        store.gates = [gate1, gate2]
        writer.append("g", "s", [(1, "first")])
        first = asyncio.create_task(writer.durable())
        assert await asyncio.to_thread(store.entered.acquire, True, 10)  # commit 1 in flight
        writer.append("g", "s", [(2, "second")])
        second = asyncio.create_task(writer.durable())
        gate1.set()
        await asyncio.wait_for(first, 10)
        assert messages(store, "s") == ["first"]
        assert await asyncio.to_thread(store.entered.acquire, True, 10)  # commit 2 in flight
        assert not second.done()
        gate2.set()
        await asyncio.wait_for(second, 10)
        assert messages(store, "s") == ["first", "second"]
        assert store.commits == 2
    finally:
        task.cancel()


async def test_a_failed_write_is_reported_to_its_waiters_only(store: CountingStore) -> None:
    writer = LogWriter(store, flush_interval_s=3600)
    task = asyncio.create_task(writer.run())
    try:
        mark = writer.position()
        writer.append("g", "s", [(1, "lost")])
        store.fail = True
        with pytest.raises(LogsNotWritten):
            await asyncio.wait_for(writer.durable(since=mark), 10)
        # Asked again about the same lines, the answer stays: they are lost.
        with pytest.raises(LogsNotWritten):
            await asyncio.wait_for(writer.durable(since=mark), 10)
        # Lines appended after the failure are not tainted by it.
        store.fail = False
        mark = writer.position()
        writer.append("g", "s", [(2, "kept")])
        await asyncio.wait_for(writer.durable(since=mark), 10)
        assert messages(store, "s") == ["kept"]
    finally:
        task.cancel()


async def test_without_waiters_lines_still_reach_the_store_after_the_interval(
    store: CountingStore,
) -> None:
    writer = LogWriter(store, flush_interval_s=0.01)
    task = asyncio.create_task(writer.run())
    try:
        writer.append("g", "s", [(1, "buffered")])
        for _ in range(1000):
            if messages(store, "s"):
                break
            await asyncio.sleep(0.01)  # polling a condition, with a deadline
        assert messages(store, "s") == ["buffered"]
    finally:
        task.cancel()


async def test_waiters_that_may_wait_share_one_commit_and_an_urgent_one_pulls_it_in(
    store: CountingStore,
) -> None:
    writer = LogWriter(store, flush_interval_s=3600)
    task = asyncio.create_task(writer.run())
    try:
        writer.append("g", "s", [(1, "patient")])
        patient = asyncio.create_task(writer.durable(within_s=3600))
        for _ in range(20):
            await asyncio.sleep(0)  # the writer runs, and keeps waiting for its deadline
        assert not patient.done() and store.commits == 0
        writer.append("g", "s", [(2, "urgent")])
        await asyncio.wait_for(writer.durable(), 10)
        await asyncio.wait_for(patient, 10)
        assert store.commits == 1
        assert messages(store, "s") == ["patient", "urgent"]
    finally:
        task.cancel()
