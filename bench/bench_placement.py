"""Sticky placement against random placement, replaying one invocation trace through both.

    python bench/bench_placement.py [--invocations 200000] [--functions 400] [--workers 4]

Runs Firebox's own ``Placement`` (workers/placement.py) from several front ends over
simulated workers, in simulated time: each worker keeps idle environments for the
keep-alive and reports them as a real worker does (in each reply, and in heartbeats that
front ends read once a second). The trace is synthetic but shaped like production
function traffic (the Azure Functions traces): Zipf-distributed popularity over the
functions, each function arriving in bursts at its own rate, durations log-normal. The
baseline, same trace, same workers: each invocation goes to a uniformly random worker.
Prints a table, then one JSON line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from firebox.control.resolve import FunctionVersion  # noqa: E402
from firebox.workers.environment import Outcome  # noqa: E402
from firebox.workers.placement import MemberView, Placement  # noqa: E402
from firebox.workers.worker import InvokeReply, InvokeRequest  # noqa: E402

KEEPALIVE_S = 300.0


@dataclass
class Clock:
    now: float = 0.0


@dataclass
class SimEnv:
    busy_until: float = 0.0
    last_used: float = 0.0


@dataclass
class SimWorker:
    name: str
    clock: Clock
    capacity_mb: int
    envs: dict[tuple[str, str, str], list[SimEnv]] = field(default_factory=dict)
    cold: int = 0
    warm: int = 0
    # The duration of the invocation being placed (set by the driver).
    duration_s: float = 0.0

    def _reap(self, key: tuple[str, str, str]) -> list[SimEnv]:
        now = self.clock.now
        live = [
            e
            for e in self.envs.get(key, [])
            if now - e.last_used <= KEEPALIVE_S or e.busy_until > now
        ]
        self.envs[key] = live
        return live

    def idle(self, key: tuple[str, str, str]) -> int:
        now = self.clock.now
        return sum(1 for e in self._reap(key) if e.busy_until <= now)

    def used_mb(self) -> int:
        now = self.clock.now
        return sum(
            128
            for envs in self.envs.values()
            for e in envs
            if now - e.last_used <= KEEPALIVE_S or e.busy_until > now
        )

    def view(self) -> MemberView:
        free = max(0, self.capacity_mb - self.used_mb())
        return MemberView(self.name, self.name, self.capacity_mb, free)

    async def invoke(self, request: InvokeRequest) -> InvokeReply:
        key = request.fv.key
        now = self.clock.now
        envs = self._reap(key)
        env = next((e for e in envs if e.busy_until <= now), None)
        cold = env is None
        if env is None:
            env = SimEnv()
            envs.append(env)
            self.cold += 1
        else:
            self.warm += 1
        env.busy_until = now + self.duration_s
        env.last_used = env.busy_until
        outcome = Outcome(request.request_id, "ok", b"")
        return InvokeReply(outcome, cold, None, worker=self.name, idle=self.idle(key))


class SimDirectory:
    """The registry as front ends see it: refreshed from heartbeats once a second."""

    def __init__(self, workers: list[SimWorker], clock: Clock) -> None:
        self._workers = workers
        self._clock = clock
        self._views: list[MemberView] = []
        self._at = -1.0

    def workers(self) -> list[MemberView]:
        if self._clock.now - self._at >= 1.0:
            self._views = [w.view() for w in self._workers]
            self._at = self._clock.now
        return self._views


def make_trace(
    rng: random.Random, invocations: int, functions: int, span_s: float
) -> list[tuple[float, int, float]]:
    """(arrival time, function index, duration) sorted by time."""
    weights = [1.0 / (i + 1) ** 1.1 for i in range(functions)]
    total = sum(weights)
    trace: list[tuple[float, int, float]] = []
    for f, w in enumerate(weights):
        count = max(1, round(invocations * w / total))
        t = rng.uniform(0, span_s / 4)
        for _ in range(count):
            # Bursty arrivals: mostly short gaps, sometimes a long quiet spell.
            mean_gap = span_s / count
            gap = (
                rng.expovariate(1 / (mean_gap * 0.2))
                if rng.random() < 0.8
                else rng.expovariate(1 / (mean_gap * 4.2))
            )
            t += gap
            if t > span_s:
                break
            trace.append((t, f, math.exp(rng.gauss(math.log(0.2), 1.0))))
    trace.sort()
    return trace


def function_version(i: int) -> FunctionVersion:
    config = {"MemorySize": 128, "Timeout": 30}
    return FunctionVersion(f"fn{i}", "$LATEST", "r", config)


async def replay(
    trace: list[tuple[float, int, float]], workers_n: int, fronts: int, sticky: bool, seed: int
) -> dict[str, float]:
    clock = Clock()
    workers = [SimWorker(f"w{i}", clock, capacity_mb=64 * 1024) for i in range(workers_n)]
    by_name = {w.name: w for w in workers}
    directory = SimDirectory(workers, clock)
    placements = [Placement(None, directory, lambda m: by_name[m.name]) for _ in range(fronts)]
    rng = random.Random(seed)
    fvs: dict[int, FunctionVersion] = {}
    for n, (t, f, duration) in enumerate(trace):
        clock.now = t
        fv = fvs.get(f) or fvs.setdefault(f, function_version(f))
        request = InvokeRequest(fv, f"r{n}", b"", "arn")
        if sticky:
            front = placements[rng.randrange(fronts)]
            # The chosen worker learns how long this invocation keeps its environment.
            for w in workers:
                w.duration_s = duration
            await front.run(request)
        else:
            worker = workers[rng.randrange(workers_n)]
            worker.duration_s = duration
            await worker.invoke(request)
    cold = sum(w.cold for w in workers)
    warm = sum(w.warm for w in workers)
    return {"warm_hit_ratio": warm / (warm + cold), "cold_starts": cold, "invocations": warm + cold}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invocations", type=int, default=200_000)
    parser.add_argument("--functions", type=int, default=400)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--front-ends", type=int, default=3)
    parser.add_argument("--span-s", type=float, default=6 * 3600.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    trace = make_trace(random.Random(args.seed), args.invocations, args.functions, args.span_s)
    sticky = asyncio.run(replay(trace, args.workers, args.front_ends, True, args.seed))
    rand = asyncio.run(replay(trace, args.workers, args.front_ends, False, args.seed))
    rows = [
        ("warm-hit ratio, sticky placement", sticky["warm_hit_ratio"], rand["warm_hit_ratio"]),
        ("cold starts, sticky placement", sticky["cold_starts"], rand["cold_starts"]),
    ]
    print(
        f"trace: {len(trace)} invocations of {args.functions} functions over "
        f"{args.span_s / 3600:.1f} h, "
        f"{args.workers} workers, {args.front_ends} front ends, keep-alive {KEEPALIVE_S:.0f} s",
        file=sys.stderr,
    )
    print(f"{'figure':40} {'value':>12} {'random placement (same trace)':>32}", file=sys.stderr)
    for name, value, base in rows:
        print(f"{name:40} {value:>12.4g} {base:>32.4g}", file=sys.stderr)
    for name, value, base in rows:
        print(
            json.dumps(
                {
                    "figure": name,
                    "value": value,
                    "baseline": "random placement, same trace",
                    "baseline_value": base,
                }
            )
        )


if __name__ == "__main__":
    main()
