"""Usage totals in PostgreSQL: every node of a fleet adds to the same rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from firebox.store.metering.base import Key, Totals
from firebox.store.postgres import PostgresDatabase


class PostgresUsageStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def add(self, batch: Mapping[Key, Totals]) -> None:
        if not batch:
            return
        # Sorted: two nodes adding to the same rows lock them in the same order (no deadlock).
        rows = [(d, f, t.requests, t.billed_ms, t.mb_ms) for (d, f), t in sorted(batch.items())]
        with self._db.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO firebox_usage (day, function, requests, billed_ms, mb_ms)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (day, function) DO UPDATE SET"
                " requests = firebox_usage.requests + excluded.requests,"
                " billed_ms = firebox_usage.billed_ms + excluded.billed_ms,"
                " mb_ms = firebox_usage.mb_ms + excluded.mb_ms",
                rows,
            )

    def read(self, since: str, until: str, function: str | None) -> list[tuple[Key, Totals]]:
        sql = (
            "SELECT day, function, requests, billed_ms, mb_ms FROM firebox_usage"
            " WHERE day >= %s AND day <= %s"
        )
        args: list[Any] = [since, until]
        if function is not None:
            sql += " AND function = %s"
            args.append(function)
        with self._db.connection() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [((d, f), Totals(r, b, m)) for d, f, r, b, m in rows]

    def close(self) -> None:
        """The database is closed by its owner."""
