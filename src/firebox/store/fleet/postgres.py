"""The worker registry, leases and concurrency reservations of a fleet, in PostgreSQL.

Every time is the database's (``clock_timestamp()``), so nodes whose clocks disagree
still agree on who holds a lease and which reservations have expired.
"""

from __future__ import annotations

import hashlib
import uuid

from firebox.store.fleet.base import Lease, Worker, WorkerState
from firebox.store.postgres import PostgresDatabase

_NOW = "extract(epoch FROM clock_timestamp())::double precision"


def _lock_key(pool: str) -> int:
    # A 64-bit advisory lock key per pool (a collision only serialises two pools).
    return int.from_bytes(
        hashlib.blake2b(pool.encode(), digest_size=8).digest(), "big", signed=True
    )


class PostgresWorkerRegistry:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def register(self, node_id: str, address: str, capacity: int) -> None:
        with self._db.connection() as conn:
            conn.execute(
                "INSERT INTO firebox_workers"
                " (node_id, address, capacity, free, state, heartbeat_at)"
                f" VALUES (%s, %s, %s, %s, %s, {_NOW}) ON CONFLICT (node_id) DO UPDATE SET"
                " address = excluded.address, capacity = excluded.capacity,"
                " free = excluded.free, state = excluded.state,"
                " heartbeat_at = excluded.heartbeat_at",
                (node_id, address, capacity, capacity, WorkerState.ACTIVE.value),
            )

    def heartbeat(
        self, node_id: str, capacity: int | None = None, free: int | None = None
    ) -> WorkerState | None:
        with self._db.connection() as conn:
            row = conn.execute(
                f"UPDATE firebox_workers SET heartbeat_at = {_NOW},"
                " capacity = coalesce(%s, capacity), free = coalesce(%s, free)"
                " WHERE node_id = %s RETURNING state",
                (capacity, free, node_id),
            ).fetchone()
        return None if row is None else WorkerState(row[0])

    def set_state(self, node_id: str, state: WorkerState) -> bool:
        with self._db.connection() as conn:
            cur = conn.execute(
                "UPDATE firebox_workers SET state = %s WHERE node_id = %s", (state.value, node_id)
            )
            return cur.rowcount == 1

    def remove(self, node_id: str) -> bool:
        with self._db.connection() as conn:
            cur = conn.execute("DELETE FROM firebox_workers WHERE node_id = %s", (node_id,))
            return cur.rowcount == 1

    def workers(self, max_age_s: float | None = None) -> list[Worker]:
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT node_id, address, capacity, state, heartbeat_at, age, free FROM"
                f" (SELECT *, {_NOW} - heartbeat_at AS age FROM firebox_workers) w"
                " WHERE %s::double precision IS NULL OR age <= %s ORDER BY node_id",
                (max_age_s, max_age_s),
            ).fetchall()
        return [
            Worker(n, a, c, WorkerState(s), h, max(0.0, age), f) for n, a, c, s, h, age, f in rows
        ]

    def sweep(self, max_age_s: float) -> list[str]:
        with self._db.connection() as conn:
            rows = conn.execute(
                f"DELETE FROM firebox_workers WHERE heartbeat_at < {_NOW} - %s RETURNING node_id",
                (max_age_s,),
            ).fetchall()
        return sorted(r[0] for r in rows)


class PostgresLeases:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def acquire(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        # One statement: the row lock ON CONFLICT takes decides between two acquirers.
        with self._db.connection() as conn:
            row = conn.execute(
                "INSERT INTO firebox_leases AS l (name, holder, expires_at, token)"
                f" VALUES (%s, %s, {_NOW} + %s, 1) ON CONFLICT (name) DO UPDATE SET"
                " holder = excluded.holder, expires_at = excluded.expires_at,"
                " token = l.token + CASE WHEN l.holder = excluded.holder THEN 0 ELSE 1 END"
                f" WHERE l.holder = excluded.holder OR l.expires_at <= {_NOW}"
                " RETURNING name, holder, expires_at, token",
                (name, holder, ttl_s),
            ).fetchone()
        return None if row is None else Lease(*row)

    def renew(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        with self._db.connection() as conn:
            row = conn.execute(
                f"UPDATE firebox_leases SET expires_at = {_NOW} + %s"
                " WHERE name = %s AND holder = %s RETURNING name, holder, expires_at, token",
                (ttl_s, name, holder),
            ).fetchone()
        return None if row is None else Lease(*row)

    def release(self, name: str, holder: str) -> bool:
        # The row stays (holder '' and expired) so that the next holder's token grows.
        with self._db.connection() as conn:
            cur = conn.execute(
                "UPDATE firebox_leases SET holder = '', expires_at = 0"
                " WHERE name = %s AND holder = %s",
                (name, holder),
            )
            return cur.rowcount == 1

    def get(self, name: str) -> Lease | None:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT name, holder, expires_at, token FROM firebox_leases"
                f" WHERE name = %s AND expires_at > {_NOW}",
                (name,),
            ).fetchone()
        return None if row is None else Lease(*row)


class PostgresReservations:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def reserve(
        self, function: str, holder: str, ttl_s: float, *, limit: int, pool: str | None = None
    ) -> str | None:
        pool = function if pool is None else pool
        rid = uuid.uuid4().hex
        with self._db.connection() as conn, conn.transaction():
            # Reservers of one pool take turns: READ COMMITTED alone would let two of them
            # count the same n < limit and both insert.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(pool),))
            conn.execute(
                f"DELETE FROM firebox_reservations WHERE pool = %s AND expires_at <= {_NOW}",
                (pool,),
            )
            cur = conn.execute(
                "INSERT INTO firebox_reservations (id, pool, function, holder, expires_at)"
                f" SELECT %s, %s, %s, %s, {_NOW} + %s"
                " WHERE (SELECT count(*) FROM firebox_reservations WHERE pool = %s) < %s",
                (rid, pool, function, holder, ttl_s, pool, limit),
            )
            return rid if cur.rowcount == 1 else None

    def release(self, reservation_id: str) -> bool:
        with self._db.connection() as conn:
            cur = conn.execute("DELETE FROM firebox_reservations WHERE id = %s", (reservation_id,))
            return cur.rowcount == 1

    def renew_holder(self, holder: str, ttl_s: float) -> int:
        with self._db.connection() as conn:
            cur = conn.execute(
                f"UPDATE firebox_reservations SET expires_at = {_NOW} + %s"
                f" WHERE holder = %s AND expires_at > {_NOW}",
                (ttl_s, holder),
            )
            return cur.rowcount

    def release_holder(self, holder: str) -> int:
        with self._db.connection() as conn:
            cur = conn.execute("DELETE FROM firebox_reservations WHERE holder = %s", (holder,))
            return cur.rowcount

    def count(self, pool: str) -> int:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM firebox_reservations"
                f" WHERE pool = %s AND expires_at > {_NOW}",
                (pool,),
            ).fetchone()
        return int(row[0])

    def by_function(self) -> dict[str, int]:
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT function, count(*) FROM firebox_reservations"
                f" WHERE expires_at > {_NOW} GROUP BY function ORDER BY function"
            ).fetchall()
        return {f: int(n) for f, n in rows}


class PostgresFleet:
    def __init__(self, db: PostgresDatabase) -> None:
        self.registry = PostgresWorkerRegistry(db)
        self.leases = PostgresLeases(db)
        self.reservations = PostgresReservations(db)

    def close(self) -> None:
        """The database is closed by its owner."""
