"""RequestResponse invocation: qualifier → environment → result or function error."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from firebox.arn import LATEST, FunctionRef
from firebox.control.resolve import Resolver
from firebox.messages import PAYLOAD_NOT_JSON, PAYLOAD_TOO_LARGE
from firebox.observe.logs import billed_ms, end_line, report_line, start_line
from firebox.workers.concurrency import ConcurrencyLimiter
from firebox.workers.environment import Environment, Invocation, Outcome, new_request_id
from firebox.workers.manager import WorkerManager
from firebox.workers.stream import ResponseStream

log = logging.getLogger(__name__)

MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024


@dataclass(slots=True)
class InvokeResult:
    request_id: str
    executed_version: str
    payload: bytes
    function_error: str | None = None  # "Unhandled" when the function failed
    log_result: str | None = None


@dataclass(frozen=True, slots=True)
class InvokeRecord:
    """One finished (or throttled) invoke, for metrics and metering."""

    function: str
    version: str
    qualifier: str
    request_id: str
    memory_mb: int
    duration_ms: float
    billed_ms: int
    init_ms: float | None
    cold: bool
    status: str  # ok | error | timeout | crash | init_error | throttled
    error_type: str = ""
    timestamp: float = field(default_factory=time.time)


Observer = Callable[[InvokeRecord], None]


def check_payload(
    payload: bytes, limit: int = MAX_SYNC_PAYLOAD_BYTES, operation: str = "Invoke"
) -> bytes:
    """Lambda's checks on a request payload: its size, and that it is JSON."""
    if len(payload) > limit:
        raise PAYLOAD_TOO_LARGE(size=len(payload), operation=operation, limit=limit)
    if not payload.strip():
        return b"{}"
    try:
        json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PAYLOAD_NOT_JSON(detail=str(exc)) from exc
    return payload


class Invoker:
    def __init__(
        self, resolver: Resolver, manager: WorkerManager, limiter: ConcurrencyLimiter
    ) -> None:
        self.resolver = resolver
        self.manager = manager
        self.limiter = limiter
        self.observers: list[Observer] = []

    def _notify(self, record: InvokeRecord) -> None:
        for observer in self.observers:
            try:
                observer(record)
            except Exception:
                log.exception("invoke observer failed")

    async def invoke(
        self,
        ref: FunctionRef,
        payload: bytes,
        *,
        log_tail: bool = False,
        client_context: str | None = None,
        request_id: str | None = None,
        payload_checked: bool = False,
        stream: ResponseStream | None = None,
    ) -> InvokeResult:
        """Run one invoke synchronously. Raises ResourceNotFound, TooManyRequests, …

        With ``stream``, a function that streams its response sends it there as it comes
        (workers/stream.py); the result then carries an empty payload."""
        fv = await self.resolver.resolve(ref.name, ref.qualifier)
        if not payload_checked:
            payload = check_payload(payload)
        request_id = request_id or new_request_id()
        qualifier = ref.qualifier or LATEST
        try:
            self.limiter.acquire(fv.name)
        except Exception:
            self._notify(
                InvokeRecord(
                    fv.name,
                    fv.version,
                    qualifier,
                    request_id,
                    fv.memory_mb,
                    0.0,
                    0,
                    None,
                    False,
                    "throttled",
                )
            )
            raise
        try:
            env, cold = await self.manager.acquire(fv)
            inv = Invocation(
                request_id=request_id,
                payload=payload,
                invoked_arn=fv.unqualified_arn
                if ref.qualifier is None
                else f"{fv.unqualified_arn}:{ref.qualifier}",
                timeout_s=fv.timeout_s,
                client_context=client_context,
                stream=stream,
                trace_id=f"Root=1-{int(time.time()):08x}-{request_id.replace('-', '')[:24]};"
                "Sampled=0",
            )
            env.platform_log([start_line(request_id, fv.version)], inv)
            try:
                outcome = await env.invoke(inv)
            finally:
                self.manager.release(env)
        finally:
            self.limiter.release(fv.name)
        return self._finish(
            fv.name, fv.version, fv.memory_mb, qualifier, env, outcome, cold, log_tail
        )

    def _finish(
        self,
        name: str,
        version: str,
        memory_mb: int,
        qualifier: str,
        env: Environment,
        outcome: Outcome,
        cold: bool,
        log_tail: bool,
    ) -> InvokeResult:
        rid = outcome.request_id
        report = report_line(
            rid,
            outcome.duration_ms,
            memory_mb,
            outcome.max_memory_mb,
            outcome.init_duration_ms if cold else None,
        )
        env.platform_log([end_line(rid), report])
        outcome.log_tail.extend((end_line(rid), report))
        self._notify(
            InvokeRecord(
                name,
                version,
                qualifier,
                rid,
                memory_mb,
                outcome.duration_ms,
                billed_ms(outcome.duration_ms),
                outcome.init_duration_ms if cold else None,
                cold,
                outcome.status,
                outcome.error_type,
            )
        )
        return InvokeResult(
            request_id=rid,
            executed_version=version,
            payload=outcome.body,
            function_error=None if outcome.status == "ok" else "Unhandled",
            log_result=outcome.log_tail.base64() if log_tail else None,
        )
