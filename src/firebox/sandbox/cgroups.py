"""cgroup v1 and v2 (detected once): one group per environment with memory (no swap),
CPU in proportion to memory as Lambda allots it, a pids limit, and the freezer that stops
it between invokes.

Socket buffers are kernel memory a function can pin in bulk (100 TCP connections queue
370 MB). cgroup v2 charges them to the group's memory.current, so MemorySize covers them;
cgroup v1 charges them nowhere until ``memory.kmem.tcp.limit_in_bytes`` is set, which
turns on a separate counter for TCP and UDP buffers, capped at ``tcp_buffer_limit``.

Groups live under a root named for the server's data dir (``firebox/<key>``), so that a
server restarted on the same data dir can sweep what a dead predecessor left behind
without touching other servers' environments on the same host.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "cpu", "pids")
# Used where mounted: without it environments are not frozen between invokes.
V1_OPTIONAL = ("freezer",)
# Lambda: 1,769 MB of memory buys one full vCPU.
MB_PER_VCPU = 1769
CPU_PERIOD_US = 100_000
PIDS_MAX = 1024


def detect_version() -> int | None:
    """2 for a unified hierarchy, 1 for v1 with our controllers, None if neither works."""
    if (CGROUP_FS / "cgroup.controllers").exists():
        wanted = {"memory", "cpu", "pids"}
        have = set((CGROUP_FS / "cgroup.controllers").read_text().split())
        return 2 if wanted <= have else None
    if all((CGROUP_FS / c / "cgroup.procs").exists() for c in V1_CONTROLLERS):
        return 1
    return None


def problems() -> list[str]:
    version = detect_version()
    if version is None:
        return ["no usable cgroup hierarchy (need memory, cpu and pids controllers)"]
    if version == 1 and not (CGROUP_FS / "memory" / "memory.memsw.limit_in_bytes").exists():
        return [
            "cgroup v1 memory controller lacks swap accounting (memory.memsw.*): boot "
            "with swapaccount=1"
        ]
    if not os.access(CGROUP_FS / ("memory" if version == 1 else ""), os.W_OK):
        return ["cgroup filesystem is not writable"]
    return []


def cpu_quota_us(memory_mb: int, period_us: int = CPU_PERIOD_US) -> int:
    return max(1000, period_us * memory_mb // MB_PER_VCPU)


def tcp_buffer_limit(memory_mb: int) -> int:
    """Bytes of socket buffers a v1 group may hold: a quarter of its memory, at least
    16 MB. Past it the kernel applies memory pressure to the group's sockets (senders
    wait, windows shrink): throughput drops, nothing fails."""
    return max(16, memory_mb // 4) * 1024 * 1024


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def thaw_dir(d: Path) -> None:
    """Thaw a group whatever its version (a frozen v1 task cannot even die)."""
    for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
        with contextlib.suppress(OSError):
            _write(d / name, value)


@dataclass(slots=True)
class Group:
    """One environment's cgroup(s): a directory per controller on v1, one on v2."""

    version: int
    dirs: dict[str, Path]  # controller -> directory ("" on v2)
    # Kept open: the peak is read after every invoke for the REPORT line, and an
    # open/read/close per invoke was 3% of the server's time.
    _peak_fd: int | None = field(default=None, repr=False)
    # The freezer's state file, written twice per invoke: kept open too.
    _freeze_fd: int | None = field(default=None, repr=False)
    frozen: bool = False

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def _mem(self) -> Path:
        return self.dirs["memory" if self.version == 1 else ""]

    def set_limits(self, memory_mb: int) -> None:
        limit = memory_mb * 1024 * 1024
        quota = cpu_quota_us(memory_mb)
        if self.version == 1:
            mem = self.dirs["memory"]
            # memsw must stay >= limit: lower memsw last when shrinking, first when growing.
            current = int((mem / "memory.limit_in_bytes").read_text())
            order = ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes")
            if limit > current:
                order = order[::-1]
            for name in order:
                (mem / name).write_text(str(limit))
            cpu = self.dirs["cpu"]
            burst = cpu / "cpu.cfs_burst_us"
            if burst.exists():
                burst.write_text("0")  # burst must stay <= quota: clear before shrinking
            (cpu / "cpu.cfs_quota_us").write_text(str(quota))
            if burst.exists():
                # Unused quota carries over one period: bursty invokes of a small function
                # are not throttled mid-request, while its average share stays the same.
                burst.write_text(str(quota))
            with contextlib.suppress(FileNotFoundError):  # a kernel without kmem accounting
                (mem / "memory.kmem.tcp.limit_in_bytes").write_text(
                    str(tcp_buffer_limit(memory_mb))
                )
        else:
            d = self.dirs[""]
            (d / "memory.max").write_text(str(limit))
            with contextlib.suppress(FileNotFoundError):  # no swap accounting: no swap
                (d / "memory.swap.max").write_text("0")
            (d / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
            if (d / "cpu.max.burst").exists():
                (d / "cpu.max.burst").write_text(str(quota))

    @property
    def can_freeze(self) -> bool:
        return self.version == 2 or "freezer" in self.dirs

    def _freezer_write(self, v1: bytes, v2: bytes) -> None:
        if self._freeze_fd is None:
            path = (
                self.dirs["freezer"] / "freezer.state"
                if self.version == 1
                else self.dirs[""] / "cgroup.freeze"
            )
            self._freeze_fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        os.pwrite(self._freeze_fd, v1 if self.version == 1 else v2, 0)

    def freeze(self) -> None:
        """Stop every process of the group where it stands (it resumes on thaw). Raises
        OSError if the group is gone."""
        if self.can_freeze and not self.frozen:
            self._freezer_write(b"FROZEN", b"1")
            self.frozen = True

    def thaw(self) -> None:
        if self.frozen:
            self.frozen = False
            self._freezer_write(b"THAWED", b"0")

    def max_memory_mb(self) -> int:
        mem = self._mem()
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            if self._peak_fd is None:
                self._peak_fd = os.open(mem / name, os.O_RDONLY | os.O_CLOEXEC)
            return max(1, -(-int(os.pread(self._peak_fd, 32, 0)) // (1024 * 1024)))
        except (OSError, ValueError):
            return 0

    def _close_peak(self) -> None:
        if self._peak_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._peak_fd)
            self._peak_fd = None

    def oom_killed(self) -> bool:
        mem = self._mem()
        try:
            if self.version == 1:
                text = (mem / "memory.oom_control").read_text()
                fields = dict(line.split() for line in text.splitlines() if line.strip())
                if "oom_kill" in fields:
                    return int(fields["oom_kill"]) > 0
                return int((mem / "memory.failcnt").read_text()) > 0
            fields = dict(
                line.split()
                for line in (mem / "memory.events").read_text().splitlines()
                if line.strip()
            )
            return int(fields.get("oom_kill", "0")) > 0
        except (OSError, ValueError):
            return False

    def kill_all(self) -> None:
        for d in self.dirs.values():
            kill_procs(d)
        self.frozen = False

    def remove(self) -> bool:
        """rmdir the group; False while processes are still leaving it."""
        self._close_peak()
        if self._freeze_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._freeze_fd)
            self._freeze_fd = None
        ok = True
        for d in self.dirs.values():
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                ok = False
        return ok


def group_name(runtime_key: str, slot: int) -> str:
    """``<runtime>-<server pid>-<slot>-<random>``: the pid lets other servers tell stale."""
    return f"{runtime_key}-{os.getpid()}-{slot}-{os.urandom(3).hex()}"


def _server_alive(name: str) -> bool:
    parts = name.rsplit("-", 3)
    try:
        pid = int(parts[1])
    except (IndexError, ValueError):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def kill_procs(d: Path) -> None:
    """SIGKILL every process of a group, then thaw it: a frozen task dies on thaw."""
    try:
        pids = (d / "cgroup.procs").read_text().split()
    except OSError:
        return
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(int(pid), signal.SIGKILL)
    thaw_dir(d)


class Hierarchy:
    """The groups of one server: ``<controller>/firebox/<key>/<env>``."""

    def __init__(self, key: str) -> None:
        version = detect_version()
        if version is None:
            raise OSError("no usable cgroup hierarchy")
        self.version = version
        if version == 1:
            controllers = V1_CONTROLLERS + tuple(
                c for c in V1_OPTIONAL if (CGROUP_FS / c / "cgroup.procs").exists()
            )
            self.roots = {c: CGROUP_FS / c / "firebox" / key for c in controllers}
        else:
            self.roots = {"": CGROUP_FS / "firebox" / key}
        self._anchor: Path | None = None

    def setup(self) -> None:
        for root in self.roots.values():
            root.mkdir(parents=True, exist_ok=True)
            if self.version == 2:
                # Delegate the controllers down to our groups (the top may already do so,
                # or may refuse inside a container whose manager did it for us).
                for d in (CGROUP_FS, root.parent, root):
                    try:
                        (d / "cgroup.subtree_control").write_text("+memory +cpu +pids")
                    except OSError:
                        if d != CGROUP_FS:
                            raise
        if "freezer" in self.roots:
            self._freeze_anchor()

    def _freeze_anchor(self) -> None:
        """An empty v1 group kept frozen for the server's life. The kernel patches its
        code (a static key) whenever the number of freezing groups goes from 0 to 1 and
        back, which made every freeze and thaw of an idle environment cost 70 µs; with
        one group always frozen they cost 2 µs."""
        if self._anchor is not None and self._anchor.is_dir():
            return  # setup() again after our root was swept: one anchor is enough
        self._anchor = self.roots["freezer"] / group_name("anchor", 0)
        self._anchor.mkdir()
        _write(self._anchor / "freezer.state", "FROZEN")

    def create(self, name: str) -> Group:
        dirs = {ctrl: root / name for ctrl, root in self.roots.items()}
        group = Group(self.version, dirs)
        try:
            for ctrl, d in dirs.items():
                try:
                    d.mkdir()
                except FileNotFoundError:
                    self.setup()  # our root was swept away: make it again
                    d.mkdir()
                if ctrl == "cpu":
                    (d / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                if ctrl == "pids" or self.version == 2:
                    (d / "pids.max").write_text(str(PIDS_MAX))
                if ctrl == "memory":
                    # Kill on OOM rather than pause the group (v1 default is to kill too,
                    # but be explicit), and never use swap.
                    with contextlib.suppress(OSError):
                        (d / "memory.swappiness").write_text("0")
                    # Socket buffers are counted only for sockets made after a limit is
                    # set: set one now, before the child joins; set_limits sizes it.
                    with contextlib.suppress(FileNotFoundError):
                        (d / "memory.kmem.tcp.limit_in_bytes").write_text(
                            str(tcp_buffer_limit(128))
                        )
        except OSError:
            group.remove()
            raise
        return group

    def sweep(self) -> int:
        """Kill and remove every group left under our root (a dead server's). Returns count."""
        count = 0
        for root in self.roots.values():
            if not root.is_dir():
                continue
            for d in root.iterdir():
                if d.is_dir():
                    kill_procs(d)
                    count += 1
        for root in self.roots.values():
            if not root.is_dir():
                continue
            for d in root.iterdir():
                if d.is_dir():
                    for _ in range(100):
                        try:
                            d.rmdir()
                            break
                        except FileNotFoundError:
                            break
                        except OSError:
                            kill_procs(d)
                            import time

                            time.sleep(0.01)
        return count

    def sweep_orphans(self) -> int:
        """Remove other servers' groups whose server process is gone (names carry its pid).

        Groups of live servers are left alone, even half-made ones, so that servers sharing
        a host never disturb each other.
        """
        count = 0
        for root in self.roots.values():
            base = root.parent
            if not base.is_dir():
                continue
            for key_dir in base.iterdir():
                if not key_dir.is_dir() or key_dir == root:
                    continue
                stale = 0
                for d in list(key_dir.iterdir()):
                    if d.is_dir() and not _server_alive(d.name):
                        kill_procs(d)
                        with contextlib.suppress(OSError):
                            d.rmdir()
                            stale += 1
                if stale:
                    # Only a root we found stale groups in: an empty root may belong to a live
                    # server between environments (its create() would remake it anyway).
                    count += stale
                    with contextlib.suppress(OSError):
                        key_dir.rmdir()
        return count

    def remove_root(self) -> None:
        for root in self.roots.values():
            with contextlib.suppress(OSError):
                root.rmdir()
