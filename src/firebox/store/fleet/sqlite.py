"""The registry, leases and reservations of a one-node fleet, in SQLite in the data dir.

The same calls as the PostgreSQL backend, so a single machine runs the code a fleet
runs. The clock is this machine's. Coordination state is worth little after a crash
(leases and reservations expire anyway), so writes are not synced.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from firebox.store.fleet.base import Lease, Worker, WorkerState
from firebox.store.migrations import migrate_sqlite
from firebox.store.private import connect_private


class _File:
    """One connection behind one lock, shared by the three stores."""

    def __init__(self, path: Path) -> None:
        self.db = connect_private(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        migrate_sqlite(self.db, "fleet")
        self.lock = threading.Lock()

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, args)


class SqliteWorkerRegistry:
    def __init__(self, f: _File) -> None:
        self._f = f

    def register(self, node_id: str, address: str, capacity: int) -> None:
        with self._f.lock:
            self._f.execute(
                "INSERT INTO workers (node_id, address, capacity, free, state, heartbeat_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node_id) DO UPDATE SET"
                " address = excluded.address, capacity = excluded.capacity,"
                " free = excluded.free, state = excluded.state,"
                " heartbeat_at = excluded.heartbeat_at",
                (node_id, address, capacity, capacity, WorkerState.ACTIVE.value, time.time()),
            )

    def heartbeat(
        self, node_id: str, capacity: int | None = None, free: int | None = None
    ) -> WorkerState | None:
        with self._f.lock:
            row = self._f.execute(
                "UPDATE workers SET heartbeat_at = ?, capacity = coalesce(?, capacity),"
                " free = coalesce(?, free) WHERE node_id = ? RETURNING state",
                (time.time(), capacity, free, node_id),
            ).fetchone()
        return None if row is None else WorkerState(row[0])

    def set_state(self, node_id: str, state: WorkerState) -> bool:
        with self._f.lock:
            cur = self._f.execute(
                "UPDATE workers SET state = ? WHERE node_id = ?", (state.value, node_id)
            )
            return cur.rowcount == 1

    def remove(self, node_id: str) -> bool:
        with self._f.lock:
            return (
                self._f.execute("DELETE FROM workers WHERE node_id = ?", (node_id,)).rowcount == 1
            )

    def workers(self, max_age_s: float | None = None) -> list[Worker]:
        now = time.time()
        oldest = now - max_age_s if max_age_s is not None else float("-inf")
        with self._f.lock:
            rows = self._f.execute(
                "SELECT node_id, address, capacity, state, heartbeat_at, free FROM workers"
                " WHERE heartbeat_at >= ? ORDER BY node_id",
                (oldest,),
            ).fetchall()
        return [
            Worker(n, a, c, WorkerState(s), h, max(0.0, now - h), f) for n, a, c, s, h, f in rows
        ]

    def sweep(self, max_age_s: float) -> list[str]:
        with self._f.lock:
            rows = self._f.execute(
                "DELETE FROM workers WHERE heartbeat_at < ? RETURNING node_id",
                (time.time() - max_age_s,),
            ).fetchall()
        return sorted(r[0] for r in rows)


class SqliteLeases:
    def __init__(self, f: _File) -> None:
        self._f = f

    def acquire(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        now = time.time()
        with self._f.lock:
            row = self._f.execute(
                "INSERT INTO leases (name, holder, expires_at, token) VALUES (?, ?, ?, 1)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " expires_at = excluded.expires_at,"
                " token = token + (leases.holder != excluded.holder)"
                " WHERE leases.holder = excluded.holder OR leases.expires_at <= ?"
                " RETURNING name, holder, expires_at, token",
                (name, holder, now + ttl_s, now),
            ).fetchone()
        return None if row is None else Lease(*row)

    def renew(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        with self._f.lock:
            row = self._f.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ?"
                " RETURNING name, holder, expires_at, token",
                (time.time() + ttl_s, name, holder),
            ).fetchone()
        return None if row is None else Lease(*row)

    def release(self, name: str, holder: str) -> bool:
        # The row stays (holder '' and expired) so that the next holder's token grows.
        with self._f.lock:
            cur = self._f.execute(
                "UPDATE leases SET holder = '', expires_at = 0 WHERE name = ? AND holder = ?",
                (name, holder),
            )
            return cur.rowcount == 1

    def get(self, name: str) -> Lease | None:
        with self._f.lock:
            row = self._f.execute(
                "SELECT name, holder, expires_at, token FROM leases"
                " WHERE name = ? AND expires_at > ?",
                (name, time.time()),
            ).fetchone()
        return None if row is None else Lease(*row)


class SqliteReservations:
    def __init__(self, f: _File) -> None:
        self._f = f

    def reserve(
        self, function: str, holder: str, ttl_s: float, *, limit: int, pool: str | None = None
    ) -> str | None:
        pool = function if pool is None else pool
        now = time.time()
        rid = uuid.uuid4().hex
        with self._f.lock:
            # Under the lock no other reserve can come between the count and the insert.
            self._f.execute(
                "DELETE FROM reservations WHERE pool = ? AND expires_at <= ?", (pool, now)
            )
            cur = self._f.execute(
                "INSERT INTO reservations (id, pool, function, holder, expires_at)"
                " SELECT ?, ?, ?, ?, ? WHERE (SELECT count(*) FROM reservations"
                " WHERE pool = ? AND expires_at > ?) < ?",
                (rid, pool, function, holder, now + ttl_s, pool, now, limit),
            )
            return rid if cur.rowcount == 1 else None

    def release(self, reservation_id: str) -> bool:
        with self._f.lock:
            cur = self._f.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
            return cur.rowcount == 1

    def renew_holder(self, holder: str, ttl_s: float) -> int:
        now = time.time()
        with self._f.lock:
            cur = self._f.execute(
                "UPDATE reservations SET expires_at = ? WHERE holder = ? AND expires_at > ?",
                (now + ttl_s, holder, now),
            )
            return cur.rowcount

    def release_holder(self, holder: str) -> int:
        with self._f.lock:
            return self._f.execute("DELETE FROM reservations WHERE holder = ?", (holder,)).rowcount

    def count(self, pool: str) -> int:
        with self._f.lock:
            row = self._f.execute(
                "SELECT count(*) FROM reservations WHERE pool = ? AND expires_at > ?",
                (pool, time.time()),
            ).fetchone()
        return int(row[0])

    def by_function(self) -> dict[str, int]:
        with self._f.lock:
            rows = self._f.execute(
                "SELECT function, count(*) FROM reservations WHERE expires_at > ?"
                " GROUP BY function ORDER BY function",
                (time.time(),),
            ).fetchall()
        return {f: int(n) for f, n in rows}


class SqliteFleet:
    def __init__(self, path: Path) -> None:
        self._file = _File(path)
        self.registry = SqliteWorkerRegistry(self._file)
        self.leases = SqliteLeases(self._file)
        self.reservations = SqliteReservations(self._file)

    def close(self) -> None:
        with self._file.lock:
            self._file.db.close()
