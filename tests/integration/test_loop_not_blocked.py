"""No blocking work on the event loop: control-plane writes on a disk whose commits are slow
(FIREBOX_TEST_COMMIT_DELAY_S holds every metadata commit, as a slow fsync would) leave warm
invokes of another function at their normal latency, and a resolver cache miss during those
writes answers without waiting for them.

Each figure is compared with a baseline taken in the same run without the writes, with a
generous bound: a loop that waited on one commit would show the full commit delay.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conftest import python_function, unique

COMMIT_DELAY_S = 1.0
# Writes completed during the measurement: it spans several commits.
WRITES_DURING = 4

ECHO = "def handler(event, context):\n    return event\n"


def timed_invoke(lam: Any, name: str) -> float:
    start = time.perf_counter()
    resp = lam.invoke(FunctionName=name, Payload=b'{"ok": 1}')
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    resp["Payload"].read()
    return time.perf_counter() - start


def timed_invokes(lam: Any, name: str, until: Callable[[], bool], limit_s: float) -> list[float]:
    """Latencies of back-to-back invokes until ``until()`` (or ``limit_s`` has passed)."""
    out: list[float] = []
    deadline = time.monotonic() + limit_s
    while not until() and time.monotonic() < deadline:
        out.append(timed_invoke(lam, name))
    return out


def test_slow_commits_do_not_slow_warm_invokes_or_cache_misses(server_factory: Any) -> None:
    srv = server_factory(test_commit_delay_s=COMMIT_DELAY_S)
    lam = srv.client("lambda")
    warm, busy, cold = unique("warm"), unique("busy"), unique("cold")
    python_function(lam, warm, ECHO)
    busy_arn = python_function(lam, busy, ECHO)["FunctionArn"]
    python_function(lam, cold, ECHO)
    timed_invoke(lam, warm)  # a warm environment, and the version in the resolver

    # As long as the measurement under writes will take, about: WRITES_DURING commits.
    baseline = timed_invokes(lam, warm, lambda: False, WRITES_DURING * COMMIT_DELAY_S)

    stop = threading.Event()
    writes = [0, 0]

    def write_loop(slot: int) -> None:
        client = srv.client("lambda")
        while not stop.is_set():
            # Each one commits (under the slow disk) and makes the server re-read the
            # function's versions and every reservation.
            client.tag_resource(Resource=busy_arn, Tags={f"t{slot}": str(writes[slot])})
            writes[slot] += 1

    with ThreadPoolExecutor(3) as pool:
        writers = [pool.submit(write_loop, slot) for slot in range(2)]
        try:
            # Wait (with a deadline) until writes are under way, then measure.
            deadline = time.monotonic() + 30
            while sum(writes) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sum(writes) >= 2, "control-plane writes did not get going"
            # The first invoke of another function: a resolver cache miss, mid-writes.
            miss = pool.submit(timed_invoke, srv.client("lambda"), cold)
            start = sum(writes)
            loaded = timed_invokes(lam, warm, lambda: sum(writes) >= start + WRITES_DURING, 60)
            during = sum(writes) - start
            miss_s = miss.result(timeout=60)
        finally:
            stop.set()
            for w in writers:
                w.result(timeout=60)

    base_p50, base_max = statistics.median(baseline), max(baseline)
    p50, worst = statistics.median(loaded), max(loaded)
    report = (
        f"baseline {len(baseline)} invokes p50 {base_p50 * 1000:.1f} ms max "
        f"{base_max * 1000:.1f} ms; {len(loaded)} invokes during {during} slow writes p50 "
        f"{p50 * 1000:.1f} ms max {worst * 1000:.1f} ms; "
        f"cache miss (cold start) {miss_s * 1000:.1f} ms"
    )
    assert during >= WRITES_DURING, report  # the writes really overlapped the measurement
    # Generous: a loop that waited on a commit would add COMMIT_DELAY_S to some invoke.
    assert p50 < 3 * base_p50 + 0.02, report
    assert worst < max(3 * base_max, COMMIT_DELAY_S / 2), report
    # The miss reads the store, and runs a cold start, without waiting for the writes.
    assert miss_s < COMMIT_DELAY_S, report
