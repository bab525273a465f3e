"""Metering as Lambda bills: per invoke, billed duration (1 ms steps, rounded up) times the
configured memory, plus one request; totals per function per UTC day, priced.

Invokes add to in-memory totals; a background task adds them to the usage store
(store/metering/: SQLite in the data dir, or PostgreSQL shared by a fleet) in batches, so
the invoke path never touches the disk. Reports merge what is not yet written.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from firebox.store.metering.base import Key, Totals, UsageStore

if TYPE_CHECKING:
    from firebox.invoke.sync import InvokeRecord

log = logging.getLogger(__name__)

MB_MS_PER_GB_S = 1024 * 1000


@dataclass(frozen=True, slots=True)
class Prices:
    per_gb_s: float
    per_million_requests: float


class Meter:
    def __init__(self, store: UsageStore, prices: Prices) -> None:
        self.prices = prices
        self._store = store
        self._pending: defaultdict[Key, Totals] = defaultdict(Totals)
        # Held by a flush while its batch is being added, and by a report across its copy
        # of the unwritten totals and its read: otherwise a batch committed between the two
        # would be counted twice.
        self._writing = asyncio.Lock()

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
        if not self._pending:
            return
        async with self._writing:
            batch, self._pending = dict(self._pending), defaultdict(Totals)
            try:
                await asyncio.to_thread(self._store.add, batch)
            except Exception:
                # Whatever the backend raised (disk full, database unreachable): the totals
                # stay in memory for the next flush instead of being lost.
                log.exception("writing usage totals failed; keeping them for the next flush")
                for key, t in batch.items():
                    self._pending[key].add(t)

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.flush()

    async def close(self) -> None:
        await self.flush()
        self._store.close()

    # --- reports ------------------------------------------------------------------

    def _unwritten(self) -> dict[Key, Totals]:
        out: defaultdict[Key, Totals] = defaultdict(Totals)
        for key, t in self._pending.items():
            out[key].add(t)
        return out

    async def report(
        self, since: date, until: date | None = None, function: str | None = None
    ) -> dict[str, Any]:
        """Usage per function per day from ``since`` to ``until`` (inclusive, UTC)."""
        lo = since.isoformat()
        hi = (until or date.max).isoformat()
        async with self._writing:
            unwritten = self._unwritten()
            rows = await asyncio.to_thread(self._store.read, lo, hi, function)
        merged: defaultdict[Key, Totals] = defaultdict(Totals)
        for key, totals in rows:
            merged[key].add(totals)
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
