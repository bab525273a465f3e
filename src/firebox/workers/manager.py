"""The worker manager: acquire an environment for a function version, release, retire.

Warm environments wait in a LIFO list per (function, version, revision), so traffic keeps
reusing the warmest ones and the rest age out. The keep-alive reaper ends environments
idle past the keep-alive and those past their maximum lifetime.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from firebox.control.resolve import FunctionVersion
from firebox.runtime.api import RuntimeAPIServer
from firebox.runtime.runtimes import available_runtimes
from firebox.sandbox.base import SandboxBackend, SandboxSpec
from firebox.sandbox.layers import merged_layers
from firebox.settings import Settings
from firebox.store.code.base import CodeStore
from firebox.workers.environment import Environment, State

log = logging.getLogger(__name__)

LogSink = Callable[[str, str, list[tuple[int, str]]], None]


class WorkerManager:
    def __init__(
        self,
        settings: Settings,
        backend: SandboxBackend,
        code: CodeStore,
        log_sink: LogSink,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.code = code
        self._log_sink = log_sink
        self._idle: defaultdict[tuple[str, str, str], list[Environment]] = defaultdict(list)
        self._all: dict[str, Environment] = {}
        self._servers: dict[str, RuntimeAPIServer] = {}
        self._layers_root = settings.data_dir / "layersets"
        self._tasks: set[asyncio.Task[None]] = set()
        # Per function, the environment keys still current (set by retire).
        self._valid: dict[str, set[tuple[str, str, str]]] = {}
        self.cold_starts = 0

    # --- the narrow interface ---------------------------------------------------------

    async def acquire(self, fv: FunctionVersion) -> tuple[Environment, bool]:
        """A warm idle environment for this version, or a new one; (env, cold)."""
        idle = self._idle.get(fv.key)
        while idle:
            env = idle.pop()
            if env.alive:
                env.state = State.BUSY
                return env, False
        return await self._create(fv), True

    def release(self, env: Environment) -> None:
        """Give back an environment after an invoke; dead or retired ones are dropped."""
        if not env.alive:
            self._forget(env)
            return
        valid = self._valid.get(env.fv.name)
        if valid is not None and env.fv.key not in valid:
            self._spawn(self._end(env))
            return
        env.state = State.IDLE
        env.last_used = time.monotonic()
        self._idle[env.fv.key].append(env)

    def retire(self, name: str, keep: set[tuple[str, str, str]]) -> None:
        """End a function's environments whose (version, revision) is not in ``keep``.

        Called when a function's code or configuration changes (``keep`` is what still
        exists). Idle ones end now; busy ones finish their invoke and end on release.
        """
        self._valid[name] = keep
        for key in [k for k in self._idle if k[0] == name and k not in keep]:
            for env in self._idle.pop(key):
                self._spawn(self._end(env))

    def environments(self, name: str | None = None) -> list[Environment]:
        return [e for e in self._all.values() if name is None or e.fv.name == name]

    # --- internals ------------------------------------------------------------------

    async def _create(self, fv: FunctionVersion) -> Environment:
        runtime = available_runtimes()[fv.runtime]
        env_id = uuid.uuid4().hex
        code_dir = self.code.unpacked(fv.code_sha)
        opt_dir = (
            await asyncio.to_thread(merged_layers, self.code, fv.layer_shas, self._layers_root)
            if fv.layer_shas else None
        )
        stream = log_stream_name(fv.version, env_id)
        spec = SandboxSpec(
            env_id=env_id,
            runtime=runtime,
            handler=fv.handler,
            code_dir=code_dir,
            opt_dir=opt_dir,
            memory_mb=fv.memory_mb,
            ephemeral_mb=fv.ephemeral_mb,
            env=self._function_env(fv, stream),
            network=self.settings.network,
        )
        sandbox = await self.backend.create(spec)
        env = Environment(fv, sandbox, stream, self._on_log)
        server = RuntimeAPIServer(env)
        await server.start(sandbox.runtime_api)
        self._servers[env.id] = server
        self._all[env.id] = env
        self.cold_starts += 1
        self._spawn(self._reap_on_exit(env))
        return env

    def _function_env(self, fv: FunctionVersion, stream: str) -> dict[str, str]:
        s = self.settings
        runtime = available_runtimes()[fv.runtime]
        env = {
            "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin",
            "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:"
            "/var/task:/var/task/lib:/opt/lib",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": "/var/task",
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "_HANDLER": fv.handler,
            "AWS_REGION": s.region,
            "AWS_DEFAULT_REGION": s.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fv.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": fv.name,
            "AWS_LAMBDA_FUNCTION_VERSION": fv.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fv.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": fv.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        }
        if runtime.kind == "node":
            env["NODE_PATH"] = ("/opt/nodejs/node22/node_modules:/opt/nodejs/node_modules:"
                                "/var/runtime/node_modules:/var/task")
        env.update(fv.env_vars)
        return env

    def _on_log(self, env: Environment, events: list[tuple[int, str]]) -> None:
        self._log_sink(env.fv.log_group, env.log_stream, events)

    async def _reap_on_exit(self, env: Environment) -> None:
        await env._exited.wait()
        self._forget(env)

    def _forget(self, env: Environment) -> None:
        self._all.pop(env.id, None)
        idle = self._idle.get(env.fv.key)
        if idle and env in idle:
            idle.remove(env)
        server = self._servers.pop(env.id, None)
        if server is not None:
            self._spawn(server.close())

    async def _end(self, env: Environment) -> None:
        await env.shutdown()
        self._forget(env)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reap_forever(self, interval_s: float = 1.0) -> None:
        """End idle environments past the keep-alive and any past their lifetime."""
        while True:
            await asyncio.sleep(interval_s)
            self.reap_once()

    def reap_once(self) -> None:
        now = time.monotonic()
        keepalive, lifetime = self.settings.keepalive_s, self.settings.max_lifetime_s
        for key, idle in list(self._idle.items()):
            keep = []
            for env in idle:
                if now - env.last_used > keepalive or now - env.created > lifetime:
                    self._spawn(self._end(env))
                else:
                    keep.append(env)
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]

    async def close(self) -> None:
        envs = list(self._all.values())
        await asyncio.gather(*(self._end(e) for e in envs), return_exceptions=True)
        for server in list(self._servers.values()):
            await server.close()
        self._servers.clear()
        for task in list(self._tasks):
            task.cancel()


def log_stream_name(version: str, env_id: str) -> str:
    """Lambda's stream name: YYYY/MM/DD/[version]<environment id>."""
    return f"{datetime.now(UTC):%Y/%m/%d}/[{version}]{env_id}"

