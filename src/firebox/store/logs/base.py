"""The log store interface: CloudWatch-style groups of streams of timestamped events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

Event = tuple[int, str]  # (timestamp in ms since the epoch, message)


class LogStore(Protocol):
    def append(self, group: str, stream: str, events: Sequence[Event]) -> None:
        """Append events to a stream, creating the group and stream as needed."""

    def groups(self) -> list[str]: ...

    def streams(self, group: str) -> list[str]: ...

    def read(self, group: str, stream: str) -> Iterator[tuple[int, Event]]:
        """(ingestion sequence number, event) of a stream, oldest first."""

    def delete_group(self, group: str) -> bool: ...
