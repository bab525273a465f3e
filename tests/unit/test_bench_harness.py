"""bench/harness.py: percentiles, targets against same-run baselines, the table and JSON
that bench/run.py prints (not a timed test)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


h = _load("harness")


def test_percentiles_interpolate_between_ranks() -> None:
    samples = [float(x) for x in range(1, 101)]  # 1..100
    assert h.percentile(samples, 50) == pytest.approx(50.5)
    assert h.percentile(samples, 99) == pytest.approx(99.01)
    assert h.percentile(samples, 0) == 1.0
    assert h.percentile(samples, 100) == 100.0
    assert h.percentile([7.0], 99) == 7.0
    # Order of the input does not matter.
    assert h.percentile(list(reversed(samples)), 50) == pytest.approx(50.5)


def test_percentile_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        h.percentile([], 50)
    with pytest.raises(ValueError):
        h.percentile([1.0], 101)


def test_stats_summary() -> None:
    s = h.Stats.of([3.0, 1.0, 2.0, 10.0])
    assert (s.n, s.min, s.max) == (4, 1.0, 10.0)
    assert s.p50 == pytest.approx(2.5)
    assert s.mean == pytest.approx(4.0)


def test_absolute_and_relative_targets() -> None:
    lat = h.Figure(
        "warm",
        h.Measure.samples("invoke", "ms", [0.8, 0.9, 1.0]),
        h.Measure.samples("floor", "ms", [0.1, 0.1, 0.2]),
        h.Target("<=", 1.0),
    )
    assert lat.met is True
    assert lat.ratio == pytest.approx(9.0)
    slow = h.Figure("warm", h.Measure.samples("invoke", "ms", [2.0, 3.0]), target=h.Target("<=", 1))
    assert slow.met is False and slow.ratio is None
    tput = h.Figure(
        "tput",
        h.Measure("invokes/s", "req/s", value=400),
        h.Measure("floor", "req/s", value=1000),
        h.Target(">=", 0.5, relative=True),
    )
    assert tput.met is False and tput.ratio == pytest.approx(0.4)
    # A relative target without a baseline cannot be judged.
    alone = h.Figure("t", h.Measure("x", "req/s", value=1), target=h.Target(">=", 0.5, True))
    assert alone.met is None
    with pytest.raises(ValueError):
        h.Target("<", 1).met(1, None)


def test_json_carries_figure_baseline_target_and_context() -> None:
    fig = h.Figure(
        "cold start python, end to end",
        h.Measure.samples("first Invoke", "ms", [5.0, 6.0, 7.0, 40.0]),
        h.Measure.samples("fresh python3", "ms", [20.0, 22.0]),
        h.Target("<=", 10.0),
        "pool on",
        extra={"init_p50_ms": 3.2},
    )
    (line,) = h.json_lines([fig], {"sandbox": "process"})
    row = json.loads(line)
    assert row["figure"] == "cold start python, end to end"
    assert row["unit"] == "ms" and row["n"] == 4 and row["p50"] == 6.5
    assert row["p99"] == pytest.approx(39.01)
    assert row["baseline"]["label"] == "fresh python3" and row["baseline"]["p50"] == 21.0
    assert row["ratio"] == pytest.approx(6.5 / 21.0, abs=1e-3)
    assert row["target"] == "<= 10 ms" and row["met"] is True
    assert row["notes"] == "pool on" and row["init_p50_ms"] == 3.2
    assert row["run"] == {"sandbox": "process"}


def test_table_puts_each_baseline_on_its_figures_row() -> None:
    figs = [
        h.Figure(
            "warm invoke latency c=1",
            h.Measure.samples("invoke", "ms", [1.5, 1.5]),
            h.Measure.samples("floor", "ms", [0.1, 0.1]),
            h.Target("<=", 1.0),
        ),
        h.Figure("density", h.Measure("envs", "envs", value=775)),
    ]
    text = h.table(figs)
    header, rule, warm, density = text.splitlines()
    assert header.split()[:2] == ["figure", "unit"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert "1.50" in warm and "0.100" in warm and "15.00" in warm and warm.endswith("NO")
    assert "775" in density and "NO" not in density
    md = h.markdown_table(figs)
    assert md.count("\n") == 3 and "| warm invoke latency c=1 | 1.50 ms |" in md
    assert "<= 1 ms ✘" in md


def test_number_format() -> None:
    assert [h.fmt_num(v) for v in (0.0412, 4.123, 41.23, 412.3, None, 0)] == [
        "0.041",
        "4.12",
        "41.2",
        "412",
        "-",
        "0",
    ]


def test_report_line_parsing() -> None:
    """run.py reads Duration and Init Duration from the base64 tail, as Lambda prints it."""
    import base64

    from firebox.observe.logs import report_line

    sys.path.insert(0, str(BENCH))
    try:
        run = _load("run")
    finally:
        while str(BENCH) in sys.path:  # run.py adds it too, for its own imports
            sys.path.remove(str(BENCH))
    cold = report_line("rid", 1.234, 128, 30, 12.5)
    warm = report_line("rid", 0.5, 128, 30, None)
    tail = base64.b64encode(f"START RequestId: rid\n{cold}\n".encode()).decode()
    assert run.parse_report(tail) == (1.23, 12.5)
    tail = base64.b64encode(f"{warm}\n".encode()).decode()
    assert run.parse_report(tail) == (0.5, None)
    with pytest.raises(ValueError):
        run.parse_report(base64.b64encode(b"nothing here").decode())
