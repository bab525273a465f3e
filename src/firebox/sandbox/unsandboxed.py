"""A plain process per environment, no isolation: for development on hosts without
namespaces, and only when the operator asks for it explicitly."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

from firebox.runtime.java import BuildError
from firebox.runtime.launch import PRESTARTED_KINDS, host_argv
from firebox.runtime.runtimes import client_dir
from firebox.sandbox.base import ExitInfo, SandboxSpec


class UnsandboxedProcess:
    def __init__(
        self, env_id: str, proc: asyncio.subprocess.Process, listener: socket.socket, log_fd: int
    ) -> None:
        self.env_id = env_id
        self.runtime_api = listener
        self.log_fd = log_fd
        self._proc = proc

    async def wait(self) -> ExitInfo:
        status = await self._proc.wait()
        return ExitInfo(status)

    def kill(self) -> None:
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def freeze(self) -> None:
        """Not frozen: development only, and SIGSTOP would be visible to the runtime."""

    def thaw(self) -> None:
        pass

    def max_memory_used_mb(self) -> int:
        try:
            with open(f"/proc/{self._proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return max(1, int(line.split()[1]) // 1024)
        except OSError:
            pass
        return 0

    def close(self) -> None:
        for closer in (self.runtime_api.close, lambda: os.close(self.log_fd)):
            try:
                closer()
            except OSError:
                pass


def command_for(spec: SandboxSpec, task_root: Path, opt: Path | None) -> list[str]:
    """The argv that starts a runtime of this kind (outside any sandbox)."""
    rt = spec.runtime
    if rt.kind == "python":
        return [str(rt.executable), "-B", str(client_dir("python") / "bootstrap.py")]
    if rt.kind == "node":
        return [str(rt.executable), str(client_dir("node") / "index.js")]
    for candidate in (task_root / "bootstrap", *([opt / "bootstrap"] if opt else [])):
        if candidate.exists():
            return [str(candidate)]
    return [str(task_root / "bootstrap")]


class UnsandboxedBackend:
    name = "unsandboxed"

    def __init__(self, work_dir: Path) -> None:
        self._work_dir = work_dir
        self._procs: set[UnsandboxedProcess] = set()

    async def start(self) -> None:
        self._work_dir.mkdir(parents=True, exist_ok=True)

    async def create(self, spec: SandboxSpec) -> UnsandboxedProcess:
        argv = command_for(spec, spec.code_dir, spec.opt_dir)
        if spec.runtime.kind in PRESTARTED_KINDS:
            # No pool here: the runtime starts with its function (Java's client is built
            # at first use).
            try:
                argv = await asyncio.to_thread(
                    host_argv, spec.runtime, spec.memory_mb, self._work_dir / "runtimes"
                )
            except BuildError as exc:
                raise OSError(str(exc)) from exc
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        tmp = self._work_dir / spec.env_id
        tmp.mkdir(parents=True, exist_ok=True)
        env = dict(spec.env)
        env.update(
            AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}",
            LAMBDA_TASK_ROOT=str(spec.code_dir),
            TMPDIR=str(tmp),
            PYTHONDONTWRITEBYTECODE="1",
        )
        if spec.opt_dir is not None:
            env["FIREBOX_OPT_DIR"] = str(spec.opt_dir)
            env["NODE_PATH"] = f"{spec.opt_dir}/nodejs/node_modules:" + env.get("NODE_PATH", "")
            env["PATH"] = f"{spec.opt_dir}/bin:" + env.get("PATH", "")
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                env=env,
                cwd=str(spec.code_dir),
                start_new_session=True,
            )
        except OSError:
            os.close(read_fd)
            listener.close()
            raise
        finally:
            os.close(write_fd)
        os.set_blocking(read_fd, False)
        sandbox = UnsandboxedProcess(spec.env_id, proc, listener, read_fd)
        self._procs.add(sandbox)
        proc_wait = asyncio.ensure_future(proc.wait())
        proc_wait.add_done_callback(lambda _f: self._procs.discard(sandbox))
        return sandbox

    async def close(self) -> None:
        for proc in list(self._procs):
            proc.kill()
        self._procs.clear()
