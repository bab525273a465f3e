"""What the nodes of a fleet coordinate through: a registry of workers, leases for
decisions made once, and concurrency reservations counted across every node.

Each expires by itself: a worker whose heartbeats stop drops out of the live list, a
lease whose holder stops renewing it can be taken by another, and a reservation whose
holder dies stops counting. Times are seconds since the epoch on the store's clock (the
database's, for PostgreSQL: the one clock every node shares); callers pass durations,
never timestamps. One node (SQLite in the data dir) goes through the same calls.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class WorkerState(enum.StrEnum):
    ACTIVE = "active"  # takes new environments
    DRAINING = "draining"  # finishes what it runs, takes nothing new, then leaves


@dataclass(frozen=True, slots=True)
class Worker:
    node_id: str
    address: str  # where front ends reach it (host:port)
    capacity: int  # what it can host, in the unit placement chooses (e.g. MB of memory)
    state: WorkerState
    heartbeat_at: float
    age_s: float  # since its last heartbeat, on the store's clock
    free: int = 0  # what is left of its capacity, at its last heartbeat


class WorkerRegistry(Protocol):
    def register(self, node_id: str, address: str, capacity: int) -> None:
        """Add a worker (or refresh it, as active) with a heartbeat now."""

    def heartbeat(
        self, node_id: str, capacity: int | None = None, free: int | None = None
    ) -> WorkerState | None:
        """Record that the worker is alive (and its capacity now); its state, or None when
        it is not registered (swept as dead: it should register again)."""

    def set_state(self, node_id: str, state: WorkerState) -> bool: ...

    def remove(self, node_id: str) -> bool: ...

    def workers(self, max_age_s: float | None = None) -> list[Worker]:
        """Registered workers by node id; only those heard from within ``max_age_s``."""

    def sweep(self, max_age_s: float) -> list[str]:
        """Remove workers not heard from within ``max_age_s``; their node ids."""


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    expires_at: float
    # Grows each time the lease changes hands: work done under a lease can carry it, so a
    # holder that lost its lease without noticing is told apart from the new one.
    token: int


class Leases(Protocol):
    def acquire(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        """Take the lease if it is free, expired or already ours (then it is extended);
        None when another holder has it."""

    def renew(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        """Extend our lease by ``ttl_s`` from now; None when it is no longer ours."""

    def release(self, name: str, holder: str) -> bool:
        """Give the lease up at once; False when it was not ours."""

    def get(self, name: str) -> Lease | None:
        """The lease's current holder, or None when nobody holds it."""


class Reservations(Protocol):
    """Concurrency counted as rows: one per invoke running anywhere in the fleet.

    A pool is what a limit applies to: a function with reserved concurrency has its own
    (its name), the others share one (the account's unreserved concurrency).
    """

    def reserve(
        self, function: str, holder: str, ttl_s: float, *, limit: int, pool: str | None = None
    ) -> str | None:
        """One slot of ``pool`` (the function's own by default) if fewer than ``limit`` are
        held; the reservation's id, or None when the pool is full (throttle)."""

    def release(self, reservation_id: str) -> bool: ...

    def renew_holder(self, holder: str, ttl_s: float) -> int:
        """Extend every reservation of a holder (its heartbeat); how many."""

    def release_holder(self, holder: str) -> int:
        """Drop every reservation of a holder (a node that restarted); how many."""

    def count(self, pool: str) -> int:
        """Reservations held in a pool now."""

    def by_function(self) -> dict[str, int]:
        """Reservations held now, per function."""


class Fleet(Protocol):
    """The three, as one backend provides them (one SQLite file, one database)."""

    @property
    def registry(self) -> WorkerRegistry: ...

    @property
    def leases(self) -> Leases: ...

    @property
    def reservations(self) -> Reservations: ...

    def close(self) -> None: ...
