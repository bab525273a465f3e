"""Metering as Lambda bills: per invoke, billed duration (1 ms steps, rounded up) times the
configured memory, plus one request; totals per function per UTC day, priced.

Invokes add to in-memory totals; a background task writes them to SQLite in batches, so
the invoke path never touches the disk. Reports merge what is not yet written.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firebox.store.private import connect_private

if TYPE_CHECKING:
    from firebox.invoke.sync import InvokeRecord

log = logging.getLogger(__name__)

MB_MS_PER_GB_S = 1024 * 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL,
    function TEXT NOT NULL,
    requests INTEGER NOT NULL,
    billed_ms INTEGER NOT NULL,
    mb_ms INTEGER NOT NULL,
    PRIMARY KEY (day, function)
)
"""

Key = tuple[str, str]  # (day YYYY-MM-DD, function)


@dataclass(slots=True)
class Totals:
    requests: int = 0
    billed_ms: int = 0
    mb_ms: int = 0  # billed milliseconds x configured megabytes: exact, unlike GB-s

    def add(self, other: Totals) -> None:
        self.requests += other.requests
        self.billed_ms += other.billed_ms
        self.mb_ms += other.mb_ms


@dataclass(frozen=True, slots=True)
class Prices:
    per_gb_s: float
    per_million_requests: float


class Meter:
    def __init__(self, path: Path, prices: Prices) -> None:
        self.prices = prices
        self._db = connect_private(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self._pending: defaultdict[Key, Totals] = defaultdict(Totals)
        self._inflight: dict[Key, Totals] = {}

    def observe(self, rec: InvokeRecord) -> None:
        """An invoker observer. Throttled requests are not billed, as on Lambda."""
        if rec.status == "throttled":
            return
        day = datetime.fromtimestamp(rec.timestamp, UTC).date().isoformat()
        t = self._pending[(day, rec.function)]
        t.requests += 1
        t.billed_ms += rec.billed_ms
        t.mb_ms += rec.billed_ms * rec.memory_mb

    async def flush(self) -> None:
        if not self._pending or self._inflight:
            return
        self._inflight, self._pending = dict(self._pending), defaultdict(Totals)
        try:
            await asyncio.to_thread(self._write, self._inflight)
        except (sqlite3.Error, OSError):
            log.exception("writing usage totals failed; keeping them for the next flush")
            for key, t in self._inflight.items():
                self._pending[key].add(t)
        finally:
            self._inflight = {}

    def _write(self, batch: dict[Key, Totals]) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO usage (day, function, requests, billed_ms, mb_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, function) DO UPDATE SET "
                "requests = requests + excluded.requests, "
                "billed_ms = billed_ms + excluded.billed_ms, mb_ms = mb_ms + excluded.mb_ms",
                [(d, f, t.requests, t.billed_ms, t.mb_ms) for (d, f), t in batch.items()],
            )

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.flush()

    async def close(self) -> None:
        await self.flush()
        with self._lock:
            self._db.close()

    # --- reports ------------------------------------------------------------------

    def _unwritten(self) -> dict[Key, Totals]:
        out: defaultdict[Key, Totals] = defaultdict(Totals)
        for source in (self._inflight, self._pending):
            for key, t in source.items():
                out[key].add(t)
        return out

    def _read(self, since: str, until: str, function: str | None) -> list[tuple[Any, ...]]:
        sql = (
            "SELECT day, function, requests, billed_ms, mb_ms FROM usage "
            "WHERE day >= ? AND day <= ?"
        )
        args: list[Any] = [since, until]
        if function is not None:
            sql += " AND function = ?"
            args.append(function)
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    async def report(
        self, since: date, until: date | None = None, function: str | None = None
    ) -> dict[str, Any]:
        """Usage per function per day from ``since`` to ``until`` (inclusive, UTC)."""
        lo = since.isoformat()
        hi = (until or date.max).isoformat()
        unwritten = self._unwritten()  # on the loop, before the await: a consistent copy
        rows = await asyncio.to_thread(self._read, lo, hi, function)
        merged: defaultdict[Key, Totals] = defaultdict(Totals)
        for day, fn, requests, billed, mb_ms in rows:
            merged[(day, fn)].add(Totals(requests, billed, mb_ms))
        for (day, fn), t in unwritten.items():
            if lo <= day <= hi and (function is None or fn == function):
                merged[(day, fn)].add(t)
        per_function: defaultdict[str, Totals] = defaultdict(Totals)
        total = Totals()
        days = []
        for (day, fn), t in sorted(merged.items()):
            per_function[fn].add(t)
            total.add(t)
            days.append({"date": day, "function": fn, **self._figures(t)})
        return {
            "since": lo,
            "until": until.isoformat() if until else None,
            "prices": {
                "per_gb_second": self.prices.per_gb_s,
                "per_million_requests": self.prices.per_million_requests,
            },
            "days": days,
            "functions": [
                {"function": fn, **self._figures(t)} for fn, t in sorted(per_function.items())
            ],
            "total": self._figures(total),
        }

    def _figures(self, t: Totals) -> dict[str, Any]:
        gb_s = t.mb_ms / MB_MS_PER_GB_S
        cost = gb_s * self.prices.per_gb_s + t.requests * self.prices.per_million_requests / 1e6
        return {
            "requests": t.requests,
            "billed_duration_ms": t.billed_ms,
            "gb_seconds": gb_s,
            "cost_usd": cost,
        }
