"""The worker manager: acquire an environment for a function version, release, retire.

Warm environments wait in a LIFO list per (function, version, revision), so traffic keeps
reusing the warmest ones and the rest age out. The keep-alive reaper ends environments
idle past their function's keep-alive (keepalive.py decides how long) and any past the
maximum lifetime. Provisioned environments (``provision``) are created and initialised
ahead of traffic, are used first, and are exempt from the keep-alive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from firebox.control.resolve import FunctionVersion
from firebox.runtime.api import RuntimeAPIServer
from firebox.runtime.runtimes import available_runtimes
from firebox.sandbox.base import ExitInfo, SandboxBackend, SandboxSpec
from firebox.sandbox.layers import merged_layers
from firebox.settings import Settings
from firebox.store.code.base import CodeStore
from firebox.workers.environment import Environment, State
from firebox.workers.keepalive import KeepAlivePolicy

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
        self.keepalive = KeepAlivePolicy(settings.keepalive_s, settings.keepalive_adaptive)
        # Provisioned environments, per owner (a provisioned-concurrency config), and the
        # idle ones per environment key, used before any on-demand environment.
        self._provisioned: dict[str, list[Environment]] = {}
        self._prov_idle: defaultdict[tuple[str, str, str], list[Environment]] = defaultdict(list)
        self._prov_owner: dict[str, str] = {}  # env id -> owner
        self._renewing: set[str] = set()  # provisioned env ids being replaced
        # Told (with the owner) when a provisioned environment dies, to replace it.
        self.provisioned_lost: Callable[[str], None] | None = None

    # --- the narrow interface ---------------------------------------------------------

    async def acquire(self, fv: FunctionVersion) -> tuple[Environment, bool]:
        """A warm idle environment for this version, or a new one; (env, cold).

        Provisioned environments come first, then the warmest on-demand one.
        """
        self.keepalive.observe(fv.name, time.monotonic())
        for pool in (self._prov_idle.get(fv.key), self._idle.get(fv.key)):
            while pool:
                env = pool.pop()
                if not env.alive:
                    continue
                if env.fv.network != fv.network:
                    # The function's network switch changed since this one started.
                    self._spawn(self._end(env))
                    continue
                env.state = State.BUSY
                # Almost always already true; a runtime that exits after its last answer
                # or never polls again is ended here instead of failing this invoke.
                if await env.wait_ready(fv.timeout_s):
                    return env, False
                self._spawn(self._end(env))
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
        now = time.monotonic()
        owner = self._prov_owner.get(env.id)
        if owner is not None and env in self._provisioned.get(owner, ()):
            env.state = State.IDLE
            env.last_used = now
            self._prov_idle[env.fv.key].append(env)
            return
        if now - env.created > self.settings.max_lifetime_s:
            self._spawn(self._end(env))
            return
        env.state = State.IDLE
        env.last_used = now
        self._idle[env.fv.key].append(env)

    def retire(self, name: str, keep: set[tuple[str, str, str]]) -> None:
        """End a function's environments whose (version, revision) is not in ``keep``.

        Called when a function's code or configuration changes (``keep`` is what still
        exists). Idle ones end now; busy ones finish their invoke and end on release.
        """
        self._valid[name] = keep
        for pools in (self._idle, self._prov_idle):
            for key in [k for k in pools if k[0] == name and k not in keep]:
                for env in pools.pop(key):
                    self._spawn(self._end(env))
        for envs in self._provisioned.values():
            envs[:] = [e for e in envs if e.fv.key in keep or e.fv.name != name]
        if not keep:
            self.keepalive.forget(name)

    # --- provisioned concurrency ------------------------------------------------------

    async def provision(self, owner: str, fv: FunctionVersion, count: int) -> int:
        """Keep ``count`` initialised environments of ``fv`` for ``owner``; returns how
        many are ready. Environments of another version (an alias moved) are replaced."""
        envs = self._provisioned.setdefault(owner, [])
        for env in [e for e in envs if e.fv.key != fv.key or not e.alive]:
            envs.remove(env)
            self._drop_provisioned(env)
        while len(envs) > count:
            self._drop_provisioned(envs.pop())
        missing = count - len(envs)
        if missing > 0:
            created = await asyncio.gather(
                *(self._prewarm_one(fv) for _ in range(missing)), return_exceptions=True
            )
            still_wanted = self._provisioned.get(owner) is envs  # not unprovisioned meanwhile
            for made in created:
                if isinstance(made, BaseException):
                    log.warning("provisioning %s failed: %s", owner, made)
                elif not still_wanted or not made.alive:
                    self._spawn(self._end(made))
                else:
                    envs.append(made)
                    self._prov_owner[made.id] = owner
                    self._prov_idle[fv.key].append(made)
            if not still_wanted:
                return 0
        return sum(1 for e in envs if e.alive)

    def unprovision(self, owner: str) -> None:
        """Stop keeping environments for ``owner``; idle ones end now."""
        for env in self._provisioned.pop(owner, []):
            self._drop_provisioned(env)

    def provisioned_in_use(self, name: str) -> int:
        """A function's provisioned environments running an invoke right now."""
        return sum(
            1
            for owner, envs in self._provisioned.items()
            if owner.partition("/")[0] == name
            for e in envs
            if e.state == State.BUSY
        )

    def provisioned_ready(self, owner: str) -> int:
        return sum(1 for e in self._provisioned.get(owner, ()) if e.alive)

    def _drop_provisioned(self, env: Environment) -> None:
        self._prov_owner.pop(env.id, None)
        idle = self._prov_idle.get(env.fv.key)
        if idle and env in idle:
            idle.remove(env)
            self._spawn(self._end(env))
        # A busy one ends when released (it is no longer in any provisioned list, and
        # has no owner, so release treats it as on-demand and the reaper takes it).

    async def _prewarm_one(self, fv: FunctionVersion) -> Environment:
        env = await self._create(fv, "provisioned-concurrency")
        failure = await env.initialised()
        if failure is not None:
            await self._end(env)
            kind, body, err = failure
            raise RuntimeError(f"Init failed ({err}): {body.decode(errors='replace')[:200]}")
        return env

    def idle_count(self, key: tuple[str, str, str]) -> int:
        """Idle environments (provisioned or not) of one version's code and configuration."""
        return len(self._idle.get(key, ())) + len(self._prov_idle.get(key, ()))

    def memory_in_use_mb(self) -> int:
        """The memory this worker's live environments may use (the sum of MemorySize)."""
        return sum(e.fv.memory_mb for e in self._all.values())

    def environments(self, name: str | None = None) -> list[Environment]:
        return [e for e in self._all.values() if name is None or e.fv.name == name]

    # --- internals ------------------------------------------------------------------

    async def _create(self, fv: FunctionVersion, init_type: str = "on-demand") -> Environment:
        runtime = available_runtimes()[fv.runtime]
        env_id = uuid.uuid4().hex
        # In a thread: with a remote code store a node's first use of a package downloads it.
        code_dir = await asyncio.to_thread(self.code.unpacked, fv.code_sha)
        opt_dir = (
            await asyncio.to_thread(merged_layers, self.code, fv.layer_shas, self._layers_root)
            if fv.layer_shas
            else None
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
            env=self._function_env(fv, stream, init_type),
            network=self.settings.network and fv.network,
        )
        problem = _entrypoint_problem(runtime.kind, code_dir, opt_dir)
        sandbox = None
        if problem is None:
            try:
                sandbox = await self.backend.create(spec)
            except OSError as exc:
                problem = f"could not start the runtime: {exc.strerror or exc}"
        if sandbox is None:
            # Lambda reports a runtime that cannot start as the invoke's function error.
            env = Environment(fv, _NotStarted(env_id), stream, self._on_log)
            env.post_init_error(
                json.dumps(
                    {"errorType": "Runtime.InvalidEntrypoint", "errorMessage": problem}
                ).encode(),
                "Runtime.InvalidEntrypoint",
            )
            self._all[env.id] = env
            self._spawn(self._reap_on_exit(env))
            return env
        env = Environment(fv, sandbox, stream, self._on_log, self.settings.log_bytes_per_invoke)
        server = RuntimeAPIServer(env, self.settings.runtime_api_head_timeout_s)
        await server.start(sandbox.runtime_api)
        self._servers[env.id] = server
        self._all[env.id] = env
        self.cold_starts += 1
        self._spawn(self._reap_on_exit(env))
        return env

    def _function_env(
        self, fv: FunctionVersion, stream: str, init_type: str = "on-demand"
    ) -> dict[str, str]:
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
            "AWS_LAMBDA_INITIALIZATION_TYPE": init_type,
        }
        if runtime.kind == "node":
            env["NODE_PATH"] = (
                "/opt/nodejs/node22/node_modules:/opt/nodejs/node_modules:"
                "/var/runtime/node_modules:/var/task"
            )
        env.update(fv.env_vars)
        return env

    def _on_log(self, env: Environment, events: list[tuple[int, str]]) -> None:
        self._log_sink(env.fv.log_group, env.log_stream, events)

    async def _reap_on_exit(self, env: Environment) -> None:
        await env.wait_exited()
        self._forget(env)

    def _forget(self, env: Environment) -> None:
        self._all.pop(env.id, None)
        for pools in (self._idle, self._prov_idle):
            idle = pools.get(env.fv.key)
            if idle and env in idle:
                idle.remove(env)
        owner = self._prov_owner.pop(env.id, None)
        if owner is not None and env in self._provisioned.get(owner, ()):
            self._provisioned[owner].remove(env)
            if self.provisioned_lost is not None:
                self.provisioned_lost(owner)
        server = self._servers.pop(env.id, None)
        if server is not None:
            self._spawn(server.close())

    async def _end(self, env: Environment) -> None:
        await env.shutdown()
        self._forget(env)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reap_forever(self, interval_s: float | None = None) -> None:
        """End idle environments past the keep-alive and any past their lifetime."""
        if interval_s is None:
            # Fine enough to honour short keep-alives (tests), at most once a second.
            s = self.settings
            interval_s = max(0.05, min(1.0, s.keepalive_s / 8, s.max_lifetime_s / 8))
        while True:
            await asyncio.sleep(interval_s)
            self.reap_once()

    def reap_once(self) -> None:
        now = time.monotonic()
        lifetime = self.settings.max_lifetime_s
        for key, idle in list(self._idle.items()):
            keepalive = self.keepalive.keepalive_s(key[0])
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
        # Provisioned environments have no keep-alive, but they too end at their lifetime,
        # each replaced by a fresh one before it goes.
        for idle in list(self._prov_idle.values()):
            for env in [e for e in idle if now - e.created > lifetime]:
                if env.id not in self._renewing:
                    self._renewing.add(env.id)
                    self._spawn(self._renew(env))

    async def _renew(self, old: Environment) -> None:
        """Replace a provisioned environment at its lifetime: initialise its successor
        first (the old one keeps serving meanwhile), then retire it."""
        try:
            owner = self._prov_owner.get(old.id)
            if owner is None:
                return
            try:
                new: Environment | None = await self._prewarm_one(old.fv)
            except Exception as exc:
                log.warning("renewing a provisioned environment of %s failed: %s", owner, exc)
                new = None
            envs = self._provisioned.get(owner)
            if new is not None:
                if envs is None or not new.alive:
                    self._spawn(self._end(new))
                    new = None
                else:
                    envs.append(new)
                    self._prov_owner[new.id] = owner
                    self._prov_idle[new.fv.key].append(new)
            if envs is not None and old in envs:
                envs.remove(old)
            self._prov_owner.pop(old.id, None)
            idle = self._prov_idle.get(old.fv.key)
            if idle and old in idle:
                idle.remove(old)
                self._spawn(self._end(old))
            # (A busy one goes back as on-demand on release, past its lifetime: the reaper
            # ends it then.)
            if new is None and envs is not None and self.provisioned_lost is not None:
                self.provisioned_lost(owner)  # let the config's reconciler try again
        finally:
            self._renewing.discard(old.id)

    async def close(self) -> None:
        self._provisioned.clear()
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


def _entrypoint_problem(kind: str, code_dir: Path, opt_dir: Path | None) -> str | None:
    """Why a custom runtime cannot start (no executable bootstrap), in Lambda's words."""
    if kind != "provided":
        return None
    candidates = [code_dir / "bootstrap", *([opt_dir / "bootstrap"] if opt_dir else [])]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return None
    return (
        "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]"
        if not any(p.exists() for p in candidates)
        else "Bootstrap is not executable: chmod 755 it before zipping"
    )


class _NotStarted:
    """Stands in for the sandbox of a runtime that could not start: already over."""

    def __init__(self, env_id: str) -> None:
        self.env_id = env_id
        self.runtime_api = socket.socket()
        read_fd, write_fd = os.pipe()
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.log_fd = read_fd
        self._over = asyncio.Event()

    async def wait(self) -> ExitInfo:
        await self._over.wait()
        return ExitInfo(127)

    def kill(self) -> None:
        self._over.set()

    def max_memory_used_mb(self) -> int:
        return 0

    def freeze(self) -> None:
        pass

    def thaw(self) -> None:
        pass

    def close(self) -> None:
        self.runtime_api.close()
        try:
            os.close(self.log_fd)
        except OSError:
            pass
