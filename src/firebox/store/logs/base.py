"""The log store interface: CloudWatch-style groups of streams of timestamped events."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

Event = tuple[int, str]  # (timestamp in ms since the epoch, message)
Cursor = tuple[int, int]  # (timestamp in ms, event id): a position in timestamp order


@dataclass(frozen=True, slots=True)
class GroupInfo:
    name: str
    created_ms: int
    retention_days: int | None
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class StreamInfo:
    name: str
    created_ms: int
    first_ts: int | None
    last_ts: int | None
    last_ingest_ms: int | None
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: int
    stream: str
    timestamp: int
    ingest_ms: int
    message: str

    @property
    def cursor(self) -> Cursor:
        return (self.timestamp, self.event_id)


class LogStore(Protocol):
    """Events older than a group's retention are never returned, swept or not.

    Lookups of a missing group or stream raise ``KeyError``; creating an existing one
    returns False.
    """

    def append(self, group: str, stream: str, events: Sequence[Event]) -> None:
        """Append events to a stream, creating the group and stream as needed; on disk
        (synced) when it returns."""

    def append_batch(self, batch: Mapping[tuple[str, str], Sequence[Event]]) -> None:
        """Append events to several (group, stream)s in one transaction, on disk (synced)
        when it returns: one sync for all of them."""

    def create_group(self, group: str) -> bool: ...

    def create_stream(self, group: str, stream: str) -> bool: ...

    def delete_group(self, group: str) -> bool: ...

    def delete_stream(self, group: str, stream: str) -> bool: ...

    def set_retention(self, group: str, days: int | None) -> bool: ...

    def tags(self, group: str) -> dict[str, str]: ...

    def set_tags(
        self, group: str, add: dict[str, str], remove: Sequence[str] = ()
    ) -> dict[str, str]:
        """Add and remove tags of a group; the tags it has now."""

    def groups(self, prefix: str = "") -> list[GroupInfo]: ...

    def streams(self, group: str) -> list[StreamInfo]: ...

    def read(
        self,
        group: str,
        stream: str,
        start_ms: int | None,
        end_ms: int | None,
        cursor: Cursor | None,
        forward: bool,
        limit: int,
    ) -> list[StoredEvent]:
        """Events of one stream in timestamp order; after ``cursor`` going forward, before it
        going backward (then the newest ``limit`` of those, still oldest first)."""

    def filter(
        self,
        group: str,
        streams: Sequence[str] | None,
        stream_prefix: str | None,
        start_ms: int | None,
        end_ms: int | None,
        after: Cursor | None,
        match: Callable[[str], bool],
        limit: int,
        scan_limit: int,
        must_contain: Sequence[str] = (),
        budget_s: float | None = None,
    ) -> tuple[list[StoredEvent], Cursor | None]:
        """Matching events across streams in timestamp order, and where to resume (None when
        the search is complete). Stops after ``limit`` matches, ``scan_limit`` events or
        ``budget_s`` seconds of searching, as CloudWatch's FilterLogEvents returns a page
        with a nextToken when its search time is up.
        ``must_contain``: substrings every match has (a pre-filter the backend may use)."""

    def sweep(self, now_ms: int) -> int:
        """Delete events past their group's retention; returns how many."""

    def close(self) -> None: ...


def select_streams(
    names: dict[int, str], streams: Sequence[str] | None, prefix: str | None
) -> dict[int, str]:
    """A group's streams (id -> name) that a filter names: all, a list, or a prefix."""
    if streams is not None:
        wanted = set(streams)
        return {k: v for k, v in names.items() if v in wanted}
    if prefix:
        return {k: v for k, v in names.items() if v.startswith(prefix)}
    return names


def scan(
    rows: Iterator[tuple[int, int, int, int, str]],
    names: dict[int, str],
    match: Callable[[str], bool],
    limit: int,
    scan_limit: int,
    deadline: float | None,
) -> tuple[list[StoredEvent], Cursor | None]:
    """A filter's page from rows in (ts, id) order — (id, stream id, ts, ingest, message),
    read lazily: at most ``limit`` matches, ``scan_limit`` rows, or until ``deadline``
    (monotonic); the cursor to go on from, or None when the rows are exhausted."""
    found: list[StoredEvent] = []
    last: Cursor | None = None
    for n, (eid, sid, ts, ingest, message) in enumerate(rows):
        if n == scan_limit:
            return found, last
        if deadline is not None and n % 16 == 15 and time.monotonic() > deadline:
            # Out of time: a page now, the rest on the next call.
            return found, last
        last = (ts, eid)
        if match(message):
            found.append(StoredEvent(eid, names[sid], ts, ingest, message))
            if len(found) == limit:
                more = next(rows, None) is not None
                return found, last if more else None
    return found, None
