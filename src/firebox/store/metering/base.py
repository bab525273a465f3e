"""The usage store interface: metered totals per UTC day and function, only ever added to.

Every node adds its own totals (additions commute), so several nodes can meter into one
store without coordinating.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

Key = tuple[str, str]  # (day YYYY-MM-DD, function)


@dataclass(slots=True)
class Totals:
    requests: int = 0
    billed_ms: int = 0
    mb_ms: int = 0  # billed milliseconds x configured megabytes: exact, unlike GB-s

    def add(self, other: Totals) -> None:
        self.requests += other.requests
        self.billed_ms += other.billed_ms
        self.mb_ms += other.mb_ms


class UsageStore(Protocol):
    def add(self, batch: Mapping[Key, Totals]) -> None:
        """Add every total of the batch to the stored ones, in one transaction."""

    def read(self, since: str, until: str, function: str | None) -> list[tuple[Key, Totals]]:
        """Stored totals of days ``since`` to ``until`` (YYYY-MM-DD, inclusive)."""

    def close(self) -> None: ...
