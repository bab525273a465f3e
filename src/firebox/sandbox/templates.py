"""Which zygote (template) an environment is forked from.

Everything a fork inherits from its template is the same in every child: the address
layout (ASLR is chosen at exec) and Python's hash secret (chosen when the interpreter
starts, and unchangeable after: every str caches its hash). Environments of *different*
functions must not share them, or one function can read its own memory to learn where
another's heap and libraries are, or the secret needed to flood its dicts with colliding
keys. So every Python function gets a template of its own, a fresh interpreter, and all
of its environments are forked from it (sharing with each other only).

A fresh interpreter costs tens to hundreds of milliseconds, so it is not started on a cold
start's path: ``spares`` started templates (each with its pool of pre-forked sandboxes)
wait for functions that have none yet, and are replaced in the background as they are
claimed. A template whose function has had no environment for ``IDLE_RETIRE_S`` ends.

Runtimes that exec per environment (Node, Java, Ruby, custom runtimes) get a fresh address
layout and hash seed from the exec itself, and share one template per runtime, or per
``variant`` of it where a start-time parameter differs (Java: MemorySize, which sizes the
JVM's heap). So do Python
functions when the operator turns ``per_function`` off (FIREBOX_TEMPLATE_PER_FUNCTION=0):
for a host whose functions all trust each other, which then pays no interpreter start per
new function.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from firebox.runtime.runtimes import RuntimeInfo

log = logging.getLogger(__name__)

# A function's template outlives its last environment by this much, so that a function
# whose environments come and go (a crash loop, a burst after a quiet spell) does not
# start an interpreter each time.
IDLE_RETIRE_S = 30.0
# Pre-forked sandboxes a function's own template refills: none. Its first cold starts
# take what the spare had pre-forked; scale-out forks on demand anyway, and a pool per
# function would hold idle processes for every function with an environment.
FUNCTION_POOL = 0


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s", task.exception())


class Template(Protocol):
    key: str
    alive: bool
    pool_size: int

    async def start(self) -> None: ...

    def stop(self) -> None: ...

    def prefill(self) -> None: ...


T = TypeVar("T", bound=Template)


class Templates(Generic[T]):
    def __init__(
        self,
        make: Callable[[str, RuntimeInfo, str], T],
        spares: int,
        pool_size: int,
        per_function: bool = True,
    ) -> None:
        self._make = make
        self._per_function = per_function
        self._spares_wanted = spares if per_function else 0
        self._pool_size = pool_size
        self._serial = itertools.count()
        self._shared: dict[str, T] = {}
        self._starting: dict[str, asyncio.Task[T]] = {}
        self._own: dict[tuple[str, str], T] = {}
        self._claiming: dict[tuple[str, str], asyncio.Task[T]] = {}
        self._spares: dict[str, list[T]] = {}
        self._filling: dict[str, asyncio.Task[None]] = {}
        self._users: dict[str, int] = {}
        self._retiring: dict[str, asyncio.TimerHandle] = {}
        self._closed = False

    async def get(self, rt: RuntimeInfo, function: str, variant: str = "") -> T:
        """The template to fork an environment of ``function`` from (started if needed);
        ``variant`` separates shared templates of one runtime started differently."""
        if rt.kind != "python" or not self._per_function:
            return await self._shared_template(rt, variant)
        key = (rt.name, function)
        zyg = self._own.get(key)
        if zyg is not None and zyg.alive:
            return zyg
        if zyg is not None:  # died: the function gets a new lineage
            self._forget(key, zyg)
        # Concurrent cold starts of one new function share the one template they claim.
        task = self._claiming.get(key)
        if task is None:
            task = asyncio.ensure_future(self._claim(rt))
            self._claiming[key] = task
            task.add_done_callback(lambda _t: self._claiming.pop(key, None))
        zyg = await asyncio.shield(task)
        self._own[key] = zyg
        return zyg

    def in_use(self, zyg: T) -> None:
        """An environment of ``zyg`` started."""
        self._users[zyg.key] = self._users.get(zyg.key, 0) + 1
        handle = self._retiring.pop(zyg.key, None)
        if handle is not None:
            handle.cancel()

    def done_with(self, zyg: T) -> None:
        """An environment of ``zyg`` ended: retire a function's template left unused."""
        left = self._users.get(zyg.key, 1) - 1
        self._users[zyg.key] = left
        owner = next((k for k, z in self._own.items() if z is zyg), None)
        if left <= 0 and owner is not None and not self._closed:
            self._retiring[zyg.key] = asyncio.get_running_loop().call_later(
                IDLE_RETIRE_S, self._retire, owner, zyg
            )

    def warm(self, rt: RuntimeInfo) -> None:
        """Keep spare templates of this Python runtime ready (started in the background),
        or its shared template when templates are not per function."""
        if self._closed or rt.kind != "python":
            return
        if not self._per_function:
            if rt.name not in self._shared and rt.name not in self._starting:
                shared = asyncio.ensure_future(self._shared_template(rt))
                shared.add_done_callback(_log_failure)
            return
        if self._spares_wanted <= 0:
            return
        task = self._filling.get(rt.name)
        if task is None or task.done():
            self._filling[rt.name] = asyncio.ensure_future(self._fill(rt))

    def all(self) -> list[T]:
        spares = [z for zs in self._spares.values() for z in zs]
        return [*self._shared.values(), *self._own.values(), *spares]

    def close(self) -> None:
        self._closed = True
        for task in [*self._starting.values(), *self._claiming.values(), *self._filling.values()]:
            task.cancel()
        for handle in self._retiring.values():
            handle.cancel()
        for zyg in self.all():
            zyg.stop()
        self._shared.clear()
        self._own.clear()
        self._spares.clear()

    # --- internals ------------------------------------------------------------------

    def _new(self, rt: RuntimeInfo, label: str, variant: str = "") -> T:
        return self._make(f"{label}.{next(self._serial)}", rt, variant)

    async def _shared_template(self, rt: RuntimeInfo, variant: str = "") -> T:
        key = {"node": "node", "python": rt.name, "java": rt.name, "ruby": "ruby"}.get(
            rt.kind, "exec"
        )
        if variant:
            key = f"{key}-{variant}"
        zyg = self._shared.get(key)
        if zyg is not None and zyg.alive:
            return zyg
        if zyg is not None:
            zyg.stop()
            self._shared.pop(key, None)
        task = self._starting.get(key)
        if task is None or task.done():
            task = asyncio.ensure_future(self._start(self._new(rt, key, variant), self._pool_size))
            self._starting[key] = task
            task.add_done_callback(lambda _t: self._starting.pop(key, None))
        zyg = await asyncio.shield(task)
        self._shared[key] = zyg
        return zyg

    async def _start(self, zyg: T, pool_size: int) -> T:
        try:
            await zyg.start()
        except BaseException:
            zyg.stop()
            raise
        zyg.pool_size = pool_size
        zyg.prefill()
        return zyg

    async def _claim(self, rt: RuntimeInfo) -> T:
        spares = self._spares.get(rt.name, [])
        zyg = None
        while spares:
            candidate = spares.pop(0)
            if candidate.alive:
                zyg = candidate
                break
            candidate.stop()
        if zyg is None:
            # No spare ready (a burst of new functions): start one on this path.
            zyg = await self._start(self._new(rt, rt.name), FUNCTION_POOL)
        zyg.pool_size = FUNCTION_POOL
        self.warm(rt)
        return zyg

    async def _fill(self, rt: RuntimeInfo) -> None:
        spares = self._spares.setdefault(rt.name, [])
        while not self._closed:
            spares[:] = [z for z in spares if z.alive]
            if len(spares) >= self._spares_wanted:
                return
            try:
                zyg = await self._start(self._new(rt, rt.name), self._pool_size)
            except Exception as exc:
                log.warning("could not start a spare %s template: %s", rt.name, exc)
                return
            if self._closed:
                zyg.stop()
                return
            spares.append(zyg)

    def _retire(self, key: tuple[str, str], zyg: T) -> None:
        self._retiring.pop(zyg.key, None)
        if self._users.get(zyg.key, 0) <= 0 and self._own.get(key) is zyg:
            self._forget(key, zyg)

    def _forget(self, key: tuple[str, str], zyg: T) -> None:
        self._own.pop(key, None)
        self._users.pop(zyg.key, None)
        handle = self._retiring.pop(zyg.key, None)
        if handle is not None:
            handle.cancel()
        with contextlib.suppress(Exception):
            zyg.stop()
