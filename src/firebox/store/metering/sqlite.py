"""Usage totals in SQLite in the data dir: the zero-setup default."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from firebox.store.metering.base import Key, Totals
from firebox.store.migrations import migrate_sqlite
from firebox.store.private import connect_private


class SqliteUsageStore:
    def __init__(self, path: Path) -> None:
        self._db = connect_private(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        migrate_sqlite(self._db, "metering")
        self._lock = threading.Lock()

    def add(self, batch: Mapping[Key, Totals]) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO usage (day, function, requests, billed_ms, mb_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, function) DO UPDATE SET "
                "requests = requests + excluded.requests, "
                "billed_ms = billed_ms + excluded.billed_ms, mb_ms = mb_ms + excluded.mb_ms",
                [(d, f, t.requests, t.billed_ms, t.mb_ms) for (d, f), t in batch.items()],
            )

    def read(self, since: str, until: str, function: str | None) -> list[tuple[Key, Totals]]:
        sql = (
            "SELECT day, function, requests, billed_ms, mb_ms FROM usage "
            "WHERE day >= ? AND day <= ?"
        )
        args: list[Any] = [since, until]
        if function is not None:
            sql += " AND function = ?"
            args.append(function)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [((d, f), Totals(r, b, m)) for d, f, r, b, m in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
