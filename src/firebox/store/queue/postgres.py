"""The async event queue in PostgreSQL: for several Firebox nodes sharing one queue.

Pollers on every node claim with ``FOR UPDATE SKIP LOCKED``, so two nodes never take the
same event and neither waits on the other's locks. A claim is a lease: the row carries
the claiming node and becomes due again when the lease ends, so a node that dies loses
nothing. A node that restarts releases its own leases at once (its in-flight events are
void), exactly as the SQLite backend does for its single node.

A commit is durable when it returns (the server's synchronous_commit, on by default);
``put`` is one transaction however many events it carries. The tables are created by the
shared schema migrations (store/migrations/postgres/0002_queue.sql); connections come from
the node's one pool.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from firebox.store.postgres import PostgresDatabase
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


class PostgresEventQueue:
    def __init__(self, db: PostgresDatabase, node: str) -> None:
        self._db = db
        self.node = node
        with self._conn() as conn:
            conn.execute(
                "UPDATE firebox_events SET owner=NULL, due_at=%s WHERE owner=%s",
                (time.time(), node),
            )

    def _conn(self) -> Any:
        return self._db.connection()

    def _insert(self, cur: Any, events: Sequence[QueuedEvent]) -> None:
        if events:
            cur.executemany(
                "INSERT INTO firebox_events(request_id, function, qualifier, payload,"
                " enqueued_at, due_at, invoke_count, retries, throttles)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                [
                    (
                        e.request_id,
                        e.function,
                        e.qualifier,
                        e.payload,
                        e.enqueued_at,
                        e.enqueued_at,
                        e.invoke_count,
                        e.retries,
                        e.throttles,
                    )
                    for e in events
                ],
            )

    def _insert_dead(self, cur: Any, letters: Sequence[DeadLetter]) -> None:
        if letters:
            cur.executemany(
                "INSERT INTO firebox_dead_letters(request_id, function, qualifier, payload,"
                " enqueued_at, failed_at, reason, invoke_count, target, record)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
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

    def put(self, events: Sequence[QueuedEvent]) -> None:
        if not events:
            return
        with self._conn() as db, db.transaction(), db.cursor() as cur:
            self._insert(cur, events)

    def claim(self, limit: int, lease_s: float, now: float) -> list[QueuedEvent]:
        with self._conn() as db:
            rows = db.execute(
                "WITH due AS (SELECT seq FROM firebox_events WHERE due_at<=%s"
                " ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED)"
                " UPDATE firebox_events e SET owner=%s, due_at=%s FROM due"
                " WHERE e.seq=due.seq RETURNING "
                + ", ".join(f"e.{c.strip()}" for c in _EVENT_COLS.split(",")),
                (now, limit, self.node, now + lease_s),
            ).fetchall()
        return sorted((_event(r) for r in rows), key=lambda e: e.seq)

    def retry(self, event: QueuedEvent, due_at: float) -> None:
        with self._conn() as db:
            db.execute(
                "UPDATE firebox_events SET owner=NULL, due_at=%s, invoke_count=%s,"
                " retries=%s, throttles=%s WHERE seq=%s AND owner=%s",
                (due_at, event.invoke_count, event.retries, event.throttles, event.seq, self.node),
            )

    def complete(self, event: QueuedEvent, completion: Completion) -> None:
        with self._conn() as db, db.transaction(), db.cursor() as cur:
            cur.execute(
                "DELETE FROM firebox_events WHERE seq=%s AND owner=%s", (event.seq, self.node)
            )
            # Only the holder of the lease acts on the event (it may have expired and been
            # taken by another node, or been discarded).
            if cur.rowcount == 1:
                self._insert(cur, completion.follow_ups)
                self._insert_dead(cur, completion.dead_letters)

    def next_due(self) -> float | None:
        with self._conn() as db:
            row = db.execute("SELECT MIN(due_at) FROM firebox_events").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def discard_function(self, name: str, reason: str, now: float) -> int:
        with self._conn() as db, db.transaction(), db.cursor() as cur:
            cur.execute(
                "WITH gone AS (DELETE FROM firebox_events WHERE function=%s RETURNING *)"
                " INSERT INTO firebox_dead_letters(request_id, function, qualifier, payload,"
                " enqueued_at, failed_at, reason, invoke_count, target, record)"
                " SELECT request_id, function, qualifier, payload, enqueued_at, %s, %s,"
                " invoke_count, '', '' FROM gone ORDER BY seq",
                (name, now, reason),
            )
            return int(cur.rowcount)

    def dead_letters(self, function: str | None = None, limit: int = 100) -> list[DeadLetter]:
        sql = (
            "SELECT request_id, function, qualifier, payload, enqueued_at, failed_at, reason,"
            " invoke_count, target, record FROM firebox_dead_letters"
        )
        args: list[object] = []
        if function is not None:
            sql += " WHERE function=%s"
            args.append(function)
        sql += " ORDER BY seq DESC LIMIT %s"
        args.append(limit)
        with self._conn() as db:
            rows = db.execute(sql, args).fetchall()
        return [
            DeadLetter(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6], r[7], r[8], r[9])
            for r in rows
        ]

    def stats(self, now: float) -> dict[str, FunctionQueueStats]:
        with self._conn() as db:
            queued = db.execute(
                "SELECT function, COUNT(*), MIN(enqueued_at), COUNT(owner) FROM firebox_events"
                " GROUP BY function"
            ).fetchall()
            dead: dict[str, int] = dict(
                db.execute(
                    "SELECT function, COUNT(*) FROM firebox_dead_letters GROUP BY function"
                ).fetchall()
            )
        out: dict[str, FunctionQueueStats] = {}
        for fn, depth, oldest, leased in queued:
            out[fn] = FunctionQueueStats(
                int(depth), max(0.0, now - oldest), int(leased), int(dead.pop(fn, 0))
            )
        for fn, count in dead.items():
            out[fn] = FunctionQueueStats(dead_lettered=int(count))
        return out

    def close(self) -> None:
        """The database is closed by its owner."""
