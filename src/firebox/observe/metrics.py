"""Prometheus metrics per function and qualifier, on a registry owned by App.

Counters and histograms are fed by the invoker's observers; gauges that describe the
present (concurrency, queues) are computed at scrape time by a custom collector from a
``LiveState`` snapshot the /metrics route takes on the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from firebox.invoke.sync import InvokeRecord

# Lambda durations span sub-millisecond warm invokes to 15-minute timeouts.
DURATION_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
)
INIT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LABELS = ("function", "qualifier")


@dataclass(slots=True)
class LiveState:
    """What is true right now, per function."""

    concurrent: dict[str, int] = field(default_factory=dict)
    provisioned_in_use: dict[str, int] = field(default_factory=dict)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)


class _LiveCollector(Collector):
    def __init__(self) -> None:
        self.state = LiveState()

    def collect(self) -> Iterator[Metric]:
        s = self.state
        concurrent = GaugeMetricFamily(
            "firebox_concurrent_executions",
            "Invocations of the function running now.",
            labels=["function"],
        )
        provisioned = GaugeMetricFamily(
            "firebox_provisioned_concurrency_in_use",
            "Provisioned-concurrency environments of the function busy now.",
            labels=["function"],
        )
        for name in sorted(set(s.concurrent) | set(s.provisioned_in_use)):
            concurrent.add_metric([name], s.concurrent.get(name, 0))
            provisioned.add_metric([name], s.provisioned_in_use.get(name, 0))
        depth = GaugeMetricFamily(
            "firebox_async_queue_depth", "Asynchronous events waiting to run.", labels=["function"]
        )
        age = GaugeMetricFamily(
            "firebox_async_oldest_event_age_seconds",
            "Age of the oldest asynchronous event waiting to run.",
            labels=["function"],
        )
        dead = GaugeMetricFamily(
            "firebox_async_dead_lettered_events",
            "Asynchronous events that exhausted their retries and were dead-lettered.",
            labels=["function"],
        )
        for name, stats in sorted(s.queues.items()):
            depth.add_metric([name], _num(stats.get("depth")))
            age.add_metric([name], _num(stats.get("oldest_age_s")))
            dead.add_metric([name], _num(stats.get("dead_lettered")))
        yield from (concurrent, provisioned, depth, age, dead)


def _num(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.invocations = Counter(
            "firebox_invocations",
            "Invocations that ran (throttled ones excluded, as Lambda counts them).",
            LABELS,
            registry=r,
        )
        self.errors = Counter(
            "firebox_errors",
            "Invocations that ended in a function error, timeout or crash.",
            LABELS,
            registry=r,
        )
        self.throttles = Counter(
            "firebox_throttles",
            "Invocation requests refused for concurrency (429).",
            LABELS,
            registry=r,
        )
        self.cold_starts = Counter(
            "firebox_cold_starts", "Invocations that started a new environment.", LABELS, registry=r
        )
        self.warm_starts = Counter(
            "firebox_warm_starts", "Invocations served by a warm environment.", LABELS, registry=r
        )
        self.duration = Histogram(
            "firebox_duration_seconds",
            "Time the function's handler ran.",
            LABELS,
            buckets=DURATION_BUCKETS_S,
            registry=r,
        )
        self.init_duration = Histogram(
            "firebox_init_duration_seconds",
            "Init phase of cold starts.",
            LABELS,
            buckets=INIT_BUCKETS_S,
            registry=r,
        )
        self._live = _LiveCollector()
        r.register(self._live)

    def observe(self, rec: InvokeRecord) -> None:
        """An invoker observer: count one finished or throttled invoke."""
        labels = (rec.function, rec.qualifier)
        if rec.status == "throttled":
            self.throttles.labels(*labels).inc()
            return
        self.invocations.labels(*labels).inc()
        if rec.status != "ok":  # a function error, timeout, crash or failed init
            self.errors.labels(*labels).inc()
        (self.cold_starts if rec.cold else self.warm_starts).labels(*labels).inc()
        self.duration.labels(*labels).observe(rec.duration_ms / 1000.0)
        if rec.init_ms is not None:
            self.init_duration.labels(*labels).observe(rec.init_ms / 1000.0)

    def render(self, state: LiveState) -> bytes:
        """The Prometheus text exposition, with ``state`` as the present. Call it from one
        thread at a time (the event loop)."""
        self._live.state = state
        return generate_latest(self.registry)

    def families(self, state: LiveState) -> list[dict[str, Any]]:
        """This process's metrics as plain data, for the fleet-wide /metrics."""
        self._live.state = state
        out = []
        for metric in self.registry.collect():
            out.append(
                {
                    "name": metric.name,
                    "type": metric.type,
                    "help": metric.documentation,
                    "samples": [[s.name, s.labels, s.value] for s in metric.samples],
                }
            )
        return out


# Gauges read from the shared store (the async queue): every member sees the same values,
# so the fleet-wide view takes them from the member answering the scrape only.
SHARED_FAMILIES = (
    "firebox_async_queue_depth",
    "firebox_async_oldest_event_age_seconds",
    "firebox_async_dead_lettered_events",
)


def render_fleet(by_node: dict[str, list[dict[str, Any]]], local: str) -> bytes:
    """One exposition of several members' metrics, every sample labelled with its
    ``node``; the store-wide gauges come from ``local`` alone."""
    merged: dict[str, Metric] = {}
    for node, families in by_node.items():
        for fam in families:
            if fam["name"] in SHARED_FAMILIES and node != local:
                continue
            metric = merged.get(fam["name"])
            if metric is None:
                metric = merged[fam["name"]] = Metric(fam["name"], fam["help"], fam["type"])
            for name, labels, value in fam["samples"]:
                metric.add_sample(name, {**labels, "node": node}, value)

    class _Merged(Collector):
        def collect(self) -> Iterator[Metric]:
            yield from merged.values()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged())
    return generate_latest(registry)
