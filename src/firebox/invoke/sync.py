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
from firebox.observe.logs import billed_ms
from firebox.workers.concurrency import Concurrency
from firebox.workers.environment import new_request_id
from firebox.workers.placement import Placement
from firebox.workers.stream import ResponseStream
from firebox.workers.worker import InvokeRequest

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
    """The invoke path of a front end: resolve, count, place, run, observe."""

    def __init__(self, resolver: Resolver, placement: Placement, limiter: Concurrency) -> None:
        self.resolver = resolver
        self.placement = placement
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
        durable_logs: bool = False,
    ) -> InvokeResult:
        """Run one invoke synchronously. Raises ResourceNotFound, TooManyRequests, …

        With ``stream``, a function that streams its response sends it there as it comes
        (workers/stream.py); the result then carries an empty payload. With
        ``durable_logs``, it returns only once the invocation's log lines are durable."""
        fv = await self.resolver.resolve(ref.name, ref.qualifier)
        if not payload_checked:
            payload = check_payload(payload)
        request_id = request_id or new_request_id()
        qualifier = ref.qualifier or LATEST
        try:
            await self.limiter.reserve(fv.name)
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
            request = InvokeRequest(
                fv=fv,
                request_id=request_id,
                payload=payload,
                invoked_arn=fv.unqualified_arn
                if ref.qualifier is None
                else f"{fv.unqualified_arn}:{ref.qualifier}",
                client_context=client_context,
                trace_id=f"Root=1-{int(time.time()):08x}-{request_id.replace('-', '')[:24]};"
                "Sampled=0",
                want_log=log_tail,
                durable_logs=durable_logs,
                stream=stream,
            )
            reply = await self.placement.run(request)
        finally:
            self.limiter.release(fv.name)
        outcome = reply.outcome
        init_ms = outcome.init_duration_ms if reply.cold else None
        self._notify(
            InvokeRecord(
                fv.name,
                fv.version,
                qualifier,
                outcome.request_id,
                fv.memory_mb,
                outcome.duration_ms,
                billed_ms(outcome.duration_ms),
                init_ms,
                reply.cold,
                outcome.status,
                outcome.error_type,
            )
        )
        return InvokeResult(
            request_id=outcome.request_id,
            executed_version=fv.version,
            payload=outcome.body,
            function_error=None if outcome.status == "ok" else "Unhandled",
            log_result=reply.log_tail,
        )
