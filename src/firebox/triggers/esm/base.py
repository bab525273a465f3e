"""The broker-independent half of an event source mapping: batching, filtering, the
synchronous invoke, partial batch failures, retries, the OnFailure destination, and
reconnecting when the broker goes away.

A message is acknowledged to its broker only after the function succeeded on it (or it
was filtered out, or handed to the OnFailure destination), so a crash of the function, the
poller or the whole server leaves it unacknowledged and the broker redelivers it. Nothing is
acknowledged before the invocation's log lines are on disk (``LogWriter.durable``): a
message the broker forgot always has its record in the Logs API.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from firebox.arn import parse_function_ref
from firebox.errors import FireboxError, TooManyRequests
from firebox.store.metadata.base import Doc, MetadataStore
from firebox.triggers.aws import is_auth_error
from firebox.triggers.destinations import DestinationFailed, Destinations
from firebox.triggers.patterns import matches

if TYPE_CHECKING:
    from firebox.invoke.sync import Invoker
    from firebox.observe.logs import LogWriter
    from firebox.triggers.submit import Submit

log = logging.getLogger(__name__)


class BrokerAuthError(Exception):
    """The broker refused the credentials."""


@dataclass(slots=True)
class Message:
    id: str  # the itemIdentifier of ReportBatchItemFailures
    record: Doc  # as it appears in the function's event
    handle: Any = field(default=None, repr=False)  # what the broker needs to ack it


class Source(abc.ABC):
    """One broker connection of one mapping. Subclasses implement the broker calls."""

    # True where the broker itself redelivers what was not acknowledged, on its own
    # schedule (SQS: when the visibility timeout ends, up to the queue's redrive policy):
    # failed messages are then left to it, not retried here nor sent to OnFailure.
    redelivers_failures = False

    def __init__(self, mapping: Doc) -> None:
        self.mapping = mapping

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection (and the consumer group or queue) to the broker."""

    @abc.abstractmethod
    async def fetch(self, max_messages: int, window_s: float) -> list[Message]:
        """Up to ``max_messages``; waits up to ``window_s`` to fill a batch, and briefly
        (about a second) when there is nothing at all, so that stopping stays prompt."""

    @abc.abstractmethod
    async def ack(self, messages: list[Message]) -> None:
        """Acknowledge messages the function succeeded on: they are not redelivered."""

    async def release(self, messages: list[Message]) -> None:
        """Give unprocessed messages back to the broker now (they are redelivered).

        By default nothing: the broker redelivers what was never acknowledged."""
        del messages

    async def retry_later(self, messages: list[Message]) -> None:
        """Keep failed messages from being redelivered while we retry them ourselves.

        By default nothing: brokers that redeliver only on reconnect need no extension."""
        del messages

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection; unacknowledged messages go back to the broker."""

    @abc.abstractmethod
    def event(self, messages: list[Message]) -> Doc:
        """The function's event for a batch, in this broker's documented shape."""

    def filter_view(self, message: Message) -> Doc:
        """What FilterCriteria patterns are matched against."""
        return message.record


def credentials(mapping: Doc) -> tuple[str | None, str | None]:
    for item in mapping.get("SourceAccessConfigurations") or []:
        if item.get("Type") == "BASIC_AUTH":
            user, _, password = str(item.get("URI", "")).partition(":")
            return user or None, password or None
    return None, None


def problem_text(exc: BaseException) -> str:
    if isinstance(exc, BrokerAuthError) or is_auth_error(exc):
        return f"PROBLEM: Authentication error. The broker refused the credentials: {exc}"
    # Client libraries have their own connection errors (redis.ConnectionError, aiormq's
    # AMQPConnectionError, nats' NoServersError …), not all of them OSErrors.
    name = type(exc).__name__.lower()
    if isinstance(exc, OSError | ConnectionError | asyncio.TimeoutError) or any(
        w in name for w in ("connection", "timeout", "noservers", "unreachable")
    ):
        return f"PROBLEM: Connection error. The event source could not be reached: {exc}"
    return f"PROBLEM: {type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class PollerDeps:
    """What every mapping's poller needs from the rest of Firebox."""

    invoker: Invoker
    log_writer: LogWriter
    # Asynchronous invokes (OnFailure destinations).
    submit: Submit
    # How long to wait before reconnecting to a source that is down or refused us.
    retry_delay_s: float
    # OnFailure destinations: functions, SQS queues, SNS topics, S3 buckets.
    destinations: Destinations
    # Stream mappings keep their checkpoints here.
    metadata: MetadataStore


def failure_key(mapping: Doc, shard: str) -> str:
    """The object key of an OnFailure record in an S3 destination, as Lambda names it."""
    now = time.gmtime()
    return (
        f"aws/lambda/{mapping['UUID']}/{shard or 'batch'}/"
        f"{time.strftime('%Y/%m/%d/%Y-%m-%dT%H.%M.%S', now)}-{uuid.uuid4()}"
    )


async def invoke_batch(
    invoker: Invoker,
    mapping: Doc,
    event: Doc,
    all_ids: set[str],
    report: Callable[[str], None],
) -> tuple[set[str], bool]:
    """Run a mapping's function on one batch's event, synchronously, with its log lines
    made durable by whichever worker ran it: the ids (itemIdentifier) of the items that
    failed, and whether the failure counts as an attempt (a throttle does not, as in
    Lambda). ReportBatchItemFailures is read as Lambda reads it."""
    ref = parse_function_ref(mapping["FunctionArn"])
    payload = json.dumps(event).encode()
    try:
        result = await invoker.invoke(ref, payload, payload_checked=True, durable_logs=True)
    except TooManyRequests:
        return all_ids, False
    except FireboxError as exc:
        report(f"PROBLEM: Function call failed: {exc.code}: {exc.message}")
        return all_ids, True
    if result.function_error:
        report("PROBLEM: Function call failed")
        return all_ids, True
    report("OK")
    if "ReportBatchItemFailures" not in (mapping.get("FunctionResponseTypes") or []):
        return set(), True
    try:
        response = json.loads(result.payload) if result.payload.strip() else None
    except ValueError:
        return set(), True
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return set(), True
    failures = response["batchItemFailures"]
    ids: set[str] = set()
    for item in failures if isinstance(failures, list) else []:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in all_ids:
            # As Lambda: an invalid report fails the whole batch.
            return all_ids, True
        ids.add(ident)
    return ids, True


class Poller:
    """Runs one mapping until cancelled."""

    def __init__(
        self, deps: PollerDeps, mapping: Doc, source: Source, report: Callable[[str], None]
    ) -> None:
        self.deps = deps
        self.mapping = mapping
        self.source = source
        self.report = report
        self.attempts: dict[str, int] = {}
        self.retry: list[Message] = []
        self.delivered = 0
        # Set to stop after the batch in hand (UpdateEventSourceMapping, shutdown).
        self.stopping = False

    @property
    def _filters(self) -> list[Doc]:
        out = []
        for f in (self.mapping.get("FilterCriteria") or {}).get("Filters") or []:
            with contextlib.suppress(ValueError, TypeError):
                out.append(json.loads(f["Pattern"]))
        return out

    async def run(self) -> None:
        delay = self.deps.retry_delay_s
        while not self.stopping:
            try:
                await self.source.connect()
                self.retry = []  # the broker redelivers what was in flight
                while not self.stopping:
                    batch = self.retry
                    self.retry = []
                    if not batch:
                        batch = await self.source.fetch(
                            int(self.mapping["BatchSize"]),
                            float(self.mapping.get("MaximumBatchingWindowInSeconds") or 0),
                        )
                    if batch and self.stopping:
                        # Disabled or changed while this batch was being fetched: leave it
                        # to the next poller instead of running the function on it.
                        await self.source.release(batch)
                    elif batch:
                        await self.process(batch)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await self.source.close()
                raise
            except Exception as exc:
                text = problem_text(exc)
                log.warning("event source mapping %s: %s", self.mapping["UUID"], text)
                self.report(text)
                with contextlib.suppress(Exception):
                    await self.source.close()
                await asyncio.sleep(delay)
        # Asked to stop between batches: what was fetched and not acknowledged goes back to
        # the broker with the connection.
        with contextlib.suppress(Exception):
            await self.source.close()

    async def process(self, batch: list[Message]) -> None:
        filters = self._filters
        if filters:
            keep = [
                m for m in batch if any(matches(p, self.source.filter_view(m)) for p in filters)
            ]
            dropped = [m for m in batch if m not in keep]
            if dropped:
                await self.source.ack(dropped)
            batch = keep
            if not batch:
                return
        mark = self.deps.log_writer.position()
        failed, counted = await self._invoke(batch)
        # Raises LogsNotWritten if they are lost: the batch is then redelivered (run()).
        await self.deps.log_writer.durable(since=mark)
        ok = [m for m in batch if m.id not in failed]
        if ok:
            await self.source.ack(ok)
            for m in ok:
                self.attempts.pop(m.id, None)
            self.delivered += len(ok)
        if not failed:
            return
        if self.source.redelivers_failures:
            if not counted:
                # Throttled: not the function's failure; try again here, soon.
                await asyncio.sleep(0.2)
                self.retry = [m for m in batch if m.id in failed]
            return
        limit = int(self.mapping.get("MaximumRetryAttempts", -1))
        exhausted: list[Message] = []
        again: list[Message] = []
        # In the order the broker gave them, so that retries keep that order.
        for m in (m for m in batch if m.id in failed):
            mid = m.id
            if counted:
                self.attempts[mid] = self.attempts.get(mid, 0) + 1
            # MaximumRetryAttempts counts retries after the first attempt.
            (exhausted if limit != -1 and self.attempts[mid] > limit else again).append(m)
        if exhausted:
            if await self._on_failure(exhausted):
                await self.source.ack(exhausted)
                for m in exhausted:
                    self.attempts.pop(m.id, None)
            else:
                again += exhausted  # the destination could not take them: keep trying
        if again:
            await self.source.retry_later(again)
            worst = max(self.attempts.get(m.id, 1) for m in again)
            await asyncio.sleep(min(0.1 * 2 ** min(worst, 6), 5.0))
            self.retry = again

    async def _invoke(self, batch: list[Message]) -> tuple[set[str], bool]:
        """Run the function on a batch: the ids of the messages that failed, and whether
        the failure counts as an attempt (a throttle does not, as in Lambda)."""
        return await invoke_batch(
            self.deps.invoker,
            self.mapping,
            self.source.event(batch),
            {m.id for m in batch},
            self.report,
        )

    async def _on_failure(self, messages: list[Message]) -> bool:
        """Hand exhausted messages to the OnFailure destination; False if it failed."""
        destination = ((self.mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination"
        )
        if not destination:
            log.warning(
                "event source mapping %s: dropping %d messages after %s retries",
                self.mapping["UUID"],
                len(messages),
                self.mapping.get("MaximumRetryAttempts"),
            )
            return True
        record = {
            "requestContext": {
                "requestId": self.mapping["UUID"],
                "functionArn": self.mapping["FunctionArn"],
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": int(self.mapping.get("MaximumRetryAttempts", 0)) + 1,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "eventSourceMappingArn": self.mapping["EventSourceMappingArn"],
            "payload": self.source.event(messages),
        }
        try:
            await self.deps.destinations.send(
                destination, json.dumps(record), s3_key=failure_key(self.mapping, "")
            )
        except DestinationFailed as exc:
            log.warning(
                "event source mapping %s: OnFailure destination failed: %s",
                self.mapping["UUID"],
                exc,
            )
            return False
        return True
