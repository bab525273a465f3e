"""Where functions' outbound connections may go, enforced by the kernel on slirp4netns.

A function's packets leave its network namespace through slirp4netns, which re-originates
them as ordinary sockets of the host: the place to decide is therefore *those* sockets.
Every slirp4netns of a server runs in one cgroup (v2; on a v1 host the unified hierarchy
that systemd mounts at /sys/fs/cgroup/unified) carrying four small eBPF programs
(``cgroup/connect4``, ``connect6``, ``sendmsg4``, ``sendmsg6``): the kernel runs them on
every connect() and unconnected sendto() of those processes and refuses with EPERM what
the policy refuses. Nothing on the host's firewall changes, nothing else is affected, a
bug in slirp4netns cannot bypass it, and its cost is a few dozen instructions per new
connection or datagram (bench/bench_egress.py).

The policy: the operator's ``FIREBOX_EGRESS_ALLOW`` CIDRs first; then the host's DNS
servers (``/etc/resolv.conf``), on port 53 only, since slirp4netns forwards the
function's DNS to them; then refused: link-local (cloud metadata at 169.254.169.254),
loopback, private and shared ranges, multicast and reserved space, and the host's own
addresses and networks; everything else (the internet) allowed. IPv6 is refused but for
allowed CIDRs and DNS servers (slirp4netns gives functions no IPv6 anyway).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import os
import signal
import struct
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 6890 special-purpose space a function has no business reaching by default.
DEFAULT_DENY = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT: often a provider's internal network
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local: cloud metadata services
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
DNS_PORT = 53


class EgressUnavailable(OSError):
    """The kernel or host cannot enforce the policy (no cgroup2, no cgroup BPF)."""


def parse_cidrs(text: str) -> tuple[IPNetwork, ...]:
    """``10.1.0.0/16,192.168.5.7`` → networks; ValueError for anything else."""
    return tuple(
        ipaddress.ip_network(item.strip(), strict=False) for item in text.split(",") if item.strip()
    )


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    allow: tuple[IPNetwork, ...]
    dns: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]
    deny: tuple[IPNetwork, ...]

    @classmethod
    def for_host(cls, allow: Iterable[IPNetwork] = ()) -> EgressPolicy:
        """The default refusals plus this host's own addresses, its DNS servers allowed."""
        return cls(tuple(allow), tuple(nameservers()), DEFAULT_DENY + tuple(host_networks()))

    def allows(self, address: str, port: int) -> bool:
        """The decision the compiled programs make, for tests and for humans."""
        ip = ipaddress.ip_address(address)
        if any(ip in n for n in self.allow if n.version == ip.version):
            return True
        if port == DNS_PORT and ip in self.dns:
            return True
        if ip.version == 6:
            return False
        return not any(ip in n for n in self.deny if n.version == 4)

    def describe(self) -> str:
        allow = ", ".join(str(n) for n in self.allow) or "nothing extra"
        return f"allowed {allow}; DNS {', '.join(map(str, self.dns)) or 'none'}:53"


def nameservers(
    path: Path = Path("/etc/resolv.conf"),
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    out = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                with contextlib.suppress(ValueError):
                    out.append(ipaddress.ip_address(fields[1].split("%")[0]))
    return out


class _Sockaddr(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("data", ctypes.c_ubyte * 26)]


class _Ifaddrs(ctypes.Structure):
    pass


_Ifaddrs._fields_ = [
    ("next", ctypes.POINTER(_Ifaddrs)),
    ("name", ctypes.c_char_p),
    ("flags", ctypes.c_uint),
    ("addr", ctypes.POINTER(_Sockaddr)),
    ("netmask", ctypes.POINTER(_Sockaddr)),
    ("ifu", ctypes.c_void_p),
    ("data", ctypes.c_void_p),
]


def _ip_of(sa: _Sockaddr) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    raw = bytes(sa.data)
    if sa.family == 2:  # AF_INET: port (2), address (4)
        return ipaddress.IPv4Address(raw[2:6])
    if sa.family == 10:  # AF_INET6: port (2), flowinfo (4), address (16)
        return ipaddress.IPv6Address(raw[6:22])
    return None


def host_networks() -> list[IPNetwork]:
    """Every address of this host's interfaces, and the networks they sit on."""
    libc = ctypes.CDLL(None, use_errno=True)
    head = ctypes.POINTER(_Ifaddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        return []
    out: list[IPNetwork] = []
    try:
        node = head
        while node:
            ifa = node.contents
            if ifa.addr:
                ip = _ip_of(ifa.addr.contents)
                mask = _ip_of(ifa.netmask.contents) if ifa.netmask else None
                if ip is not None:
                    out.append(ipaddress.ip_network(ip))
                    if mask is not None and mask.version == ip.version:
                        prefix = bin(int(mask)).count("1")
                        out.append(ipaddress.ip_network((ip, prefix), strict=False))
            node = ifa.next
    finally:
        libc.freeifaddrs(head)
    return sorted(set(out), key=lambda n: (n.version, n))


# --- the programs ------------------------------------------------------------------------

# bpf(2) commands, program and attach types (linux/bpf.h).
_BPF_PROG_LOAD, _BPF_PROG_ATTACH = 5, 8
_PROG_TYPE_CGROUP_SOCK_ADDR = 18
ATTACH_CONNECT4, ATTACH_CONNECT6, ATTACH_SENDMSG4, ATTACH_SENDMSG6 = 10, 11, 14, 15
_BPF_F_ALLOW_MULTI = 2
_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine, 321)

# struct bpf_sock_addr: user_family, user_ip4, user_ip6[4], user_port (network order).
_OFF_IP4, _OFF_IP6, _OFF_PORT = 4, 8, 24
# Instruction codes (linux/bpf_common.h, linux/bpf.h).
_LDX_W = 0x61  # dst = *(u32 *)(src + off)
_MOV32_X = 0xBC  # w(dst) = w(src)
_AND32_K = 0x54  # w(dst) &= imm
_JNE32_K = 0x56  # if w(dst) != imm: pc += off
_JA = 0x05
_MOV64_K = 0xB7
_EXIT = 0x95


def _word(raw: bytes) -> int:
    """Four bytes of network order as the program loads them (a host-order u32), made a
    signed 32-bit immediate."""
    value = int.from_bytes(raw, sys.byteorder)
    return value - (1 << 32) if value >= 1 << 31 else value


class _Asm:
    def __init__(self) -> None:
        self.insns: list[tuple[int, int, int, int | str, int]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, dst: int = 0, src: int = 0, off: int | str = 0, imm: int = 0) -> None:
        self.insns.append((code, dst, src, off, imm))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def assemble(self) -> bytes:
        out = []
        for pc, (code, dst, src, off, imm) in enumerate(self.insns):
            if isinstance(off, str):
                off = self.labels[off] - pc - 1
            out.append(struct.pack("<BBhi", code, dst | (src << 4), off, imm))
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class _Rule:
    allow: bool
    network: IPNetwork
    port: int | None = None


def _rules(policy: EgressPolicy, version: int) -> tuple[list[_Rule], bool]:
    """The rules one program checks in order, and its default (allow?)."""
    rules = [_Rule(True, n) for n in policy.allow if n.version == version]
    rules += [
        _Rule(True, ipaddress.ip_network(ip), DNS_PORT)
        for ip in policy.dns
        if ip.version == version
    ]
    if version == 6:
        return rules, False
    rules += [_Rule(False, n) for n in policy.deny if n.version == 4]
    return rules, True


def compile_program(policy: EgressPolicy, version: int) -> bytes:
    """The eBPF program (cgroup/connect or sendmsg of that IP version) for the policy."""
    asm = _Asm()
    words = 1 if version == 4 else 4
    # r2..r5: the destination address, one 32-bit word each; r6: the port.
    for i in range(words):
        asm.op(_LDX_W, 2 + i, 1, (_OFF_IP4 if version == 4 else _OFF_IP6) + 4 * i)
    asm.op(_LDX_W, 6, 1, _OFF_PORT)
    rules, default_allow = _rules(policy, version)
    used: set[str] = set()
    for n, rule in enumerate(rules):
        nxt = f"rule{n + 1}"
        net = rule.network.network_address.packed
        mask = rule.network.netmask.packed
        checks = [
            (2 + i, mask[4 * i : 4 * i + 4], net[4 * i : 4 * i + 4])
            for i in range(words)
            if mask[4 * i : 4 * i + 4] != b"\0\0\0\0"
        ]
        if not checks and rule.port is None:
            # Matches everything (0.0.0.0/0): the rules after it can never run, and the
            # verifier refuses a program with unreachable instructions.
            default_allow = rule.allow
            break
        for reg, m, value in checks:
            asm.op(_MOV32_X, 7, reg)
            asm.op(_AND32_K, 7, imm=_word(m))
            asm.op(_JNE32_K, 7, off=nxt, imm=_word(value))
        if rule.port is not None:
            asm.op(_JNE32_K, 6, off=nxt, imm=_word(struct.pack("!H", rule.port) + b"\0\0"))
        target = "allow" if rule.allow else "deny"
        used.add(target)
        asm.op(_JA, off=target)
        asm.label(nxt)
    # The default's return falls through from the last rule; the other one only if a rule
    # jumps to it (again: no unreachable code).
    first, second = ("allow", "deny") if default_allow else ("deny", "allow")
    for name in (first, second):
        if name == first or name in used:
            asm.label(name)
            asm.op(_MOV64_K, 0, imm=1 if name == "allow" else 0)
            asm.op(_EXIT)
    return asm.assemble()


def _bpf(cmd: int, attr: bytes) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    buf = ctypes.create_string_buffer(attr, 128)
    ret = libc.syscall(_SYS_BPF, cmd, buf, ctypes.c_uint(128))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(ret)


def load_program(code: bytes, attach_type: int) -> int:
    """Load one cgroup/sock_addr program; its fd. The verifier's log goes in the error."""
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 16)
    attr = struct.pack(
        "<IIQQIIQII16sII",
        _PROG_TYPE_CGROUP_SOCK_ADDR,
        len(code) // 8,
        ctypes.addressof(insns),
        ctypes.addressof(license_),
        1,
        len(log),
        ctypes.addressof(log),
        0,
        0,
        b"firebox_egress",
        0,
        attach_type,
    )
    try:
        return _bpf(_BPF_PROG_LOAD, attr)
    except OSError as exc:
        detail = log.value.decode(errors="replace").strip()[-500:]
        raise EgressUnavailable(
            exc.errno, f"loading the egress filter: {exc.strerror} {detail}"
        ) from exc


def attach(cgroup_fd: int, prog_fd: int, attach_type: int) -> None:
    _bpf(
        _BPF_PROG_ATTACH,
        struct.pack("<IIIII", cgroup_fd, prog_fd, attach_type, _BPF_F_ALLOW_MULTI, 0),
    )


# --- the cgroup ---------------------------------------------------------------------------


def cgroup2_mount(mountinfo: Path = Path("/proc/self/mountinfo")) -> Path | None:
    """Where the unified (v2) hierarchy is mounted: /sys/fs/cgroup on a v2 host,
    /sys/fs/cgroup/unified on systemd's hybrid v1 layout, None without one."""
    with contextlib.suppress(OSError):
        for line in mountinfo.read_text().splitlines():
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                return Path(left.split()[4])
    return None


class EgressFilter:
    """The cgroup every slirp4netns of one server runs in, with the policy attached."""

    def __init__(self, policy: EgressPolicy, key: str) -> None:
        self.policy = policy
        mount = cgroup2_mount()
        if mount is None:
            raise EgressUnavailable(errno.ENOENT, "no cgroup2 hierarchy to attach it to")
        self.dir = mount / "firebox" / f"egress-{key}"

    def install(self) -> None:
        """Make the cgroup afresh (a previous server's programs go with the old one) and
        attach the four programs. Raises EgressUnavailable."""
        self.remove()
        try:
            self.dir.mkdir(parents=True)
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise EgressUnavailable(exc.errno, f"cannot make {self.dir}: {exc.strerror}") from exc
        try:
            for version, types in ((4, (ATTACH_CONNECT4, ATTACH_SENDMSG4)),
                                   (6, (ATTACH_CONNECT6, ATTACH_SENDMSG6))):  # fmt: skip
                code = compile_program(self.policy, version)
                for attach_type in types:
                    prog = load_program(code, attach_type)
                    try:
                        attach(fd, prog, attach_type)
                    except OSError as exc:
                        raise EgressUnavailable(
                            exc.errno, f"attaching the egress filter: {exc.strerror}"
                        ) from exc
                    finally:
                        # The cgroup holds the program from now on.
                        os.close(prog)
        except BaseException:
            os.close(fd)
            self.remove()
            raise
        os.close(fd)

    def add(self, pid: int) -> None:
        """Move a process (a slirp4netns just started) into the filtered cgroup."""
        (self.dir / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        if not self.dir.is_dir():
            return
        for _ in range(100):
            try:
                self.dir.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                with contextlib.suppress(OSError):
                    for pid in (self.dir / "cgroup.procs").read_text().split():
                        with contextlib.suppress(OSError):
                            os.kill(int(pid), signal.SIGKILL)
                time.sleep(0.01)
