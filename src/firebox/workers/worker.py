"""The seam between the invoke path and whatever hosts execution environments.

A front end hands an ``InvokeRequest`` to a ``Worker`` and gets an ``InvokeReply``. The
worker may be in the same process (``workers/service.py``: no copy, no hop) or another
process or host (``workers/remote.py``, over the internal protocol of ``workers/wire.py``);
the invoke path never knows which it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from firebox.control.resolve import FunctionVersion
from firebox.errors import FireboxError
from firebox.workers.environment import Outcome
from firebox.workers.stream import ResponseStream


@dataclass(slots=True)
class InvokeRequest:
    fv: FunctionVersion
    request_id: str
    payload: bytes
    invoked_arn: str
    client_context: str | None = None
    trace_id: str = ""
    # The caller wants the invocation's log lines back (LogType=Tail).
    want_log: bool = False
    # Reply only once the invocation's log lines are durable in the log store (async
    # events and event source batches are completed on that promise).
    durable_logs: bool = False
    # Where a streamed response goes as it arrives; None: collect it into the body.
    stream: ResponseStream | None = None


@dataclass(slots=True)
class InvokeReply:
    outcome: Outcome
    cold: bool
    # X-Amz-Log-Result: base64 of the last 4 KB of the invocation's log lines with END
    # and REPORT (None unless ``want_log``).
    log_tail: str | None = None
    # Which worker ran it, and how many idle environments of this version it has left:
    # placement's knowledge of where warm environments are.
    worker: str = ""
    idle: int = 0


class Worker(Protocol):
    """Runs invocations in execution environments it hosts."""

    @property
    def name(self) -> str:
        """The worker's identity in the fleet (its member id)."""

    async def invoke(self, request: InvokeRequest) -> InvokeReply:
        """Run one invocation to its end (a function error is an outcome, not an exception).

        Raises WorkerLost when the worker went away mid-invoke, WorkerUnavailable when it
        refuses new work (draining, full) before anything ran.
        """


class WorkerUnavailable(Exception):
    """The worker took nothing: it is draining, full or unreachable. Try another."""


class WorkerLost(FireboxError):
    """The worker running an invocation went away before it answered."""

    code, status, kind = "ServiceException", 500, "Service"

    def __init__(self, worker: str) -> None:
        super().__init__(
            f"The execution environment's host ({worker}) was lost during the invocation; "
            "the invocation may or may not have run."
        )
