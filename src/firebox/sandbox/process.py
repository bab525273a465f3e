"""The ``process`` backend: Linux namespaces, cgroups and a zygote per runtime.

The server never forks itself (it has threads). Per runtime it starts one zygote
(``zygote.py``, under that runtime's interpreter) and talks to it over a Unix socket: the
zygote forks children that join their cgroups and namespaces ahead of time (the pool) and
hands back, per child, a pidfd, the read end of its log pipe and a control socket; the
child itself sends its Runtime API listener, made inside its own network namespace. A cold
start then costs one message to a waiting child (its limits and its function).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import ctypes.util
import hashlib
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from firebox.runtime.java import BuildError
from firebox.runtime.launch import PRESTARTED_KINDS, Launch, prepare_launch, prestart_obstacle
from firebox.runtime.runtimes import RuntimeInfo, client_dir
from firebox.sandbox import cgroups, netns
from firebox.sandbox.base import ExitInfo, SandboxSpec, SandboxUnavailable
from firebox.sandbox.egress import EgressFilter, EgressPolicy, EgressUnavailable, parse_cidrs
from firebox.sandbox.netns import Network
from firebox.sandbox.templates import Templates
from firebox.settings import Settings

log = logging.getLogger(__name__)

ZYGOTE_SCRIPT = Path(__file__).with_name("zygote.py")
RUNTIME_API = "127.0.0.1:9001"
_MAX_FDS = 4


@cache
def host_problems(network: bool = True) -> list[str]:
    """Why the process backend cannot run on this host (empty when it can).

    ``network=False``: the server runs with outbound networking off, so slirp4netns is not
    needed.
    """
    problems: list[str] = []
    if sys.platform != "linux":
        return ["the process sandbox needs Linux"]
    if os.geteuid() != 0:
        problems.append("needs root: creates namespaces and cgroups")
        return problems
    for ns in ("pid", "mnt", "net", "ipc", "uts", "cgroup"):
        if not os.path.exists(f"/proc/self/ns/{ns}"):
            problems.append(f"kernel lacks {ns} namespaces")
    problems.extend(cgroups.problems())
    if ctypes.util.find_library("seccomp") is None:
        problems.append("libseccomp (Debian package libseccomp2) not found")
    if not hasattr(os, "pidfd_open"):
        problems.append("this Python lacks os.pidfd_open")
    if network:
        problems.extend(netns.problems())
    if not problems:
        problems.extend(_probe_namespaces())
    return problems


def _probe_namespaces() -> list[str]:
    """Really create the namespaces once, in a throwaway process."""
    code = (
        "import ctypes,os\n"
        "libc=ctypes.CDLL(None,use_errno=True)\n"
        "if libc.unshare(0x20000000|0x00020000|0x40000000|0x08000000|0x04000000|0x02000000)"
        "!=0:\n raise SystemExit(os.strerror(ctypes.get_errno()))\n"
        "if libc.mount(b'none',b'/',None,16384|(1<<18),None)!=0:\n"
        " raise SystemExit('mount: '+os.strerror(ctypes.get_errno()))\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return [f"cannot probe namespaces: {exc}"]
    if out.returncode != 0:
        return [f"cannot create namespaces: {out.stderr.strip() or out.stdout.strip()}"]
    return []


def _recv(sock: socket.socket) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    data, anc, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(_MAX_FDS * fds.itemsize))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    return data, list(fds)


class ChildFailed(OSError):
    """A forked child died or hung before it was ready (the host refused something)."""


@dataclass(slots=True)
class Slot:
    """A pre-forked, pre-sandboxed child waiting to learn its function."""

    pid: int
    pidfd: int
    log_fd: int
    ctl: socket.socket
    listener: socket.socket
    group: cgroups.Group
    exit: asyncio.Future[int]
    network: Network | None = None

    def discard(self) -> None:
        for closer in (self.ctl.close, self.listener.close):
            with contextlib.suppress(OSError):
                closer()
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        for fd in (self.pidfd, self.log_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.network is not None:
            self.network.stop()


class ProcessSandbox:
    def __init__(self, env_id: str, slot: Slot, backend: ProcessBackend) -> None:
        self.env_id = env_id
        self.runtime_api = slot.listener
        self.log_fd = slot.log_fd
        self._slot = slot
        self._backend = backend
        self._closed = False

    async def wait(self) -> ExitInfo:
        status = await asyncio.shield(self._slot.exit)
        # The OOM killer only ever sends SIGKILL; any other end was the runtime's own.
        oom = status == -signal.SIGKILL and self._slot.group.oom_killed()
        return ExitInfo(status, oom_killed=oom)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(self._slot.pidfd, signal.SIGKILL)
        # Killed first, thawed second: a frozen task dies on thaw without running again.
        self.thaw()
        if self._slot.network is not None:
            self._slot.network.stop()

    def freeze(self) -> None:
        if self._backend.settings.freeze_idle and not self._closed:
            try:
                self._slot.group.freeze()
            except OSError as exc:  # the group is being torn down with the environment
                log.debug("cannot freeze environment %s: %s", self.env_id, exc)

    def thaw(self) -> None:
        try:
            self._slot.group.thaw()
        except OSError as exc:
            log.debug("cannot thaw environment %s: %s", self.env_id, exc)

    def max_memory_used_mb(self) -> int:
        return self._slot.group.max_memory_mb()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.kill()
        slot = self._slot
        for closer in (slot.listener.close, slot.ctl.close):
            with contextlib.suppress(OSError):
                closer()
        for fd in (slot.pidfd, slot.log_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._backend._release_group(slot.group)


class Zygote:
    """The server's end of one zygote process."""

    def __init__(
        self,
        key: str,
        runtime: RuntimeInfo | None,
        work_dir: Path,
        hierarchy: cgroups.Hierarchy,
        egress: EgressFilter | None,
        memory_mb: int = 128,
    ) -> None:
        self.key = key
        self.runtime = runtime
        # python: forks a warm interpreter; node: pre-starts `node` in each pooled
        # environment (Node cannot fork); exec: runs the function's bootstrap, or (Java,
        # Ruby: with a Launch) pre-starts the runtime its pooled children get.
        kinds = {"python": "python", "node": "node"}
        self.kind = kinds.get(runtime.kind, "exec") if runtime is not None else "exec"
        # A JVM's heap is sized from this when it starts (one template per MemorySize).
        self.memory_mb = memory_mb
        self.launch: Launch | None = None
        self.work_dir = work_dir
        self.hierarchy = hierarchy
        # Outbound network for the environments (None: off), through this filter.
        self.egress = egress
        self.proc: subprocess.Popen[bytes] | None = None
        self._pidfd: int | None = None
        self.sock: socket.socket | None = None
        self.alive = False
        # Pre-forked sandboxes kept waiting (the backend's templates set it).
        self.pool_size = 0
        self._hello: asyncio.Future[None] | None = None
        self._forked: dict[int, asyncio.Future[tuple[int, list[int], asyncio.Future[int]]]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._slot_ids = itertools.count()
        self.pool: list[Slot] = []
        # Every slirp4netns started, so that stop() can reap them all.
        self.networks: set[Network] = set()
        self._refilling: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        root = self.work_dir / f"root-{self.key}"
        root.mkdir(parents=True, exist_ok=True)
        rt = self.runtime
        if rt is not None and rt.kind in PRESTARTED_KINDS and self.launch is None:
            # Java's client is compiled at first use: off the event loop.
            try:
                self.launch = await asyncio.to_thread(
                    prepare_launch, rt, self.memory_mb, self.work_dir / "runtimes"
                )
            except BuildError as exc:
                raise SandboxUnavailable(str(exc)) from exc
        if rt is not None and rt.kind == "python":
            assert rt.executable is not None and rt.prefix is not None
            exe, prefix, host_prefix = str(rt.executable), str(rt.prefix), str(rt.prefix)
            cdir = client_dir("python")
        else:
            exe, prefix, host_prefix = os.path.realpath(sys.executable), "", sys.base_prefix
            cdir = self.launch.client_dir if self.launch is not None else client_dir("node")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cfg: dict[str, Any] = {
            "kind": self.kind,
            "root": str(root),
            "client_dir": str(cdir),
            "prefix": prefix,
            "host_prefix": host_prefix,
            "executable": exe,
            "fd": theirs.fileno(),
        }
        if self.launch is not None:
            cfg["lang_dir"] = str(self.launch.lang_dir) if self.launch.lang_dir else ""
            cfg["training"] = self.launch.training
        try:
            # Stage 1 needs the standard library only: no site (its .pth files cost more
            # than the rest of its start; stage 2, which runs functions, has it).
            argv = [exe, "-I", "-S", "-B", str(ZYGOTE_SCRIPT), json.dumps(cfg)]
            self.proc = _spawn(argv, theirs.fileno())
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self._hello = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_message)
        # Its exit is watched directly too, not only through the socket's end.
        self._pidfd = os.pidfd_open(self.proc.pid)
        loop.add_reader(self._pidfd, self._on_death)
        # A zygote that first makes its runtime's archive (Java) says hello after that run.
        training = self.launch.training if self.launch is not None else None
        try:
            await asyncio.wait_for(self._hello, 30 + (training["timeout_s"] if training else 0))
        except (TimeoutError, ConnectionError) as exc:
            self.stop()
            raise SandboxUnavailable(f"zygote for {self.key} did not start: {exc}") from exc
        if self.launch is not None:
            # Now that the zygote has made its archive (or failed to), the runtime's flags.
            self.launch.settle()
        self.alive = True

    def _on_message(self) -> None:
        assert self.sock is not None
        while True:
            try:
                data, fds = _recv(self.sock)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self._on_death()
                return
            msg = json.loads(data)
            op = msg.get("op")
            if op == "hello" and self._hello is not None and not self._hello.done():
                self._hello.set_result(None)
            elif op == "forked":
                fut = self._forked.pop(msg["slot"], None)
                if fut is not None and not fut.done():
                    # Registered here, not after the await: the child's exit may be the very
                    # next message.
                    exit_fut = asyncio.get_running_loop().create_future()
                    self._exits[msg["pid"]] = exit_fut
                    fut.set_result((msg["pid"], fds, exit_fut))
                else:
                    for fd in fds:
                        os.close(fd)
            elif op == "error":
                fut = self._forked.pop(msg["slot"], None)
                if fut is not None and not fut.done():
                    fut.set_exception(OSError(msg.get("message", "prefork failed")))
            elif op == "exit":
                ex = self._exits.pop(msg["pid"], None)
                if ex is not None and not ex.done():
                    ex.set_result(int(msg["status"]))

    def _on_death(self) -> None:
        self.alive = False
        loop = asyncio.get_running_loop()
        if self.sock is not None:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(self.sock.fileno())
        self._close_pidfd()
        err = ConnectionError(f"zygote for {self.key} died")
        if self._hello is not None and not self._hello.done():
            self._hello.set_exception(err)
        for fut in self._forked.values():
            if not fut.done():
                fut.set_exception(err)
        self._forked.clear()
        # Its children were reparented away from it: their exit statuses are lost to us.
        for ex in self._exits.values():
            if not ex.done():
                ex.set_result(-signal.SIGKILL)
        self._exits.clear()
        for slot in self.pool:
            slot.discard()
            _remove_group_soon(slot.group)
        self.pool.clear()

    async def prefork(self, prestart: bool = True) -> Slot:
        """A new child, in its cgroups and namespaces, with its Runtime API listener (and,
        with a Launch and ``prestart``, its runtime already starting)."""
        if not self.alive or self.sock is None:
            raise SandboxUnavailable(f"zygote for {self.key} is not running")
        loop = asyncio.get_running_loop()
        slot_id = next(self._slot_ids)
        group = self.hierarchy.create(cgroups.group_name(self.key, slot_id))
        fut: asyncio.Future[tuple[int, list[int], asyncio.Future[int]]] = loop.create_future()
        self._forked[slot_id] = fut
        try:
            msg: dict[str, Any] = {"op": "prefork", "slot": slot_id, "cgroups": group.procs_files}
            if prestart and self.launch is not None and self.launch.prestart is not None:
                msg["prestart"] = self.launch.prestart
            self.sock.send(json.dumps(msg).encode())
            pid, fds, exit_fut = await asyncio.wait_for(fut, 30)
        except BaseException:
            self._forked.pop(slot_id, None)
            group.kill_all()
            group.remove()
            raise
        pidfd, log_fd, ctl_fd = fds
        ctl = socket.socket(fileno=ctl_fd)
        try:
            listener = await self._await_ready(ctl, exit_fut)
        except BaseException:
            ctl.close()
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.close(pidfd)
            os.close(log_fd)
            self._release_later(group, exit_fut)
            raise
        slot = Slot(pid, pidfd, log_fd, ctl, listener, group, exit_fut)
        os.set_blocking(log_fd, False)
        if self.egress is not None:
            slot.network = Network(pid)
            slot.network.start()
            self.networks = {n for n in self.networks if not n.finished}
            self.networks.add(slot.network)
            await self._filter(slot)
        return slot

    async def _filter(self, slot: Slot) -> None:
        """Put the slot's slirp4netns under the egress filter before the function can send
        anything (it runs only once create() has sent it its spec), or take its network
        away: never an unfiltered uplink."""
        assert self.egress is not None and slot.network is not None
        pid = slot.network.helper_pid
        try:
            if pid is None:
                raise ProcessLookupError("slirp4netns did not start")
            # Off the event loop: a cgroup migration can wait for an RCU grace period.
            await asyncio.to_thread(self.egress.add, pid)
        except OSError as exc:
            log.warning("outbound network for a sandbox is off: egress filter: %s", exc)
            slot.network.stop()
            slot.network = None

    async def _await_ready(
        self, ctl: socket.socket, exit_fut: asyncio.Future[int]
    ) -> socket.socket:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[socket.socket] = loop.create_future()
        ctl.setblocking(False)

        def on_ready() -> None:
            try:
                data, fds = _recv(ctl)
            except BlockingIOError:
                return
            except OSError as exc:
                ready.set_exception(exc)
                return
            finally:
                if not ready.done():
                    loop.remove_reader(ctl.fileno())
            if not fds:
                ready.set_exception(ConnectionError("sandbox child ended before it was ready"))
                return
            for extra in fds[1:]:
                os.close(extra)
            ready.set_result(socket.socket(fileno=fds[0]))

        loop.add_reader(ctl.fileno(), on_ready)
        try:
            waits: list[asyncio.Future[Any]] = [ready, exit_fut]
            done, _ = await asyncio.wait(waits, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        finally:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(ctl.fileno())
        if ready in done:
            return ready.result()
        ready.cancel()
        raise ChildFailed(
            "sandbox child exited before it was ready"
            if exit_fut.done()
            else "sandbox child setup timed out"
        )

    def _release_later(self, group: cgroups.Group, exit_fut: asyncio.Future[int]) -> None:
        exit_fut.add_done_callback(lambda _f: _remove_group_soon(group))

    def prefill(self) -> None:
        self._refill(self.pool_size)

    async def take(self, prestart: bool = True) -> Slot:
        """A child for a new environment: a pooled one, or (``prestart`` False: a runtime
        that must start with the function's environment) a fresh one that is not."""
        if not prestart and self.launch is not None and self.launch.prestart is not None:
            try:
                return await self.prefork(prestart=False)
            except OSError as exc:
                raise SandboxUnavailable(f"cannot create a sandbox: {exc}") from exc
        pool_size = self.pool_size
        while self.pool:
            slot = self.pool.pop()
            if not slot.exit.done():
                self._refill(pool_size)
                return slot
            slot.discard()
            _remove_group_soon(slot.group)
        try:
            slot = await self.prefork()
        except OSError as exc:
            # One retry: a child can lose a race with the host (its group swept, a fork
            # refused for a moment); a second failure is the host's state, not luck, and
            # the server's error (500), not the function's.
            log.warning("sandbox prefork failed, retrying once: %s", exc)
            try:
                slot = await self.prefork()
            except OSError as again:
                raise SandboxUnavailable(f"cannot create a sandbox: {again}") from again
        self._refill(pool_size)
        return slot

    def _refill(self, pool_size: int) -> None:
        if pool_size <= 0 or (self._refilling is not None and not self._refilling.done()):
            return
        self._refilling = asyncio.ensure_future(self._fill(pool_size))

    async def _fill(self, pool_size: int) -> None:
        while self.alive and len(self.pool) < pool_size:
            try:
                slot = await self.prefork()
            except (OSError, SandboxUnavailable) as exc:
                log.warning("could not refill the %s pool: %s", self.key, exc)
                return
            if not self.alive:
                slot.discard()
                return
            self.pool.append(slot)

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def stop(self) -> None:
        self.alive = False
        self._close_pidfd()
        if self._refilling is not None:
            self._refilling.cancel()
        for slot in self.pool:
            slot.discard()
            _remove_group_soon(slot.group)
        self.pool.clear()
        if self.sock is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        if self.proc is not None and self.proc.poll() is None:
            # The zygote kills its children when its socket closes; make sure of it.
            self.proc.kill()
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        for network in self.networks:
            network.reap()
        self.networks.clear()
        with contextlib.suppress(OSError):  # only a mount point inside the zygote
            (self.work_dir / f"root-{self.key}").rmdir()


def _spawn(argv: list[str], fd: int) -> subprocess.Popen[bytes]:
    # A clean environment: the zygote and everything it forks must never see the server's.
    return subprocess.Popen(
        argv,
        pass_fds=[fd],
        stdin=subprocess.DEVNULL,
        close_fds=True,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )


def _remove_group_soon(group: cgroups.Group, tries: int = 50) -> None:
    """rmdir a dead environment's cgroups, retrying while its processes finish dying."""
    if group.remove() or tries <= 0:
        return
    group.kill_all()
    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop().call_later(0.02, _remove_group_soon, group, tries - 1)


@dataclass(slots=True)
class _State:
    templates: Templates[Zygote] | None = None
    sandboxes: set[ProcessSandbox] = field(default_factory=set)


class ProcessBackend:
    name = "process"

    def __init__(self, settings: Settings, work_dir: Path) -> None:
        self.settings = settings
        self.work_dir = work_dir
        # Groups are named for the data dir — and, with --processes, for which process:
        # each sweeps what its own dead predecessor left, never a sibling's environments.
        owner = str(settings.data_dir.absolute())
        if settings.process_index >= 0:
            owner += f":{settings.process_index}"
        key = hashlib.sha256(owner.encode()).hexdigest()[:12]
        self._cgroup_key = key
        # Outbound network for functions: the setting, unless the host lacks slirp4netns
        # or cannot enforce the egress policy.
        self.network = settings.network
        self._egress: EgressFilter | None = None
        self._hierarchy: cgroups.Hierarchy | None = None
        self._state = _State()

    async def start(self) -> None:
        problems = host_problems(network=False)
        if problems:
            raise SandboxUnavailable("the process sandbox cannot run here: " + "; ".join(problems))
        if self.network:
            missing = netns.problems()
            if missing:
                # Isolation is whole without it; only the uplink is missing. Run with the
                # network off (the safe side) and say so, rather than refuse to start.
                log.warning(
                    "%s: functions run with outbound network OFF (apt-get install "
                    "slirp4netns to turn it on)",
                    "; ".join(missing),
                )
                self.network = False
        if self.network:
            self._egress = await self._install_egress()
            self.network = self._egress is not None
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._hierarchy = cgroups.Hierarchy(self._cgroup_key)
        swept = await asyncio.to_thread(self._hierarchy.sweep)
        if swept:
            log.warning("killed %d environment(s) left by a previous server", swept)
        await asyncio.to_thread(self._hierarchy.sweep_orphans)
        self._hierarchy.setup()
        hierarchy = self._hierarchy
        egress = self._egress if self.network else None

        def make(key: str, rt: RuntimeInfo, variant: str) -> Zygote:
            kind = rt if rt.kind in ("python", "node", *PRESTARTED_KINDS) else None
            memory_mb = int(variant) if variant else 128
            return Zygote(key, kind, self.work_dir, hierarchy, egress, memory_mb)

        self._state.templates = Templates(
            make,
            self.settings.template_spares,
            self.settings.pool_size,
            per_function=self.settings.template_per_function,
        )
        if self.settings.pool_size > 0:
            # Warm the runtime most functions use, off the start-up path.
            name = f"python{sys.version_info[0]}.{sys.version_info[1]}"
            from firebox.runtime.runtimes import available_runtimes

            rt = available_runtimes().get(name)
            if rt is not None:
                self._state.templates.warm(rt)

    async def _install_egress(self) -> EgressFilter | None:
        policy = EgressPolicy.for_host(parse_cidrs(self.settings.egress_allow))
        try:
            egress = EgressFilter(policy, self._cgroup_key)
            await asyncio.to_thread(egress.install)
        except EgressUnavailable as exc:
            # Unfiltered egress would reach the host's own services and the cloud's
            # metadata: run with the network off instead, and say so.
            log.warning(
                "cannot enforce the egress policy (%s): functions run with outbound network OFF",
                exc.strerror or exc,
            )
            return None
        log.info("outbound network for functions: %s", policy.describe())
        return egress

    async def _zygote(self, rt: RuntimeInfo, function: str = "", memory_mb: int = 128) -> Zygote:
        assert self._state.templates is not None, "start() first"
        # A JVM's heap is sized when it starts: Java's templates are kept per MemorySize.
        variant = str(memory_mb) if rt.kind == "java" else ""
        return await self._state.templates.get(rt, function, variant)

    async def create(self, spec: SandboxSpec) -> ProcessSandbox:
        zyg = await self._zygote(spec.runtime, spec.function_name, spec.memory_mb)
        child = self._child_spec(spec, zyg)
        # A pre-started runtime unless the function needs its environment at start-up.
        prestart = prestart_obstacle(spec.runtime, child["env"], spec.code_dir) is None
        try:
            slot = await zyg.take(prestart)
        except SandboxUnavailable:
            if zyg.alive:
                raise
            # The zygote died under us: a new one, once.
            zyg = await self._zygote(spec.runtime, spec.function_name, spec.memory_mb)
            child = self._child_spec(spec, zyg)
            slot = await zyg.take(prestart)
        try:
            slot.group.set_limits(spec.memory_mb)
            if not (spec.network and self.network) and slot.network is not None:
                slot.network.stop()
                slot.network = None
            elif (
                slot.network is not None
                and not slot.network.ready
                and not await slot.network.wait_ready()
            ):
                log.warning("outbound network for environment %s did not come up", spec.env_id)
            message = json.dumps(child).encode() + b"\n"
            slot.ctl.setblocking(True)
            slot.ctl.sendall(message)
            slot.ctl.close()
        except BaseException:
            slot.discard()
            _remove_group_soon(slot.group)
            raise
        sandbox = ProcessSandbox(spec.env_id, slot, self)
        self._state.sandboxes.add(sandbox)
        templates = self._state.templates
        assert templates is not None
        templates.in_use(zyg)

        def ended(_f: asyncio.Future[int]) -> None:
            self._state.sandboxes.discard(sandbox)
            templates.done_with(zyg)

        slot.exit.add_done_callback(ended)
        return sandbox

    def _child_spec(self, spec: SandboxSpec, zyg: Zygote) -> dict[str, Any]:
        env = dict(spec.env)
        env.update(
            AWS_LAMBDA_RUNTIME_API=RUNTIME_API,
            LAMBDA_TASK_ROOT="/var/task",
            LAMBDA_RUNTIME_DIR="/var/runtime",
        )
        env.setdefault("PATH", "/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin")
        rt = spec.runtime
        argv: list[str] = []
        if rt.kind == "node":
            assert rt.executable is not None
            argv = [str(rt.executable), "/var/runtime/index.js"]
        elif rt.kind in PRESTARTED_KINDS:
            assert zyg.launch is not None
            argv = zyg.launch.argv
        elif rt.kind != "python":
            # lexists: a package's bootstrap may be a link, which only the sandbox, in its
            # own mount namespace, may follow; the host never does.
            argv = ["/var/task/bootstrap"]
            if (
                not os.path.lexists(spec.code_dir / "bootstrap")
                and spec.opt_dir is not None
                and os.path.lexists(spec.opt_dir / "bootstrap")
            ):
                argv = ["/opt/bootstrap"]
        return {
            "code": str(spec.code_dir.resolve()),
            "opt": str(spec.opt_dir.resolve()) if spec.opt_dir is not None else None,
            "tmp_mb": spec.ephemeral_mb,
            "env": env,
            "argv": argv,
        }

    def _release_group(self, group: cgroups.Group) -> None:
        _remove_group_soon(group)

    async def close(self) -> None:
        for sandbox in list(self._state.sandboxes):
            sandbox.kill()
        if self._state.templates is not None:
            self._state.templates.close()
        if self._hierarchy is not None:
            await asyncio.to_thread(self._hierarchy.sweep)
            self._hierarchy.remove_root()
        if self._egress is not None:
            await asyncio.to_thread(self._egress.remove)
