"""What the hostile tests share: a bystander function whose warm invokes must stay at their
normal latency while an attack runs, and the server process's resident memory and
descriptors."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Server, invoke_json, python_function, unique


class Bystander:
    """A warm function of someone else's: its invoke latency is measured before an attack
    (the baseline) and while it runs."""

    def __init__(self, server: Server) -> None:
        self.lam = server.client("lambda")
        self.name = unique("bystander")
        python_function(self.lam, self.name, "def handler(e, c):\n    return 'ok'\n")
        for _ in range(3):  # cold start, then warm
            self.invoke_s()
        self.baseline_s = statistics.median(self.invoke_s() for _ in range(15))

    def invoke_s(self) -> float:
        started = time.monotonic()
        out, resp = invoke_json(self.lam, self.name)
        elapsed = time.monotonic() - started
        assert resp["StatusCode"] == 200 and "FunctionError" not in resp and out == "ok", out
        return elapsed

    def assert_served_promptly(self, attack_running: Callable[[], bool], n: int = 10) -> None:
        """Warm invokes while the attack runs stay near their baseline: a server stalled by
        the attack would take seconds. The bound is loose enough for a loaded 2-core host
        (the attacker's function burns a core of its own)."""
        samples = []
        for _ in range(n):
            samples.append(self.invoke_s())
        assert attack_running(), "the attack ended before the bystander was measured"
        median = statistics.median(samples)
        bound = self.baseline_s * 5 + 0.05
        assert median <= bound, (median, self.baseline_s, samples)
        assert max(samples) < 2.0, samples


class Background:
    """Run ``fn`` in a thread; its result or exception on ``result()``."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._out: list[Any] = []
        self._err: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._out.append(fn())
        except BaseException as exc:  # handed to result()
            self._err.append(exc)

    def running(self) -> bool:
        return self._thread.is_alive()

    def result(self, timeout_s: float = 120.0) -> Any:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "background work did not finish"
        if self._err:
            raise self._err[0]
        return self._out[0]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def wait_for(condition: Callable[[], Any], timeout_s: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)
