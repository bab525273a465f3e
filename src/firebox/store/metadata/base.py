"""The metadata store interface: JSON documents addressed by (kind, key).

Functions, versions, aliases, layers and every other control-plane record are documents;
keys are chosen so that lexical order is the order the API lists them in (code point
order, the same on every backend). A backend must make each call atomic and durable
before it returns, and ``batch`` atomic as a whole.

Every committed write is told to the store's change feed (feed.py): where the backend is
shared by several nodes (PostgreSQL), writes of the other nodes too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from firebox.store.metadata.feed import Change, Watch

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Put:
    kind: str
    key: str
    doc: Doc


@dataclass(frozen=True, slots=True)
class Delete:
    kind: str
    key: str


@dataclass(frozen=True, slots=True)
class DeletePrefix:
    kind: str
    prefix: str


Write = Put | Delete | DeletePrefix


def change_of(write: Write) -> Change:
    if isinstance(write, DeletePrefix):
        return Change(write.kind, write.prefix, prefix=True)
    return Change(write.kind, write.key)


class MetadataStore(Protocol):
    def get(self, kind: str, key: str) -> Doc | None:
        """The document, or None."""

    def list(
        self, kind: str, prefix: str = "", after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, Doc]]:
        """Documents whose key starts with prefix, in key order, strictly after ``after``."""

    def put(self, kind: str, key: str, doc: Doc) -> None:
        """Insert or replace."""

    def insert(self, kind: str, key: str, doc: Doc) -> bool:
        """Insert only if absent; False when the key exists already."""

    def delete(self, kind: str, key: str) -> bool:
        """Remove; False when it was absent."""

    def batch(self, writes: Sequence[Write]) -> None:
        """Apply several writes in one transaction."""

    def next_counter(self, name: str) -> int:
        """Atomically increment and return a named counter (starts at 1)."""

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the store against every other process's read-modify-write (blocking: call
        it from a worker thread). The control plane holds it across a read and the write
        that depends on it, so that two nodes never both publish version 3."""

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``callback`` with each committed write from now on, in a store thread (keep
        it short and thread-safe); returns the function that unsubscribes."""

    def watch(self) -> Watch:
        """The same changes as an async iterator on the running loop (see feed.Watch)."""

    def close(self) -> None: ...
