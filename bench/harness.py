"""What every Firebox benchmark figure is made of: samples, the baseline measured in the
same run, a target, and how they are printed (a table for people, JSON for machines).

No I/O with the server here: ``run.py`` measures, this module only summarises, so that the
summaries can be unit-tested (tests/unit/test_bench_harness.py).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(samples: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation between closest ranks (numpy's
    default), so p99 of 50 samples is not simply the maximum."""
    if not samples:
        raise ValueError("no samples")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be 0-100, got {p}")
    s = sorted(samples)
    rank = (len(s) - 1) * p / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return s[lo] + (s[hi] - s[lo]) * (rank - lo)


@dataclass(slots=True)
class Stats:
    """A latency distribution (or any list of samples) in one unit."""

    n: int
    p50: float
    p99: float
    mean: float
    min: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        return cls(
            n=len(samples),
            p50=percentile(samples, 50),
            p99=percentile(samples, 99),
            mean=statistics.fmean(samples),
            min=min(samples),
            max=max(samples),
        )


@dataclass(slots=True)
class Measure:
    """One measured quantity: a distribution (``stats``) or a single ``value`` (a rate, a
    size), with the name of what was measured."""

    label: str
    unit: str
    value: float | None = None
    stats: Stats | None = None

    @property
    def headline(self) -> float:
        """The number a figure is judged by: p50 of a distribution, else the value."""
        if self.stats is not None:
            return self.stats.p50
        if self.value is None:
            raise ValueError(f"{self.label}: neither samples nor a value")
        return self.value

    @classmethod
    def samples(cls, label: str, unit: str, samples: Sequence[float]) -> Measure:
        return cls(label, unit, stats=Stats.of(samples))


@dataclass(slots=True)
class Target:
    """``headline <op> value``: e.g. ``("<=", 10.0)`` for a p50 of at most 10 ms.

    ``relative`` targets compare against the same-run baseline instead: ``(">=", 0.5,
    relative=True)`` means at least half the baseline's figure."""

    op: str
    value: float
    relative: bool = False

    def met(self, headline: float, baseline: float | None) -> bool | None:
        if self.relative:
            if baseline is None or baseline == 0:
                return None
            headline = headline / baseline
        if self.op == "<=":
            return headline <= self.value
        if self.op == ">=":
            return headline >= self.value
        raise ValueError(f"unknown target operator {self.op!r}")

    def describe(self, unit: str) -> str:
        if self.relative:
            return f"{self.op} {self.value:g}x base"
        return f"{self.op} {self.value:g} {unit}"


@dataclass(slots=True)
class Figure:
    """One row of the results: the measure, its same-run baseline and its target."""

    figure: str
    measure: Measure
    baseline: Measure | None = None
    target: Target | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """headline / baseline headline (how many times the baseline)."""
        if self.baseline is None:
            return None
        base = self.baseline.headline
        return None if base == 0 else self.measure.headline / base

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.target.met(
            self.measure.headline, self.baseline.headline if self.baseline else None
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"figure": self.figure, **_measure_json(self.measure)}
        if self.baseline is not None:
            out["baseline"] = _measure_json(self.baseline)
            ratio = self.ratio
            out["ratio"] = None if ratio is None else round(ratio, 3)
        if self.target is not None:
            out["target"] = self.target.describe(self.measure.unit)
            out["met"] = self.met
        if self.notes:
            out["notes"] = self.notes
        out.update(self.extra)
        return out


def _measure_json(m: Measure) -> dict[str, Any]:
    out: dict[str, Any] = {"label": m.label, "unit": m.unit}
    if m.stats is not None:
        out.update({k: _round(v) for k, v in asdict(m.stats).items()})
    if m.value is not None:
        out["value"] = _round(m.value)
    return out


def _round(v: float | int) -> float | int:
    if isinstance(v, int):
        return v
    return round(v, 3) if abs(v) < 1000 else round(v, 1)


def fmt_num(v: float | None) -> str:
    """Three significant-ish digits: 0.412, 4.12, 41.2, 412, 4120."""
    if v is None:
        return "-"
    a = abs(v)
    if a == 0:
        return "0"
    if a < 1:
        return f"{v:.3f}"
    if a < 10:
        return f"{v:.2f}"
    if a < 100:
        return f"{v:.1f}"
    return f"{v:.0f}"


def _cells(m: Measure | None) -> tuple[str, str, str]:
    """(p50 or value, p99 or '', n) for one measure."""
    if m is None:
        return "", "", ""
    if m.stats is not None:
        return fmt_num(m.stats.p50), fmt_num(m.stats.p99), str(m.stats.n)
    return fmt_num(m.value), "", ""


COLUMNS = (
    "figure",
    "unit",
    "n",
    "p50/value",
    "p99",
    "baseline",
    "base p50/value",
    "base p99",
    "x base",
    "target",
    "met",
)


def table(figures: Sequence[Figure]) -> str:
    """A plain-text table, one row per figure, its baseline on the same row."""
    rows: list[tuple[str, ...]] = [COLUMNS]
    for f in figures:
        v, p99, n = _cells(f.measure)
        bv, bp99, _ = _cells(f.baseline)
        met = f.met
        rows.append(
            (
                f.figure,
                f.measure.unit,
                n,
                v,
                p99,
                f.baseline.label if f.baseline else "",
                bv,
                bp99,
                "" if f.ratio is None else f"{f.ratio:.2f}",
                f.target.describe(f.measure.unit) if f.target else "",
                {True: "yes", False: "NO", None: ""}[met],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    numeric = {2, 3, 4, 6, 7, 8}
    lines = []
    for k, r in enumerate(rows):
        cells = [
            c.rjust(widths[i]) if i in numeric and k else c.ljust(widths[i])
            for i, c in enumerate(r)
        ]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(figures: Sequence[Figure]) -> str:
    """The same table as Markdown (for the README)."""
    head = ["figure", "p50 / value", "p99", "baseline (same run)", "base p50 / value", "target"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in figures:
        v, p99, _ = _cells(f.measure)
        bv, _, _ = _cells(f.baseline)
        target = ""
        if f.target is not None:
            target = f.target.describe(f.measure.unit) + (" ✔" if f.met else " ✘")
        unit = f.measure.unit
        out.append(
            "| "
            + " | ".join(
                [
                    f.figure,
                    f"{v} {unit}",
                    f"{p99} {unit}" if p99 else "",
                    f.baseline.label if f.baseline else "",
                    f"{bv} {f.baseline.unit}" if f.baseline else "",
                    target,
                ]
            )
            + " |"
        )
    return "\n".join(out)


def json_lines(figures: Sequence[Figure], context: dict[str, Any]) -> list[str]:
    """One JSON object per figure, each carrying the run's context (host, backend, …)."""
    return [json.dumps({**f.to_json(), "run": context}, sort_keys=False) for f in figures]
