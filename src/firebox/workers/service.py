"""The worker role: runs invocations in the execution environments this process hosts.

``WorkerService`` is the in-process ``Worker`` (workers/worker.py): a front end in the same
process calls it directly, and the internal protocol's server (workers/wire_server.py)
calls it for front ends elsewhere. It owns the platform's log lines of an invocation
(START, END, REPORT), which belong to the environment's stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from firebox.observe.logs import end_line, report_line, start_line
from firebox.workers.environment import Invocation
from firebox.workers.manager import WorkerManager
from firebox.workers.worker import InvokeReply, InvokeRequest, WorkerUnavailable

log = logging.getLogger(__name__)


class WorkerService:
    def __init__(
        self,
        name: str,
        manager: WorkerManager,
        logs_durable: Callable[[], Awaitable[None]],
        capacity_mb: int,
    ) -> None:
        self._name = name
        self.manager = manager
        # Memory (sum of MemorySize) this worker hosts before placement prefers others.
        self.capacity_mb = capacity_mb
        # Resolves once every log line appended so far is in the log store.
        self._logs_durable = logs_durable
        self.draining = False
        self.in_flight = 0
        self.started = time.monotonic()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def name(self) -> str:
        return self._name

    def idle_count(self, key: tuple[str, str, str]) -> int:
        return self.manager.idle_count(key)

    def has_room(self, memory_mb: int) -> bool:
        return self.manager.memory_in_use_mb() + memory_mb <= self.capacity_mb

    def free_mb(self) -> int:
        return max(0, self.capacity_mb - self.manager.memory_in_use_mb())

    async def invoke(self, request: InvokeRequest) -> InvokeReply:
        if self.draining:
            raise WorkerUnavailable(f"worker {self._name} is draining")
        fv = request.fv
        self.in_flight += 1
        self._idle.clear()
        try:
            env, cold = await self.manager.acquire(fv)
            inv = Invocation(
                request_id=request.request_id,
                payload=request.payload,
                invoked_arn=request.invoked_arn,
                timeout_s=fv.timeout_s,
                client_context=request.client_context,
                stream=request.stream,
                trace_id=request.trace_id,
            )
            env.platform_log([start_line(request.request_id, fv.version)], inv)
            try:
                outcome = await env.invoke(inv)
            finally:
                self.manager.release(env)
            init_ms = outcome.init_duration_ms if cold else None
            end = end_line(outcome.request_id)
            report = report_line(
                outcome.request_id,
                outcome.duration_ms,
                fv.memory_mb,
                outcome.max_memory_mb,
                init_ms,
            )
            env.platform_log([end, report])
            if request.durable_logs:
                await self._logs_durable()
            log_tail = None
            if request.want_log:
                outcome.log_tail.extend((end, report))
                log_tail = outcome.log_tail.base64()
            return InvokeReply(
                outcome,
                cold,
                log_tail,
                worker=self._name,
                idle=self.manager.idle_count(fv.key),
            )
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()

    async def idle(self) -> None:
        """Return once no invocation is running here."""
        await self._idle.wait()
