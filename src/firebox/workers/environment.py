"""One execution environment: Init, then Invoke one at a time, then Shutdown.

An invoke is a hand-off between two awaiting requests: the caller's Invoke (``invoke``)
and the runtime's long-poll on /next (``next_invocation``); no thread hops, no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from firebox.control.resolve import FunctionVersion
from firebox.observe.logs import LogTail
from firebox.sandbox.base import ExitInfo, Sandbox
from firebox.workers.output import OutputLines
from firebox.workers.stream import MAX_STREAM_BYTES, ResponseStream

log = logging.getLogger(__name__)

# Lambda gives a function's Init phase 10 seconds on on-demand environments.
INIT_TIMEOUT_S = 10.0
# An environment is frozen this long after its runtime waits on /next again (the end of
# the invoke phase, as on Lambda). Not at once: a thaw wakes every process of the
# environment once more, which cost a warm invoke 60 µs at p50 (bench/run.py, warm);
# back-to-back invokes now never freeze at all.
FREEZE_AFTER_S = 0.002
# A runtime that answered but has not polled /next again (it is still talking to the
# Runtime API, or a custom runtime that never asks) is frozen after this: long enough that
# it is never stopped mid-request (a request cut by the Runtime API's head deadline while
# frozen would kill it), short enough that it cannot compute unbilled for long. A runtime
# frozen before it polled finishes its way to /next when the next invoke thaws it.
FREEZE_UNPOLLED_AFTER_S = 1.0
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
STREAM_TOO_LARGE = (
    b'{"errorMessage":"Response payload size exceeded the maximum for a streamed '
    b'response.","errorType":"Function.ResponseSizeTooLarge"}',
    "Function.ResponseSizeTooLarge",
)
# What one invocation (or the Init phase) may write to its log, counted as CloudWatch
# counts (message bytes + 26 per event); past it, output is dropped and one platform
# line says so. Settings.log_bytes_per_invoke overrides it.
LOG_BYTES_PER_INVOKE = 10 * 1024 * 1024
# One read of a function's output per turn of the event loop: a chatty function is served
# in turn with everything else, and a full pipe stalls its writer, not the server. 8 KB
# of short lines is about 500 events, a millisecond or two of work; larger reads let one
# function's lines hold the loop for tens of milliseconds at a time.
_READ_BYTES = 8192
# Past the cap, output is moved to /dev/null in the kernel: a whole pipe at a time.
_DISCARD_BYTES = 65536
# splice(2) without blocking on the pipe (the log pipe is non-blocking too).
_SPLICE_F_NONBLOCK = getattr(os, "SPLICE_F_NONBLOCK", 2)


class State(enum.StrEnum):
    INIT = "init"
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"


@dataclass(slots=True)
class Invocation:
    request_id: str
    payload: bytes
    invoked_arn: str
    timeout_s: float
    client_context: str | None = None
    cognito_identity: str | None = None
    trace_id: str = ""
    deadline_ms: int = 0
    # Set by the runtime's reply: ("response", body) or ("error", body, error type).
    result: asyncio.Future[tuple[str, bytes, str]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    # The last 4 KB of this invocation's log (LogType=Tail), Init output included on a
    # cold start.
    log_tail: LogTail = field(default_factory=LogTail)
    # Where a streamed response goes as it arrives (InvokeWithResponseStream, streaming
    # function URLs); None: a streamed response is collected into one body.
    stream: ResponseStream | None = None
    streaming: bool = False


@dataclass(slots=True)
class Outcome:
    """What one invocation produced, as the invoke path reports it."""

    request_id: str
    status: str  # "ok" | "error" (function error) | "timeout" | "crash" | "init_error"
    body: bytes
    error_type: str = ""
    duration_ms: float = 0.0
    init_duration_ms: float | None = None
    max_memory_mb: int = 0
    log_tail: LogTail = field(default_factory=LogTail)


class RuntimeAPIError(Exception):
    """A misuse of the Runtime API by the runtime; carries AWS's status and error type."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


def _now_ms() -> int:
    return int(time.time() * 1000)


class Environment:
    def __init__(
        self,
        fv: FunctionVersion,
        sandbox: Sandbox,
        log_stream: str,
        on_log: Callable[[Environment, list[tuple[int, str]]], None],
        log_bytes_per_invoke: int = LOG_BYTES_PER_INVOKE,
    ) -> None:
        self.fv = fv
        self.sandbox = sandbox
        self.id = sandbox.env_id
        self.log_stream = log_stream
        self.state = State.INIT
        self.created = time.monotonic()
        self.last_used = self.created
        self.invocations = 0
        self.init_duration_ms: float | None = None
        self.exit: ExitInfo | None = None
        self._on_log = on_log
        loop = asyncio.get_running_loop()
        self._init_done: asyncio.Future[tuple[str, bytes, str] | None] = loop.create_future()
        self._queued: Invocation | None = None
        self._queued_signal: asyncio.Event = asyncio.Event()
        # Set while the runtime waits on /next: only then can it take an invocation.
        self._polling = asyncio.Event()
        self._current: Invocation | None = None
        # A cold start's invocation also shows the Init phase's output (as Lambda's tail
        # does): lines printed before it arrives wait here.
        self._init_inv: Invocation | None = None
        self._init_log = LogTail()
        self._output = OutputLines(log_bytes_per_invoke)
        self._devnull: int | None = None
        self._init_started = time.monotonic()
        self._exited = asyncio.Event()
        self._frozen = False
        self._freeze_later: asyncio.TimerHandle | None = None
        loop.add_reader(sandbox.log_fd, self._read_logs)
        self._watch = loop.create_task(self._watch_exit())

    # --- logs -----------------------------------------------------------------------

    def _read_logs(self, reads: int = 1) -> None:
        """Take what the function wrote (at most ``reads`` pipe-fulls) into its log."""
        fd = self.sandbox.log_fd
        for _ in range(reads):
            if self._output.dropping:
                if not self._discard(fd):
                    return
                continue
            try:
                data = os.read(fd, _READ_BYTES)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._output_ended()
                return
            lines, capped = self._output.feed(data)
            self._emit(lines)
            if capped:
                self._say_dropped()
            if len(data) < _READ_BYTES:
                return

    def _discard(self, fd: int) -> bool:
        """Past the cap: move what the function wrote to /dev/null without copying it
        into the server. False once the pipe is empty (or gone)."""
        if self._devnull is None:
            self._devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        try:
            moved = os.splice(fd, self._devnull, _DISCARD_BYTES, flags=_SPLICE_F_NONBLOCK)
        except BlockingIOError:
            return False
        except OSError:
            moved = 0
        if not moved:
            self._output_ended()
            return False
        return moved == _DISCARD_BYTES

    def _output_ended(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.sandbox.log_fd)
        self._emit(self._output.flush())

    def _emit(self, lines: list[str]) -> None:
        if not lines:
            return
        ts = _now_ms()
        events = [(ts, line) for line in lines]
        target = self._current or self._init_inv
        if target is not None:
            target.log_tail.extend(lines)
        elif not self._init_done.done():
            self._init_log.extend(lines)
        self._on_log(self, events)

    def _say_dropped(self) -> None:
        inv = self._current or self._init_inv
        cap = self._output.cap_bytes
        if inv is not None:
            line = (
                f"RequestId: {inv.request_id} Log output past {cap} bytes in this "
                "invocation was dropped"
            )
        else:
            line = f"Log output past {cap} bytes outside an invocation was dropped"
        self.platform_log([line], inv)
        if self._init_inv is None and not self._init_done.done():
            self._init_log.add(line)

    def platform_log(self, lines: list[str], inv: Invocation | None = None) -> None:
        """Record START/END/REPORT-style lines in this environment's stream."""
        ts = _now_ms()
        events = [(ts, line) for line in lines]
        if inv is not None:
            inv.log_tail.extend(lines)
        self._on_log(self, events)

    # --- freezing between invokes ----------------------------------------------------

    def _freeze(self) -> None:
        """Between invokes nothing of the function runs (nor is billed): freeze it."""
        self._cancel_freeze_later()
        if not self._frozen and self.alive:
            self._frozen = True
            self.sandbox.freeze()

    def _thaw(self) -> None:
        """Before anything needs the environment to run: an invoke, a readiness wait."""
        self._cancel_freeze_later()
        if self._frozen:
            self._frozen = False
            self.sandbox.thaw()

    def _cancel_freeze_later(self) -> None:
        if self._freeze_later is not None:
            self._freeze_later.cancel()
            self._freeze_later = None

    def _freeze_soon(self, after_s: float = FREEZE_AFTER_S) -> None:
        if self._frozen or not self.alive:
            return
        loop = asyncio.get_running_loop()
        pending = self._freeze_later
        if pending is not None:
            if pending.when() <= loop.time() + after_s:
                return
            pending.cancel()  # sooner now: the runtime polls
        self._freeze_later = loop.call_later(after_s, self._freeze_if_still_idle)

    def _freeze_if_still_idle(self) -> None:
        self._freeze_later = None
        if self.state != State.BUSY and self._queued is None and self._current is None:
            self._freeze()

    # --- lifecycle ------------------------------------------------------------------

    async def _watch_exit(self) -> None:
        try:
            self.exit = await self.sandbox.wait()
        finally:
            self._read_logs(reads=8)
            self.state = State.DEAD
            self._exited.set()
            reason = self.exit.describe() if self.exit else "unknown"
            failure = ("crash", b"", reason)
            if not self._init_done.done():
                self._init_done.set_result(failure)
            for inv in (self._current, self._queued):
                if inv is not None and not inv.result.done():
                    inv.result.set_result(failure)
            self._queued_signal.set()
            self._close_fds()

    def _close_fds(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.remove_reader(self.sandbox.log_fd)
        except (ValueError, OSError):
            pass
        if self._devnull is not None:
            os.close(self._devnull)
            self._devnull = None
        self.sandbox.close()

    def kill(self) -> None:
        """End the environment; its watcher marks it dead and fails any invocation."""
        self.state = State.DEAD
        self.sandbox.kill()

    async def wait_exited(self) -> None:
        """Return once the environment's processes are gone."""
        await self._exited.wait()

    async def shutdown(self) -> None:
        self.kill()
        try:
            await asyncio.wait_for(self._exited.wait(), 5.0)
        except TimeoutError:
            log.warning("environment %s did not exit after SIGKILL", self.id)

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the runtime polls /next again after its last invocation: True when
        it does, False when it exits (an uncaught error ends some runtimes right after they
        report it) or hangs past ``timeout_s``."""
        if self._polling.is_set() or not self.alive:
            return self.alive
        # Frozen before it reached /next (FREEZE_AFTER_S): let it get there.
        self._thaw()
        polling = asyncio.ensure_future(self._polling.wait())
        exited = asyncio.ensure_future(self._exited.wait())
        try:
            await asyncio.wait(
                {polling, exited}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            polling.cancel()
            exited.cancel()
        return self.alive and self._polling.is_set()

    async def initialised(self, timeout_s: float = INIT_TIMEOUT_S) -> tuple[str, bytes, str] | None:
        """Wait for Init to finish ahead of any invoke (provisioned concurrency): None once
        the runtime waits for its first invocation, else (kind, body, error type)."""
        try:
            result = await asyncio.wait_for(asyncio.shield(self._init_done), timeout_s)
        except TimeoutError:
            self.kill()
            return ("init_error", b"Init phase timed out", "Runtime.InitTimeout")
        # Init output belongs to the stream, not to the first invocation's tail.
        self._init_log = LogTail()
        if result is None and self.state == State.INIT:
            self.state = State.IDLE
        return result

    @property
    def alive(self) -> bool:
        return self.state != State.DEAD

    # --- Runtime API side (called by runtime/api.py) -----------------------------------

    async def next_invocation(self) -> Invocation:
        if self._current is not None and not self._current.result.done():
            raise RuntimeAPIError(
                403,
                "InvalidStateTransition",
                "State transition from Invoking to Ready failed: the response of the current "
                "invocation has not been posted",
            )
        if not self._init_done.done():
            self.init_duration_ms = (time.monotonic() - self._init_started) * 1000
            self._init_done.set_result(None)
        self._polling.set()
        if self._queued is None:
            # The runtime waits for its next event: the environment is idle from here.
            self._freeze_soon()
        try:
            while self._queued is None:
                if self.state == State.DEAD:
                    raise RuntimeAPIError(500, "Runtime.ExitError", "environment is shutting down")
                self._queued_signal.clear()
                await self._queued_signal.wait()
        finally:
            self._polling.clear()
        inv, self._queued = self._queued, None
        inv.deadline_ms = _now_ms() + int(inv.timeout_s * 1000)
        self._current = inv
        return inv

    def post_response(self, request_id: str, body: bytes) -> None:
        inv = self._invocation(request_id)
        if len(body) > MAX_RESPONSE_BYTES:
            inv.result.set_result(
                (
                    "error",
                    (
                        b'{"errorMessage":"Response payload size exceeded maximum allowed payload '
                        b'size (6291556 bytes).","errorType":"Function.ResponseSizeTooLarge"}'
                    ),
                    "Function.ResponseSizeTooLarge",
                )
            )
            raise RuntimeAPIError(
                413, "RequestEntityTooLarge", f"Response payload too large: {len(body)} bytes"
            )
        inv.result.set_result(("response", body, ""))

    def post_error(self, request_id: str, body: bytes, error_type: str) -> None:
        inv = self._invocation(request_id)
        inv.result.set_result(("error", body, error_type or "Unhandled"))

    def begin_stream(self, request_id: str, content_type: str | None) -> ResponseStream | None:
        """The runtime starts a streamed response: the invocation's stream, or None when
        the caller wants the response whole (the runtime API then collects it)."""
        inv = self._invocation(request_id)
        if inv.stream is not None:
            inv.streaming = True
            inv.stream.begin(content_type, self.fv.version)
        return inv.stream

    def end_stream(self, request_id: str, error: tuple[bytes, str] | None = None) -> None:
        """The streamed body is complete (or failed mid-way with ``error``)."""
        inv = self._current
        if inv is None or inv.request_id != request_id or inv.result.done():
            return
        if inv.stream is not None and inv.stream.size > MAX_STREAM_BYTES:
            error = STREAM_TOO_LARGE
        if error is not None:
            inv.result.set_result(("error", error[0], error[1]))
        else:
            inv.result.set_result(("response", b"", ""))
        if inv.stream is not None:
            inv.stream.close()

    def post_init_error(self, body: bytes, error_type: str) -> None:
        if self._init_done.done():
            raise RuntimeAPIError(
                403, "InvalidStateTransition", "State transition from Ready to InitError failed"
            )
        self.init_duration_ms = (time.monotonic() - self._init_started) * 1000
        self._init_done.set_result(("init_error", body, error_type or "Runtime.Unknown"))

    def _invocation(self, request_id: str) -> Invocation:
        inv = self._current
        if inv is None or inv.request_id != request_id:
            raise RuntimeAPIError(400, "InvalidRequestID", f"Invalid request ID: {request_id}")
        if inv.result.done() or inv.streaming:
            raise RuntimeAPIError(
                403,
                "InvalidStateTransition",
                "State transition from Ready to InvocationResponse failed",
            )
        return inv

    # --- invoke side ----------------------------------------------------------------

    async def invoke(self, inv: Invocation) -> Outcome:
        """Run one invocation; the environment must be idle or initialising."""
        self.state = State.BUSY
        self.invocations += 1
        cold = self.invocations == 1
        init_ms: float | None = None
        if cold:
            inv.log_tail.extend_tail(self._init_log)
            self._init_log = LogTail()
            self._init_inv = inv
            try:
                init = await asyncio.wait_for(
                    asyncio.shield(self._init_done), max(INIT_TIMEOUT_S, inv.timeout_s)
                )
            except TimeoutError:
                self._init_inv = None
                self.kill()
                return Outcome(
                    inv.request_id,
                    "init_error",
                    _error_body("Runtime.InitTimeout", "Init phase timed out"),
                    "Runtime.InitTimeout",
                    log_tail=inv.log_tail,
                )
            init_ms = self.init_duration_ms
            if init is not None:
                kind, body, err = init
                # The runtime printed its error before reporting it: take that output now.
                self._read_logs(reads=8)
                self._init_inv = None
                self.kill()
                if kind == "crash":
                    return Outcome(
                        inv.request_id,
                        "crash",
                        _error_body(
                            "Runtime.ExitError",
                            f"RequestId: {inv.request_id} Error: Runtime exited with error: {err}",
                        ),
                        "Runtime.ExitError",
                        init_duration_ms=init_ms,
                        log_tail=inv.log_tail,
                    )
                return Outcome(
                    inv.request_id,
                    "init_error",
                    body or _error_body(err, err),
                    err,
                    init_duration_ms=init_ms,
                    log_tail=inv.log_tail,
                )
            self._init_inv = None
        started = time.monotonic()
        self._output.new_period()
        self._thaw()
        self._queued = inv
        self._queued_signal.set()
        try:
            kind, body, err = await asyncio.wait_for(asyncio.shield(inv.result), inv.timeout_s)
        except TimeoutError:
            self.kill()
            if inv.stream is not None:
                inv.stream.close()
            duration = (time.monotonic() - started) * 1000
            msg = f"Task timed out after {inv.timeout_s:.2f} seconds"
            self.platform_log([f"{_iso_now()} {inv.request_id} {msg}"], inv)
            return Outcome(
                inv.request_id,
                "timeout",
                _error_body("Sandbox.Timedout", f"RequestId: {inv.request_id} Error: {msg}"),
                "Sandbox.Timedout",
                duration,
                init_ms,
                self.sandbox.max_memory_used_mb(),
                inv.log_tail,
            )
        duration = (time.monotonic() - started) * 1000
        if inv.stream is not None:
            inv.stream.close()
        # The runtime flushed its output before replying: take it now, so that it is
        # attributed to this invocation and not the next.
        self._read_logs(reads=8)
        self._current = None
        self.last_used = time.monotonic()
        if kind == "crash":
            exit_info = self.exit
            oom = bool(exit_info and exit_info.oom_killed)
            etype = "Runtime.OutOfMemory" if oom else "Runtime.ExitError"
            body = _error_body(
                etype, f"RequestId: {inv.request_id} Error: Runtime exited with error: {err}"
            )
            return Outcome(
                inv.request_id,
                "crash",
                body,
                etype,
                duration,
                init_ms,
                self.sandbox.max_memory_used_mb(),
                inv.log_tail,
            )
        if self.state == State.BUSY:
            self.state = State.IDLE
        self._freeze_soon(FREEZE_AFTER_S if self._polling.is_set() else FREEZE_UNPOLLED_AFTER_S)
        status = "ok" if kind == "response" else "error"
        return Outcome(
            inv.request_id,
            status,
            body,
            err,
            duration,
            init_ms,
            self.sandbox.max_memory_used_mb(),
            inv.log_tail,
        )


def _error_body(error_type: str, message: str) -> bytes:
    import json

    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _iso_now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_request_id() -> str:
    return str(uuid.uuid4())
