"""The async event queue interface: durable events, leased to pollers, retried, dead-lettered.

Delivery is at-least-once. ``put`` is durable (on disk, synced) when it returns: that is
the promise behind an InvocationType=Event 202. ``claim`` leases due events for
``lease_s`` seconds; an event whose lease runs out (its poller died) is due again. A
poller ends every claimed event with exactly one of ``retry`` (back in the queue, due
later) or ``complete`` (removed, atomically with the follow-up events it produced —
destination records — and the dead letters it left), so no step can lose an event.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class QueuedEvent:
    """One accepted asynchronous invocation and its delivery state."""

    request_id: str
    function: str
    qualifier: str | None
    payload: bytes
    # Wall-clock time the event was accepted: its age counts from here across restarts.
    enqueued_at: float
    # How many times the function ran with this event (approximateInvokeCount).
    invoke_count: int = 0
    # Retries spent on function errors (bounded by MaximumRetryAttempts).
    retries: int = 0
    # Consecutive throttles / system errors (drives their backoff, bounded only by age).
    throttles: int = 0
    # Backend row id, set by claim().
    seq: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event that failed for good and had nowhere reachable to go (or an SQS/SNS DLQ)."""

    request_id: str
    function: str
    qualifier: str | None
    payload: bytes
    enqueued_at: float
    failed_at: float
    reason: str  # RetriesExhausted | EventAgeExceeded | FunctionDeleted | …
    invoke_count: int = 0
    # The DLQ/destination ARN Firebox cannot reach (SQS, SNS…), or "" when none was set.
    target: str = ""
    # The record a destination would have received (JSON), when there is one.
    record: str = ""


@dataclass(frozen=True, slots=True)
class FunctionQueueStats:
    depth: int = 0
    oldest_age_s: float = 0.0
    in_flight: int = 0
    dead_lettered: int = 0


@dataclass(slots=True)
class Completion:
    """How one claimed event ends: removed, with what it leads to."""

    follow_ups: list[QueuedEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


class EventQueue(Protocol):
    def put(self, events: Sequence[QueuedEvent]) -> None:
        """Append events in one transaction, synced to disk before returning."""

    def claim(self, limit: int, lease_s: float, now: float) -> list[QueuedEvent]:
        """Lease up to ``limit`` due events (oldest due first) until now + lease_s."""

    def retry(self, event: QueuedEvent, due_at: float) -> None:
        """Return a claimed event to the queue with its updated counters, due at due_at."""

    def complete(self, event: QueuedEvent, completion: Completion) -> None:
        """Remove a claimed event; add its follow-ups and dead letters in the same transaction."""

    def next_due(self) -> float | None:
        """When the earliest event (leased or not) becomes due, or None when empty."""

    def discard_function(self, name: str, reason: str, now: float) -> int:
        """Move every queued event of a function to the dead letters; how many moved."""

    def dead_letters(self, function: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead letters, newest first."""

    def stats(self, now: float) -> dict[str, FunctionQueueStats]:
        """Per function: events queued, age of the oldest, in flight, dead letters kept."""

    def close(self) -> None: ...


def stats_by_function(queue: EventQueue) -> dict[str, dict[str, Any]]:
    """Per function, now: depth, oldest_age_s, in_flight, dead_lettered (blocking)."""
    return {name: dataclasses.asdict(s) for name, s in queue.stats(time.time()).items()}
