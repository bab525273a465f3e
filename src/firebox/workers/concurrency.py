"""Concurrency accounting: a function's reserved concurrency and the account's limit.

A function with reserved concurrency R runs at most R at once, from its own pool; every
other function shares what the reservations leave of the account's limit. Past either,
an invoke is throttled (429) with the Reason Lambda gives.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any, Protocol

from firebox.errors import FireboxError
from firebox.messages import RATE_EXCEEDED
from firebox.store.fleet.base import Reservations


def _throttled(reason: str) -> FireboxError:
    return RATE_EXCEEDED({"Reason": reason, "retryAfterSeconds": "1"})


class ConcurrencyLimiter:
    def __init__(self, account_limit: int) -> None:
        self.account_limit = account_limit
        self._reserved: dict[str, int] = {}
        self._running: defaultdict[str, int] = defaultdict(int)
        self._unreserved_running = 0

    def set_reserved(self, reserved: dict[str, int]) -> None:
        # Move the running counts of functions that change pools.
        for name, count in self._running.items():
            was, now = name in self._reserved, name in reserved
            if was and not now:
                self._unreserved_running += count
            elif now and not was:
                self._unreserved_running -= count
        self._reserved = dict(reserved)

    @property
    def unreserved_limit(self) -> int:
        return self.account_limit - sum(self._reserved.values())

    def running(self, name: str | None = None) -> int:
        if name is None:
            return sum(self._running.values())
        return self._running.get(name, 0)

    def acquire(self, name: str) -> None:
        """Count one more running invoke of a function, or raise TooManyRequests (RATE_EXCEEDED)."""
        reserved = self._reserved.get(name)
        if reserved is not None:
            if self._running[name] >= reserved:
                raise _throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
        else:
            if self._unreserved_running >= self.unreserved_limit:
                raise _throttled("ConcurrentInvocationLimitExceeded")
            self._unreserved_running += 1
        self._running[name] += 1

    def release(self, name: str) -> None:
        self._running[name] -= 1
        if self._running[name] <= 0:
            del self._running[name]
        if name not in self._reserved:
            self._unreserved_running -= 1

    # The Concurrency interface (the invoke path's view).
    async def reserve(self, name: str) -> None:
        self.acquire(name)


class Concurrency(Protocol):
    """How the invoke path counts running invokes: in this process (ConcurrencyLimiter)
    or across the fleet (SharedConcurrency)."""

    async def reserve(self, name: str) -> None:
        """Count one more running invoke of ``name``, or raise TooManyRequests."""

    def release(self, name: str) -> None: ...

    def set_reserved(self, reserved: dict[str, int]) -> None: ...

    def running(self, name: str | None = None) -> int: ...


UNRESERVED_POOL = "~unreserved"
# Slots of the shared unreserved pool a node takes at a time and keeps spare: a warm
# invoke then counts locally, and only every BLOCK-th one touches the store.
BLOCK = 8
RESERVATION_TTL_S = 30.0


class SharedConcurrency:
    """Concurrency counted once for the whole fleet, as reservations in the shared store
    (store/fleet): a reservation is taken before an invoke and returned after, and a dead
    node's reservations expire when its heartbeats stop renewing them.

    A function with reserved concurrency reserves per invoke (its limit is small and must
    be exact). The account's unreserved pool is leased in blocks of BLOCK slots, so that
    most invokes count in memory; a node keeps at most BLOCK spare (and none after a quiet
    second), so near the account limit another node may be refused while a few slots sit
    spare — the price of not writing to the store on every invoke.
    """

    def __init__(self, reservations: Reservations, holder: str, account_limit: int) -> None:
        self.r = reservations
        self.holder = holder
        self.account_limit = account_limit
        self._reserved: dict[str, int] = {}
        # Reservation ids of running invokes of reserved functions, per function.
        self._held: defaultdict[str, list[str]] = defaultdict(list)
        # Slots of the unreserved pool this node holds, spare and in use (ids are
        # interchangeable within the pool).
        self._spare: list[str] = []
        self._in_use: list[str] = []
        self._last_take = 0.0
        self._running: defaultdict[str, int] = defaultdict(int)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Future[Any]] = set()

    def set_reserved(self, reserved: dict[str, int]) -> None:
        self._reserved = dict(reserved)

    def running(self, name: str | None = None) -> int:
        if name is None:
            return sum(self._running.values())
        return self._running.get(name, 0)

    @property
    def unreserved_limit(self) -> int:
        return self.account_limit - sum(self._reserved.values())

    async def reserve(self, name: str) -> None:
        reserved = self._reserved.get(name)
        if reserved is not None:
            rid = await asyncio.to_thread(
                self.r.reserve, name, self.holder, RESERVATION_TTL_S, limit=reserved
            )
            if rid is None:
                raise _throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
            self._held[name].append(rid)
        else:
            self._last_take = time.monotonic()
            if not self._spare:
                async with self._lock:
                    if not self._spare:
                        self._spare.extend(await asyncio.to_thread(self._take_block))
                if not self._spare:
                    raise _throttled("ConcurrentInvocationLimitExceeded")
            self._in_use.append(self._spare.pop())
        self._running[name] += 1

    def _take_block(self) -> list[str]:
        taken: list[str] = []
        for _ in range(BLOCK):
            rid = self.r.reserve(
                UNRESERVED_POOL,
                self.holder,
                RESERVATION_TTL_S,
                limit=self.unreserved_limit,
                pool=UNRESERVED_POOL,
            )
            if rid is None:
                break
            taken.append(rid)
        return taken

    def release(self, name: str) -> None:
        self._running[name] -= 1
        if self._running[name] <= 0:
            del self._running[name]
        held = self._held.get(name)
        if held:
            rid = held.pop()
            if not held:
                del self._held[name]
            self._give_back([rid])
            return
        if self._in_use:
            self._spare.append(self._in_use.pop())
        if len(self._spare) > BLOCK:
            surplus, self._spare = self._spare[BLOCK:], self._spare[:BLOCK]
            self._give_back(surplus)

    def _give_back(self, ids: list[str]) -> None:
        def release_all() -> None:
            for rid in ids:
                self.r.release(rid)

        task = asyncio.ensure_future(asyncio.to_thread(release_all))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def maintain(self) -> None:
        """Each heartbeat: keep this node's reservations alive, and return spare slots
        after a quiet second."""
        if self._spare and time.monotonic() - self._last_take > 1.0:
            spare, self._spare = self._spare, []
            self._give_back(spare)
        await asyncio.to_thread(self.r.renew_holder, self.holder, RESERVATION_TTL_S)

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self.r.release_holder, self.holder)
