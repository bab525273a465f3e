"""The async event queue in SQLite (WAL) in the data dir: the zero-setup default.

Its own database file, so that a burst of events never waits on control-plane writes.
Only ``put`` must be synced before it returns (it backs the 202); every other write runs
with synchronous=NORMAL: in WAL mode a transaction is still atomic, and the next synced
``put`` (or checkpoint) carries it to disk. Losing one of those writes in a power cut only
replays a step: an event comes back, which at-least-once delivery allows.

One server owns the file, so the leases of a previous process are void: they are released
when the store opens, and events that were in flight when it died are due at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from firebox.store.migrations import migrate_sqlite
from firebox.store.private import connect_private
from firebox.store.queue.base import (
    Completion,
    DeadLetter,
    FunctionQueueStats,
    QueuedEvent,
)

_EVENT_COLS = (
    "seq, request_id, function, qualifier, payload, enqueued_at, invoke_count, retries, throttles"
)


def _event(row: tuple[Any, ...]) -> QueuedEvent:
    seq, rid, fn, q, payload, enq, count, retries, throttles = row
    return QueuedEvent(rid, fn, q, bytes(payload), enq, count, retries, throttles, seq)


class SqliteEventQueue:
    def __init__(self, path: Path, owner: str = "") -> None:
        # One connection, one lock: SQLite has a single writer anyway, and callers batch.
        self._db = connect_private(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        migrate_sqlite(self._db, "queue")
        self._lock = threading.Lock()
        # Leases of a previous process are void (see the module docstring). Processes that
        # share the file (--processes) each release only their own predecessor's: ``owner``
        # names the process (its index), and the others' leases stay theirs.
        self._owner = owner
        with self._lock:
            self._db.execute(
                "UPDATE events SET leased=0, due_at=? WHERE leased=1 AND owner=?",
                (time.time(), owner),
            )

    def _insert(self, events: Sequence[QueuedEvent], due_at: float | None = None) -> None:
        self._db.executemany(
            "INSERT INTO events(request_id, function, qualifier, payload, enqueued_at, due_at,"
            " invoke_count, retries, throttles) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    e.request_id,
                    e.function,
                    e.qualifier,
                    e.payload,
                    e.enqueued_at,
                    e.enqueued_at if due_at is None else due_at,
                    e.invoke_count,
                    e.retries,
                    e.throttles,
                )
                for e in events
            ],
        )

    def put(self, events: Sequence[QueuedEvent]) -> None:
        if not events:
            return
        with self._lock:
            # FULL for this commit only: the WAL is fsync'ed before COMMIT returns.
            self._db.execute("PRAGMA synchronous=FULL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._insert(events)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            finally:
                self._db.execute("PRAGMA synchronous=NORMAL")

    def claim(self, limit: int, lease_s: float, now: float) -> list[QueuedEvent]:
        with self._lock:
            rows = self._db.execute(
                f"UPDATE events SET leased=1, owner=?, due_at=? WHERE seq IN ("
                f" SELECT seq FROM events WHERE due_at<=? ORDER BY due_at LIMIT ?)"
                f" RETURNING {_EVENT_COLS}",
                (self._owner, now + lease_s, now, limit),
            ).fetchall()
        events = [_event(r) for r in rows]
        events.sort(key=lambda e: e.seq)
        return events

    def retry(self, event: QueuedEvent, due_at: float) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE events SET leased=0, due_at=?, invoke_count=?, retries=?, throttles=?"
                " WHERE seq=?",
                (due_at, event.invoke_count, event.retries, event.throttles, event.seq),
            )

    def complete(self, event: QueuedEvent, completion: Completion) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                gone = self._db.execute("DELETE FROM events WHERE seq=?", (event.seq,))
                # Only the holder of the row acts on it (it may have been discarded since).
                if gone.rowcount == 1:
                    self._insert(completion.follow_ups)
                    self._insert_dead(completion.dead_letters)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _insert_dead(self, letters: Sequence[DeadLetter]) -> None:
        self._db.executemany(
            "INSERT INTO dead_letters(request_id, function, qualifier, payload, enqueued_at,"
            " failed_at, reason, invoke_count, target, record) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    d.request_id,
                    d.function,
                    d.qualifier,
                    d.payload,
                    d.enqueued_at,
                    d.failed_at,
                    d.reason,
                    d.invoke_count,
                    d.target,
                    d.record,
                )
                for d in letters
            ],
        )

    def next_due(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(due_at) FROM events").fetchone()
        return None if row[0] is None else float(row[0])

    def discard_function(self, name: str, reason: str, now: float) -> int:
        with self._lock:
            self._db.execute("PRAGMA synchronous=FULL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute(
                        "INSERT INTO dead_letters(request_id, function, qualifier, payload,"
                        " enqueued_at, failed_at, reason, invoke_count, target, record)"
                        " SELECT request_id, function, qualifier, payload, enqueued_at, ?, ?,"
                        " invoke_count, '', '' FROM events WHERE function=? ORDER BY seq",
                        (now, reason, name),
                    )
                    moved = self._db.execute("DELETE FROM events WHERE function=?", (name,))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            finally:
                self._db.execute("PRAGMA synchronous=NORMAL")
        return int(moved.rowcount)

    def dead_letters(self, function: str | None = None, limit: int = 100) -> list[DeadLetter]:
        sql = (
            "SELECT request_id, function, qualifier, payload, enqueued_at, failed_at, reason,"
            " invoke_count, target, record FROM dead_letters"
        )
        args: list[object] = []
        if function is not None:
            sql += " WHERE function=?"
            args.append(function)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [
            DeadLetter(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6], r[7], r[8], r[9])
            for r in rows
        ]

    def stats(self, now: float) -> dict[str, FunctionQueueStats]:
        with self._lock:
            queued = self._db.execute(
                "SELECT function, COUNT(*), MIN(enqueued_at), SUM(leased) FROM events"
                " GROUP BY function"
            ).fetchall()
            dead = dict(
                self._db.execute(
                    "SELECT function, COUNT(*) FROM dead_letters GROUP BY function"
                ).fetchall()
            )
        out: dict[str, FunctionQueueStats] = {}
        for fn, depth, oldest, leased in queued:
            out[fn] = FunctionQueueStats(
                depth, max(0.0, now - oldest), int(leased or 0), int(dead.pop(fn, 0))
            )
        for fn, count in dead.items():
            out[fn] = FunctionQueueStats(dead_lettered=int(count))
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()
