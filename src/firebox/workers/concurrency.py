"""Concurrency accounting: a function's reserved concurrency and the account's limit.

A function with reserved concurrency R runs at most R at once, from its own pool; every
other function shares what the reservations leave of the account's limit. Past either,
an invoke is throttled (429) with the Reason Lambda gives.
"""

from __future__ import annotations

from collections import defaultdict

from firebox.errors import FireboxError
from firebox.messages import RATE_EXCEEDED


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
