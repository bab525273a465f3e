"""Outbound network for an environment's own network namespace, through slirp4netns.

slirp4netns is a user-space TCP/IP stack: the namespace gets a tap device (10.0.2.100,
gateway 10.0.2.2) whose traffic slirp4netns re-originates as ordinary sockets of the host.
Nothing can connect inbound, and ``--disable-host-loopback`` keeps the gateway from
reaching the host's 127.0.0.1 (where the Firebox API and other services listen); where
those host sockets may go is egress.py's policy, enforced on the slirp4netns processes.

slirp4netns runs as root only as long as it must: joining a namespace that root owns and
making its tap device need CAP_SYS_ADMIN and CAP_NET_ADMIN, and it has no option to change
its user. ``--enable-sandbox`` then moves it into an empty read-only root of its own (only
/etc and /run, read-only) and drops every capability but CAP_NET_BIND_SERVICE, with
``no_new_privs``; ``--enable-seccomp`` refuses the syscalls it has no use for.

(pasta, from the passt package, was the first choice, but the Debian 12 build drops to
``nobody`` before it opens the target namespace and so cannot serve a root-owned one.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess


def problems() -> list[str]:
    if shutil.which("slirp4netns") is None:
        return ["slirp4netns (Debian package slirp4netns) not found: no outbound network"]
    return []


class Network:
    """One slirp4netns process serving one environment's network namespace."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._proc: subprocess.Popen[bytes] | None = None
        self._exit_w: int | None = None
        self._ready: asyncio.Future[bool] | None = None
        self._ready_fd = -1

    def start(self) -> None:
        """Start serving the namespace; ``wait_ready`` tells when its interface is up."""
        # It exits by itself when this pipe closes, even if the server dies first.
        exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        argv = [
            "slirp4netns",
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            "--enable-sandbox",
            "--enable-seccomp",
            f"--exit-fd={exit_r}",
            f"--ready-fd={ready_w}",
            str(self.pid),
            "tap0",
        ]
        try:
            self._proc = subprocess.Popen(
                argv,
                pass_fds=[exit_r, ready_w],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError:
            os.close(ready_r)
            os.close(exit_w)
            raise
        finally:
            os.close(exit_r)
            os.close(ready_w)
        self._exit_w = exit_w
        loop = asyncio.get_running_loop()
        ready = self._ready = loop.create_future()
        self._ready_fd = ready_r

        def on_ready() -> None:
            loop.remove_reader(ready_r)
            try:
                ok = bool(os.read(ready_r, 1))
            except OSError:
                ok = False
            os.close(ready_r)
            if not ready.done():
                ready.set_result(ok)

        loop.add_reader(ready_r, on_ready)

    @property
    def helper_pid(self) -> int | None:
        """The slirp4netns process's pid (while it runs)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def ready(self) -> bool:
        return self._ready is not None and self._ready.done() and self._ready.result()

    async def wait_ready(self, timeout_s: float = 5.0) -> bool:
        """True once the namespace's interface is configured."""
        if self._ready is None:
            return False
        try:
            return await asyncio.wait_for(asyncio.shield(self._ready), timeout_s)
        except TimeoutError:
            return False

    def stop(self) -> None:
        if self._ready is not None and not self._ready.done():
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._ready_fd)
            with contextlib.suppress(OSError):
                os.close(self._ready_fd)
            self._ready.set_result(False)
        if self._exit_w is not None:
            with contextlib.suppress(OSError):
                os.close(self._exit_w)
            self._exit_w = None
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(OSError):
            proc.kill()
        _reap_soon(proc)

    def reap(self) -> None:
        """Stop and wait for the process (at shutdown: no zombie outlives the server)."""
        self.stop()
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(1)

    @property
    def finished(self) -> bool:
        return self._proc is None or self._proc.poll() is not None


def _reap_soon(proc: subprocess.Popen[bytes], tries: int = 100) -> None:
    if proc.poll() is not None or tries <= 0:
        return
    try:
        asyncio.get_running_loop().call_later(0.05, _reap_soon, proc, tries - 1)
    except RuntimeError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(1)
