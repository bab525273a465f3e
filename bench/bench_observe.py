"""Costs of observability, in process: log store writes and queries, the per-invoke cost
of the metrics and metering observers, and a /metrics render.

    python bench/bench_observe.py [--events 100000]

Prints a table, then one JSON line per figure. The baseline for the observers is an empty
observer call; for log queries, a plain SQLite scan of the same rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from firebox.invoke.sync import InvokeRecord
from firebox.observe.metering import Meter, Prices
from firebox.observe.metrics import LiveState, Metrics
from firebox.observe.patterns import compile_pattern, required_terms
from firebox.store.logs.sqlite import SqliteLogStore
from firebox.store.metering.sqlite import SqliteUsageStore


def timed(fn, repeat: int = 5) -> float:
    """Median milliseconds of fn()."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    args = ap.parse_args()
    results: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteLogStore(Path(tmp) / "logs.db")
        now = int(time.time() * 1000) - args.events
        batch = 100
        t0 = time.perf_counter()
        for b in range(0, args.events, batch):
            events = []
            for i in range(b, min(b + batch, args.events)):
                msg = (
                    f"ERROR request {i} failed"
                    if i % 100 == 0
                    else json.dumps({"level": "info", "ms": i % 500, "n": i})
                )
                events.append((now + i, msg))
            store.append("/aws/lambda/bench", f"stream-{b % 8}", events)
        write_s = time.perf_counter() - t0
        results.append(("log append (batches of 100)", args.events / write_s, "events/s"))

        def scan(pattern: str, limit: int = 10_000) -> None:
            store.filter(
                "/aws/lambda/bench",
                None,
                None,
                None,
                None,
                None,
                compile_pattern(pattern),
                limit,
                args.events,
                required_terms(pattern),
            )

        results.append(("FilterLogEvents all, 10k page", timed(lambda: scan("")), "ms"))
        results.append(
            (f"FilterLogEvents term over {args.events}", timed(lambda: scan("ERROR failed")), "ms")
        )
        results.append(
            (
                f"FilterLogEvents JSON over {args.events}",
                timed(lambda: scan("{ $.ms > 495 }")),
                "ms",
            )
        )
        db = store._db
        results.append(
            (
                f"baseline: SQLite LIKE scan of {args.events}",
                timed(
                    lambda: db.execute(
                        "SELECT count(*) FROM events WHERE message LIKE '%ERROR%'"
                    ).fetchall()
                ),
                "ms",
            )
        )
        results.append(
            (
                "GetLogEvents tail, limit 100",
                timed(
                    lambda: store.read(
                        "/aws/lambda/bench", "stream-0", None, None, None, False, 100
                    ),
                    repeat=50,
                ),
                "ms",
            )
        )
        store.close()

        metrics = Metrics()
        meter = Meter(SqliteUsageStore(Path(tmp) / "metering.db"), Prices(0.0000166667, 0.2))
        recs = [
            InvokeRecord(
                f"fn{i % 100}",
                "$LATEST",
                "$LATEST" if i % 2 else "live",
                f"r{i}",
                128,
                1.3,
                2,
                None,
                False,
                "ok",
            )
            for i in range(20_000)
        ]
        t0 = time.perf_counter()
        for r in recs:
            metrics.observe(r)
            meter.observe(r)
        per = (time.perf_counter() - t0) / len(recs) * 1e6
        results.append(("metrics + metering observers per invoke", per, "µs"))

        def noop(_r: InvokeRecord) -> None:
            pass

        t0 = time.perf_counter()
        for r in recs:
            noop(r)
        results.append(
            ("baseline: empty observer call", (time.perf_counter() - t0) / len(recs) * 1e6, "µs")
        )
        state = LiveState(
            concurrent={f"fn{i}": 0 for i in range(100)},
            provisioned_in_use={f"fn{i}": 0 for i in range(100)},
        )
        results.append(
            (
                "/metrics render, 100 functions x 2 qualifiers",
                timed(lambda: metrics.render(state), repeat=20),
                "ms",
            )
        )
        results.append(
            (
                "metering flush of 200 (day, function) totals",
                timed(lambda: asyncio.run(meter.flush()), repeat=1),
                "ms",
            )
        )
        asyncio.run(meter.close())

    width = max(len(n) for n, _, _ in results)
    for name, value, unit in results:
        print(f"{name:<{width}}  {value:>12.2f} {unit}")
    for name, value, unit in results:
        print(
            json.dumps({"bench": "observe", "figure": name, "value": round(value, 3), "unit": unit})
        )


if __name__ == "__main__":
    main()
