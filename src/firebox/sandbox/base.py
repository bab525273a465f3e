"""The sandbox interface: one running execution environment, and the backends that make them.

A backend turns a SandboxSpec into a running runtime process whose Runtime API client
will connect to ``Sandbox.runtime_api`` (a listening socket the server serves) and whose
stdout and stderr arrive on ``Sandbox.log_fd``. Backends: ``process`` (Linux namespaces,
cgroups and a zygote) and ``unsandboxed`` (a plain process; development only).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from firebox.runtime.runtimes import RuntimeInfo


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    env_id: str
    runtime: RuntimeInfo
    handler: str
    # Host directories: the function's unpacked code (mounted read-only at /var/task) and
    # its layers merged in order (mounted read-only at /opt), if any.
    code_dir: Path
    opt_dir: Path | None
    memory_mb: int
    ephemeral_mb: int
    # The environment variables the runtime sees, without AWS_LAMBDA_RUNTIME_API and the
    # paths, which the backend sets because only it knows them.
    env: dict[str, str] = field(default_factory=dict)
    network: bool = True

    @property
    def function_name(self) -> str:
        """Whose environment this is: a Python function's environments are forked from a
        template of its own (templates.py). Lambda's variable, which a function cannot
        set itself (a reserved key)."""
        return self.env.get("AWS_LAMBDA_FUNCTION_NAME", "")


@dataclass(frozen=True, slots=True)
class ExitInfo:
    # Exit status as os.waitstatus_to_exitcode gives it: negative for a signal.
    status: int
    oom_killed: bool = False

    def describe(self) -> str:
        """Lambda's wording: 'exit status 1' or 'signal: killed'."""
        if self.status < 0:
            names = {9: "killed", 6: "aborted", 11: "segmentation fault", 15: "terminated"}
            return f"signal: {names.get(-self.status, str(-self.status))}"
        return f"exit status {self.status}"


class Sandbox(Protocol):
    env_id: str
    runtime_api: socket.socket
    log_fd: int

    async def wait(self) -> ExitInfo:
        """Wait for the runtime process (and so the environment) to end."""

    def kill(self) -> None:
        """End the environment now (SIGKILL everything in it). Harmless if already dead."""

    def max_memory_used_mb(self) -> int:
        """Peak memory of the environment so far, in MB."""

    def freeze(self) -> None:
        """Stop every process of the environment where it stands, between invokes (a
        no-op where the backend or its settings do not freeze)."""

    def thaw(self) -> None:
        """Let a frozen environment run again. Harmless if it is not frozen."""

    def close(self) -> None:
        """Release what the sandbox holds (fds, cgroups) after it has ended."""


class SandboxBackend(Protocol):
    name: str

    async def start(self) -> None:
        """Check the host, start zygotes and pools; raise SandboxUnavailable if impossible."""

    async def create(self, spec: SandboxSpec) -> Sandbox:
        """Start an environment; returns once the runtime process exists."""

    async def close(self) -> None:
        """Kill every environment this backend started."""


class SandboxUnavailable(RuntimeError):
    """The host cannot give the isolation this backend promises (and why)."""
