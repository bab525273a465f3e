"""Fleet-wide views: ask every member process over the internal protocol, with a deadline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)


class _Caller(Protocol):
    async def call(self, method: str, **args: Any) -> Any: ...


class _Members(Protocol):
    def members(self) -> dict[str, str]: ...


class FleetGather:
    def __init__(
        self,
        members: _Members,
        own_address: Callable[[], str],
        connect: Callable[[str, str], _Caller],
        timeout_s: float = 1.0,
    ) -> None:
        self.members = members
        self.own_address = own_address
        self.connect = connect
        self.timeout_s = timeout_s

    async def metrics(self) -> dict[str, list[dict[str, Any]]]:
        """Every other member's metrics (one answer per process), by node; a member that
        does not answer within the deadline is left out of this answer."""
        own = self.own_address()
        others = [(a, m) for a, m in self.members.members().items() if a != own]
        by_node: dict[str, list[dict[str, Any]]] = {}

        async def ask(address: str, member: str) -> None:
            try:
                async with asyncio.timeout(self.timeout_s):
                    got = await self.connect(member, address).call("metrics")
                by_node[str(got["node"])] = got["families"]
            except Exception as exc:
                log.warning("no metrics from %s: %s", address, exc)

        await asyncio.gather(*(ask(a, m) for a, m in others))
        return by_node
