"""Pollers: take events off the durable queue, run them through the sync path, retry with
backoff, and send what is left to destinations or dead letters.

Lambda's rules, which this follows:
- a function error is retried up to MaximumRetryAttempts (0-2) times, after about one
  then two minutes (``settings.async_retry_delays_s``);
- a throttle or a system error is retried with exponential backoff for as long as the
  event is younger than MaximumEventAgeInSeconds;
- an event past its maximum age is not run, it goes to the failure path;
- OnSuccess / OnFailure destinations get an invocation record; the function's
  DeadLetterConfig gets the event itself. Lambda-function targets are reached through
  this same queue; SQS queues and SNS topics are sent to (``deliver``) before the event
  is recorded as done (a crash in between sends again: at-least-once). What cannot be
  delivered (EventBridge, a target that refused it) is kept in the queue's dead-letter
  table, as is every failed event with nowhere to go.

One fetcher claims due events (a lease as long as any function can run) and hands them to
``settings.async_pollers`` workers; each event ends in one queue call (retry or complete),
so a crash at any point leaves it either queued or done — never lost. That call is made
only once the invocation's log lines are on disk (``LogWriter.durable``): an event recorded
as done always has its record in the Logs API. The worker does not wait for that write: it
runs its next event while one settler gathers the outcomes of many events, waits for one
log commit for all of them (``SETTLE_WITHIN_S``), and makes their queue calls in one
thread hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from firebox.arn import LATEST, FunctionRef
from firebox.control.event_invoke import AsyncConfig, EventInvokeConfigs, lambda_target
from firebox.control.resolve import Resolver
from firebox.errors import ResourceNotFound, TooManyRequests
from firebox.invoke.sync import Invoker, InvokeResult
from firebox.observe.logs import LogsNotWritten, LogWriter
from firebox.settings import Settings
from firebox.store.queue.base import Completion, DeadLetter, EventQueue, QueuedEvent
from firebox.workers.environment import new_request_id

log = logging.getLogger(__name__)

# Longer than the longest function timeout (900 s): a lease outlives any invoke it covers.
LEASE_S = 960.0
# Upper bound on how long the fetcher sleeps when it knows of nothing due (another process
# may share a server-side queue; the wake-up event covers this process's own writes).
IDLE_POLL_S = 1.0
# How long an event's log lines may wait for others' to share their commit (one sync):
# the worker runs its next event meanwhile, so only the queue's record of it waits.
SETTLE_WITHIN_S = 0.01
# Events per worker that may wait to be recorded while it runs the next: enough for
# SETTLE_WITHIN_S and a commit of ~1 ms invokes.
SETTLING_PER_WORKER = 16
# On a clean stop, how long finished events may take to be recorded.
SETTLE_ON_STOP_S = 5.0

# Sends a body (JSON text) to an SQS / SNS target with message attributes; raises if the
# target did not take it (triggers/destinations.py).
Deliver = Callable[[str, str, dict[str, str] | None], Awaitable[None]]


def iso_now(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error_message(result: InvokeResult | None, condition: str) -> str:
    """The ErrorMessage attribute of a dead-lettered event: the function's errorMessage."""
    if result is not None and result.payload:
        try:
            body = json.loads(result.payload)
        except (ValueError, UnicodeDecodeError):
            body = None
        if isinstance(body, dict) and isinstance(body.get("errorMessage"), str):
            return str(body["errorMessage"])[:1024]
    return condition


def _json_or_text(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return data.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a run of an event leaves to do: ``record`` (a blocking queue call) writes it to
    the queue, once the log lines appended since ``mark`` are on disk."""

    event: QueuedEvent
    config: AsyncConfig
    mark: int
    record: Callable[[], None]


def _record_all(outcomes: list[_Outcome]) -> None:
    """The queue calls of many events, in one worker thread."""
    for outcome in outcomes:
        try:
            outcome.record()
        except Exception:
            # The event stays leased and comes back when the lease ends (or at restart).
            log.exception("recording async event %s failed", outcome.event.request_id)


class Pollers:
    def __init__(
        self,
        settings: Settings,
        queue: EventQueue,
        invoker: Invoker,
        resolver: Resolver,
        configs: EventInvokeConfigs,
        arn: Any,
        logs: LogWriter,
        deliver: Deliver | None = None,
    ) -> None:
        self.settings = settings
        self.deliver = deliver
        self.queue = queue
        self.invoker = invoker
        self.logs = logs
        self.resolver = resolver
        self.configs = configs
        self.arn = arn  # (name, qualifier) -> function ARN
        self.concurrency = max(1, settings.async_pollers)
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._busy = 0
        self._rng = random.Random()
        # Outcomes waiting for their log lines, and the settler's wake-up.
        self._to_settle: list[_Outcome] = []
        self._to_settle_added = asyncio.Event()
        self._settle_slots = asyncio.Semaphore(self.concurrency * SETTLING_PER_WORKER)
        self._stopping = False

    def on_function_deleted(self, name: str) -> None:
        """Catalog.on_delete: the function's queued events go to the dead letters."""
        moved = self.queue.discard_function(name, "FunctionDeleted", time.time())
        if moved:
            log.warning("function %s deleted: %d queued events dead-lettered", name, moved)

    def notify(self) -> None:
        """New events were written: look for due work now."""
        self._wake.set()

    async def run(self) -> None:
        work: asyncio.Queue[QueuedEvent] = asyncio.Queue()
        workers = [asyncio.create_task(self._worker(work)) for _ in range(self.concurrency)]
        settler = asyncio.create_task(self._settler())
        try:
            await self._fetch(work)
        finally:
            for task in workers:
                task.cancel()
            for task in workers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            # Events that ran and wait for their log lines: record them rather than run them
            # again after a restart (the log writer is stopped after the pollers).
            self._stopping = True
            self._to_settle_added.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(settler, SETTLE_ON_STOP_S)

    async def _fetch(self, work: asyncio.Queue[QueuedEvent]) -> None:
        while True:
            free = self.concurrency - self._busy - work.qsize()
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            # Cleared before looking, so a write that lands after the claim still wakes us.
            self._wake.clear()
            now = time.time()
            try:
                events = await asyncio.to_thread(self.queue.claim, free, LEASE_S, now)
            except Exception:
                log.exception("claiming events failed")
                await asyncio.sleep(IDLE_POLL_S)
                continue
            if events:
                for event in events:
                    work.put_nowait(event)
                continue
            due = await asyncio.to_thread(self.queue.next_due)
            timeout = IDLE_POLL_S if due is None else min(IDLE_POLL_S, max(0.0, due - now))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _worker(self, work: asyncio.Queue[QueuedEvent]) -> None:
        while True:
            # Too many events still settling: wait for some. A log store that stopped
            # answering stops the pollers instead of filling memory.
            await self._settle_slots.acquire()
            handed_on = False
            try:
                event = await work.get()
                self._busy += 1
                try:
                    outcome = await self._run(event)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # The event stays leased and comes back when the lease ends (or restart).
                    log.exception("processing event %s failed", event.request_id)
                    continue
                finally:
                    self._busy -= 1
                    self._slot_free.set()
                # The worker goes on to its next event while this one's log lines are written.
                self._to_settle.append(outcome)
                self._to_settle_added.set()
                handed_on = True
            finally:
                if not handed_on:
                    self._settle_slots.release()

    async def _settler(self) -> None:
        """Records outcomes in the queue, each once the log lines of its invocation are on
        disk; all those that gathered meanwhile share one log commit and one thread hop."""
        while True:
            if not self._to_settle:
                if self._stopping:
                    return
                self._to_settle_added.clear()
                await self._to_settle_added.wait()
                continue
            batch, self._to_settle = self._to_settle, []
            try:
                try:
                    since = min(o.mark for o in batch)
                    await self.logs.durable(since=since, within_s=SETTLE_WITHIN_S)
                except LogsNotWritten as exc:
                    # They ran, but their records may be lost: run them again rather than
                    # call them done.
                    log.warning("%d async events: %s; running them again", len(batch), exc)
                    batch = [
                        _Outcome(o.event, o.config, o.mark, self._back_off(o.event, o.config))
                        for o in batch
                    ]
                await asyncio.to_thread(_record_all, batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                # They stay leased and come back when the lease ends (or at restart).
                log.exception("recording %d async events failed", len(batch))
            finally:
                for _ in batch:
                    self._settle_slots.release()

    # --- one event ----------------------------------------------------------------

    async def _run(self, event: QueuedEvent) -> _Outcome:
        """Invoke the function on one event; what to record in the queue afterwards."""
        config = await self.configs.effective(event.function, event.qualifier)
        mark = self.logs.position()

        def outcome(record: Callable[[], None]) -> _Outcome:
            return _Outcome(event, config, mark, record)

        now = time.time()
        if now - event.enqueued_at >= config.max_age_s:
            return outcome(await self._fail(event, config, "EventAgeExceeded", None))
        ref = FunctionRef(event.function, event.qualifier)
        try:
            # durable_logs: a worker in another process makes the lines durable before it
            # answers (this process's log writer, awaited below, holds only its own).
            result = await self.invoker.invoke(
                ref,
                event.payload,
                request_id=event.request_id,
                payload_checked=True,
                durable_logs=True,
            )
        except TooManyRequests:
            return outcome(self._back_off(event, config))
        except ResourceNotFound:
            # The function, version or alias is gone: no destination can be trusted to
            # belong to it any more, and AWS has no condition for this, so keep the event.
            completion = Completion(dead_letters=[self._dead(event, "FunctionNotFound", "", "")])
            return outcome(functools.partial(self.queue.complete, event, completion))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("async invoke of %s failed (%s); retrying", event.function, exc)
            return outcome(self._back_off(event, config))
        event.invoke_count += 1
        event.throttles = 0
        if result.function_error is None:
            return outcome(await self._succeed(event, config, result))
        if event.retries < config.max_retries:
            delays = self.settings.async_retry_delays_s or (60.0,)
            delay = delays[min(event.retries, len(delays) - 1)]
            event.retries += 1
            return outcome(self._retry(event, config, time.time() + delay))
        return outcome(await self._fail(event, config, "RetriesExhausted", result))

    # Each of these decides what to write and returns the (blocking) queue call that
    # writes it, made later, in a worker thread, with those of other events.

    def _back_off(self, event: QueuedEvent, config: AsyncConfig) -> Callable[[], None]:
        base = self.settings.async_throttle_delay_s
        delay = min(self.settings.async_throttle_max_delay_s, base * 2 ** min(event.throttles, 20))
        delay *= 1.0 + 0.25 * self._rng.random()  # spread a throttled burst out
        event.throttles += 1
        return self._retry(event, config, time.time() + delay)

    def _retry(self, event: QueuedEvent, config: AsyncConfig, due_at: float) -> Callable[[], None]:
        # Never wait past the event's maximum age: it is then due to be discarded.
        due_at = min(due_at, event.enqueued_at + config.max_age_s)
        return functools.partial(self.queue.retry, event, due_at)

    async def _succeed(
        self, event: QueuedEvent, config: AsyncConfig, result: InvokeResult
    ) -> Callable[[], None]:
        completion = Completion()
        if config.on_success:
            record = self._record(event, "Success", result)
            await self._deliver_record(completion, event, config.on_success, "Success", record)
        return functools.partial(self.queue.complete, event, completion)

    async def _fail(
        self, event: QueuedEvent, config: AsyncConfig, condition: str, result: InvokeResult | None
    ) -> Callable[[], None]:
        completion = Completion()
        record = self._record(event, condition, result)
        routed = False
        if config.on_failure:
            await self._deliver_record(completion, event, config.on_failure, condition, record)
            routed = True
        dlq = await self._dead_letter_target(event)
        if dlq:
            target = lambda_target(dlq)
            if target is not None:
                completion.follow_ups.append(
                    QueuedEvent(
                        new_request_id(), target.name, target.qualifier, event.payload, time.time()
                    )
                )
            elif not await self._send(
                dlq,
                event.payload.decode("utf-8", "replace"),
                {
                    "RequestID": event.request_id,
                    "ErrorCode": "200",
                    "ErrorMessage": _error_message(result, condition),
                },
            ):
                completion.dead_letters.append(self._dead(event, condition, dlq, ""))
            routed = True
        if not routed:
            # Lambda would drop it; Firebox keeps it where an operator can see it.
            completion.dead_letters.append(self._dead(event, condition, "", json.dumps(record)))
        return functools.partial(self.queue.complete, event, completion)

    async def _deliver_record(
        self,
        completion: Completion,
        event: QueuedEvent,
        destination: str,
        condition: str,
        record: dict[str, Any],
    ) -> None:
        body = json.dumps(record)
        target = lambda_target(destination)
        if target is not None:
            completion.follow_ups.append(
                QueuedEvent(
                    new_request_id(), target.name, target.qualifier, body.encode(), time.time()
                )
            )
        elif not await self._send(destination, body, None):
            completion.dead_letters.append(self._dead(event, condition, destination, body))

    async def _send(self, target: str, body: str, attributes: dict[str, str] | None) -> bool:
        """Deliver to an SQS queue or SNS topic; False (kept as a dead letter) if it failed."""
        service = target.split(":")[2] if target.count(":") >= 5 else ""
        if self.deliver is None or service not in ("sqs", "sns"):
            return False
        try:
            await self.deliver(target, body, attributes)
        except Exception as exc:
            log.warning("delivering to %s failed (%s): kept as a dead letter", target, exc)
            return False
        return True

    def _dead(self, event: QueuedEvent, reason: str, target: str, record: str) -> DeadLetter:
        return DeadLetter(
            event.request_id,
            event.function,
            event.qualifier,
            event.payload,
            event.enqueued_at,
            time.time(),
            reason,
            event.invoke_count,
            target,
            record,
        )

    async def _dead_letter_target(self, event: QueuedEvent) -> str:
        try:
            fv = await self.resolver.resolve(event.function, event.qualifier)
        except ResourceNotFound:
            return ""
        return str((fv.config.get("DeadLetterConfig") or {}).get("TargetArn") or "")

    def _record(
        self, event: QueuedEvent, condition: str, result: InvokeResult | None
    ) -> dict[str, Any]:
        """AWS's invocation record, as a destination receives it."""
        record: dict[str, Any] = {
            "version": "1.0",
            "timestamp": iso_now(time.time()),
            "requestContext": {
                "requestId": event.request_id,
                "functionArn": self.arn(event.function, event.qualifier or LATEST),
                "condition": condition,
                "approximateInvokeCount": event.invoke_count,
            },
            "requestPayload": _json_or_text(event.payload),
        }
        if result is not None:
            context: dict[str, Any] = {
                "statusCode": 200,
                "executedVersion": result.executed_version,
            }
            if result.function_error:
                context["functionError"] = result.function_error
            record["responseContext"] = context
            record["responsePayload"] = _json_or_text(result.payload) if result.payload else None
        return record
