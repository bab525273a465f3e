"""The event-queue contract, over every backend (SQLite in a data dir; PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backends import opener as backend_opener

from firebox.store.queue.base import Completion, DeadLetter, EventQueue, QueuedEvent

Opener = Callable[[], EventQueue]


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the same queue again each time it is called (as a restarted server would)."""
    from firebox.store.queue.postgres import PostgresEventQueue
    from firebox.store.queue.sqlite import SqliteEventQueue

    with backend_opener(
        request.param,
        tmp_path,
        lambda d: SqliteEventQueue(d / "queue.db"),
        lambda db: PostgresEventQueue(db, "node-a"),
    ) as open_queue:
        yield open_queue


def ev(rid: str, fn: str = "f", at: float | None = None) -> QueuedEvent:
    return QueuedEvent(rid, fn, None, b'{"k": "' + rid.encode() + b'"}', at or time.time())


def test_claim_retry_complete(opener: Opener) -> None:
    q = opener()
    q.put([ev("a"), ev("b"), ev("c", "g")])
    now = time.time()
    claimed = q.claim(2, 960.0, now)
    assert [e.request_id for e in claimed] == ["a", "b"]
    assert claimed[0].payload == b'{"k": "a"}'
    # Leased events are not handed out again.
    assert [e.request_id for e in q.claim(10, 960.0, now)] == ["c"]
    assert q.claim(10, 960.0, now) == []

    a, b = claimed
    a.invoke_count, a.retries = 1, 1
    q.retry(a, now + 0.2)
    assert q.claim(10, 960.0, now) == []
    (again,) = q.claim(10, 960.0, now + 0.3)
    assert (again.request_id, again.invoke_count, again.retries) == ("a", 1, 1)

    dead = DeadLetter("b", "f", None, b"{}", b.enqueued_at, now, "RetriesExhausted", 3)
    q.complete(b, Completion([ev("rec", "sink")], [dead]))
    stats = q.stats(time.time())
    assert stats["f"].depth == 1 and stats["f"].in_flight == 1 and stats["f"].dead_lettered == 1
    assert stats["sink"].depth == 1
    assert [d.request_id for d in q.dead_letters("f")] == ["b"]
    q.close()


def test_leases_of_a_dead_process_are_released_on_reopen(opener: Opener) -> None:
    q = opener()
    q.put([ev("x")])
    assert len(q.claim(1, 960.0, time.time())) == 1
    q.close()  # as if killed mid-invoke
    q = opener()
    (back,) = q.claim(1, 960.0, time.time())
    assert back.request_id == "x"
    q.close()


def test_discard_function_moves_its_events_to_dead_letters(opener: Opener) -> None:
    q = opener()
    q.put([ev("1", "gone"), ev("2", "gone"), ev("3", "kept")])
    assert q.discard_function("gone", "FunctionDeleted", time.time()) == 2
    stats = q.stats(time.time())
    assert "gone" in stats and stats["gone"].depth == 0 and stats["gone"].dead_lettered == 2
    assert {d.reason for d in q.dead_letters("gone")} == {"FunctionDeleted"}
    assert [e.request_id for e in q.claim(10, 960.0, time.time())] == ["3"]
    q.close()


def test_next_due_and_oldest_age(opener: Opener) -> None:
    q = opener()
    assert q.next_due() is None
    old = time.time() - 30
    q.put([ev("old", at=old)])
    due = q.next_due()
    assert due is not None and abs(due - old) < 0.01
    assert q.stats(time.time())["f"].oldest_age_s >= 29.9
    q.close()
