"""Placement: which worker runs an invocation.

Warm hits are the whole point, so a version's traffic goes where its idle environments
are, in this order:

1. this process's own worker, when it holds an idle environment of the version (no hop);
2. a worker that said, in its reply to an earlier invocation, that it kept one idle;
3. for a cold start: this process's worker when it has room, else the workers with room
   in rendezvous order for the version — every front end ranks the workers alike for a
   given version, so their cold starts land together and later become each other's warm
   hits, without any state shared between front ends. (Workers listing their idle
   environments in heartbeats added nothing to this on a replayed trace:
   bench/bench_placement.py.)

A worker that refuses (draining, full, gone) is skipped and the next one tried, so a
drain never fails an invocation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from firebox.errors import FireboxError
from firebox.messages import NO_WORKER
from firebox.workers.worker import InvokeReply, InvokeRequest, Worker, WorkerUnavailable

log = logging.getLogger(__name__)

Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class MemberView:
    """What placement knows of another worker from the registry."""

    name: str
    address: str
    # Memory it hosts in all (the rendezvous weight: stable, so rankings do not churn),
    # and what is left of it at its last heartbeat.
    capacity_mb: int
    free_mb: int


class Directory(Protocol):
    """The live, non-draining workers of the fleet (the registry, refreshed in the
    background)."""

    def workers(self) -> list[MemberView]: ...


class LocalWorker(Protocol):
    """The worker in this process, with what placement asks of it beyond ``Worker``."""

    @property
    def name(self) -> str: ...

    async def invoke(self, request: InvokeRequest) -> InvokeReply: ...

    def idle_count(self, key: Key) -> int: ...

    def has_room(self, memory_mb: int) -> bool: ...


def _no_worker(why: str) -> FireboxError:
    return NO_WORKER(
        {"Reason": "ConcurrentInvocationLimitExceeded", "retryAfterSeconds": "1"}, why=why
    )


def rendezvous(key: Key, members: list[MemberView]) -> list[MemberView]:
    """Members ordered by weighted rendezvous hashing (highest random weight) for a key,
    weighted by capacity: the same order on every front end."""
    token = "\0".join(key).encode()

    def score(m: MemberView) -> float:
        digest = hashlib.blake2b(token + b"\0" + m.name.encode(), digest_size=8).digest()
        u = (int.from_bytes(digest, "big") + 1) / (2**64 + 2)  # in (0, 1)
        return -max(m.capacity_mb, 1) / math.log(u)

    return sorted(members, key=score, reverse=True)


class Placement:
    def __init__(
        self,
        local: LocalWorker | None,
        directory: Directory | None = None,
        connect: Callable[[MemberView], Worker] | None = None,
    ) -> None:
        self.local = local
        self.directory = directory
        self._connect = connect
        # Idle environments per version per remote worker, as its replies reported them.
        self._warm: dict[Key, dict[str, int]] = {}
        self.warm_hits = 0
        self.placed = 0

    async def run(self, request: InvokeRequest) -> InvokeReply:
        """Run ``request`` on the best worker; TooManyRequests when none can take it."""
        local = self.local
        if request.durable_logs and local is not None:
            # The caller awaits this process's log writer: where the invocation runs here,
            # that covers its lines; a remote worker syncs its own before it answers.
            remote_request = request
            request = dataclasses.replace(request, durable_logs=False)
        else:
            remote_request = request
        if self.directory is None:
            if local is None:
                raise _no_worker("this process has no worker role and no fleet")
            # One process, no fleet: nothing to choose.
            return await local.invoke(request)
        key = request.fv.key
        for worker in self._candidates(key, request.fv.memory_mb):
            known = self._warm.get(key)
            if known is not None and known.get(worker.name, 0) > 0:
                # Spread concurrent invocations over the idle environments we know of.
                known[worker.name] -= 1
            try:
                reply = await worker.invoke(request if worker is local else remote_request)
            except WorkerUnavailable as exc:
                log.info("worker %s refused an invocation: %s", worker.name, exc)
                self._forget(worker.name)
                continue
            self.placed += 1
            if not reply.cold:
                self.warm_hits += 1
            if local is None or reply.worker != local.name:
                self._warm.setdefault(key, {})[reply.worker] = reply.idle
            return reply
        raise _no_worker("no live worker took it")

    def _candidates(self, key: Key, memory_mb: int) -> Iterator[Worker]:
        assert self.directory is not None and self._connect is not None
        local = self.local
        if local is not None and local.idle_count(key) > 0:
            yield local
        members = {m.name: m for m in self.directory.workers()}
        if local is not None:
            members.pop(local.name, None)
        tried: set[str] = set()
        for name, idle in sorted(self._warm.get(key, {}).items(), key=lambda kv: -kv[1]):
            if idle > 0 and name in members:
                tried.add(name)
                yield self._connect(members[name])
        if local is not None and local.has_room(memory_mb):
            yield local
        ranked = rendezvous(key, [m for m in members.values() if m.name not in tried])
        for member in ranked:
            if member.free_mb >= memory_mb:
                yield self._connect(member)
        # Everyone is full: memory sizes are limits, not use, so place anyway — the local
        # worker first, then the others in the same order.
        if local is not None and not local.has_room(memory_mb):
            yield local
        for member in ranked:
            if member.free_mb < memory_mb:
                yield self._connect(member)

    def _forget(self, worker: str) -> None:
        for known in self._warm.values():
            known.pop(worker, None)
