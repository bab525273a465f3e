"""What every hostile-function test also shows: while the attack runs, the server keeps
serving another function's warm invokes within their normal latency."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from conftest import invoke_json, python_function, unique

T = TypeVar("T")

VICTIM_CODE = "def handler(e, c):\n    return 'ok'\n"
# A loaded 2-core machine (other tests, the attack itself) slows everything a little; a
# stalled event loop or a starved server is seconds, not this.
SLOWDOWN = 5.0
SLACK_S = 0.05
WORST_S = 3.0


def make_victim(lam: Any) -> str:
    name = unique("victim")
    python_function(lam, name, VICTIM_CODE)
    invoke_json(lam, name)  # warm
    return name


def _timed_invoke(lam: Any, name: str) -> float:
    t0 = time.perf_counter()
    out, resp = invoke_json(lam, name)
    elapsed = time.perf_counter() - t0
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp and out == "ok", out
    return elapsed


def serves_while(lam: Any, victim: str, attack: Callable[[], T], min_samples: int = 5) -> T:
    """Run ``attack`` (in a thread) while invoking ``victim`` back to back; returns what
    the attack returned. Fails if the victim's median latency during the attack is more
    than SLOWDOWN times its median before (plus SLACK_S), or any invoke takes WORST_S."""
    before = [_timed_invoke(lam, victim) for _ in range(10)]
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(attack())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    during: list[float] = []
    while thread.is_alive() or len(during) < min_samples:
        during.append(_timed_invoke(lam, victim))
    thread.join()
    if error:
        raise error[0]
    normal = statistics.median(before)
    assert statistics.median(during) <= normal * SLOWDOWN + SLACK_S, (normal, during)
    assert max(during) < WORST_S, during
    return result[0]
