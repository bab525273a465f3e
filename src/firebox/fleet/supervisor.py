"""``firebox serve --processes N``: N server processes on one machine, sharing its ports.

One asyncio process uses one core; this is how Firebox uses the others. The supervisor
itself serves nothing: it starts N copies of the same ``firebox serve`` (each told its
index), which bind the API and function URL ports with SO_REUSEPORT so that the kernel
spreads connections over them, and which find each other as members of one fleet
through the data dir (or the database) exactly as separate hosts do. A child that dies
is started again; SIGTERM or SIGINT is passed on to every child, and a child whose
supervisor dies is killed by the kernel (PR_SET_PDEATHSIG), so none is ever orphaned.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
# A child that dies sooner than this after its start is restarted only after a pause, so
# that one that cannot start does not spin.
MIN_UPTIME_S = 5.0
RESTART_DELAY_S = 1.0
STOP_GRACE_S = 30.0


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGKILL when the supervisor dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Supervisor:
    def __init__(self, processes: int, argv: Sequence[str], environ: dict[str, str]) -> None:
        self.processes = processes
        self.argv = list(argv)
        self.environ = environ
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._started: dict[int, float] = {}
        self._due: dict[int, float] = {}
        self._stopping = False

    def _start(self, index: int) -> None:
        env = dict(self.environ, FIREBOX_PROCESS_INDEX=str(index))
        proc = subprocess.Popen(
            [sys.executable, "-m", "firebox", "serve", *self.argv],
            env=env,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the supervisor has no threads
        )
        self._children[index] = proc
        self._started[index] = time.monotonic()
        log.info("process %d started (pid %d)", index, proc.pid)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stopping = True

    def run(self) -> int:
        """Start the children and keep them running until told to stop; the exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for index in range(self.processes):
            self._start(index)
        while not self._stopping:
            now = time.monotonic()
            for index, proc in list(self._children.items()):
                code = proc.poll()
                if code is None:
                    continue
                del self._children[index]
                uptime = now - self._started[index]
                log.warning("process %d exited (%s) after %.1f s; restarting", index, code, uptime)
                self._due[index] = now + (RESTART_DELAY_S if uptime < MIN_UPTIME_S else 0.0)
            for index, due in list(self._due.items()):
                if now >= due:
                    del self._due[index]
                    self._start(index)
            time.sleep(0.2)
        return self._stop()

    def _stop(self) -> int:
        for proc in self._children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self._children.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return 0
