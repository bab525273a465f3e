"""Egress, tried the way a hostile function would: the cloud's metadata address, the host's
own address, a private-range service, socket families it has no use for. Refused unless
the operator allows them (FIREBOX_EGRESS_ALLOW), while other functions keep being served."""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_attack import make_victim, serves_while

from conftest import (
    Server,
    invoke_json,
    needs_outbound_network,
    needs_process_sandbox,
    python_function,
    unique,
)

pytestmark = [*needs_process_sandbox, needs_outbound_network]

EGRESS = r"""
import socket, time

AF_VSOCK = 40
NETLINK = {"route": 0, "sock_diag": 4, "xfrm": 6, "audit": 9, "netfilter": 12,
           "kobject_uevent": 15, "generic": 16}


def connect(host, port):
    t0 = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"ping")
            return {"ok": s.recv(16).decode(), "s": time.monotonic() - t0}
    except OSError as exc:
        return {"error": type(exc).__name__, "errno": exc.errno, "s": time.monotonic() - t0}


def udp(host, port):
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            s.sendto(b"ping", (host, port))
            return {"ok": s.recv(16).decode()}
    except OSError as exc:
        return {"error": type(exc).__name__, "errno": exc.errno}


def try_socket(*args):
    try:
        socket.socket(*args).close()
        return 0
    except OSError as exc:
        return exc.errno


def families():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    out = {"vsock": try_socket(AF_VSOCK, socket.SOCK_STREAM, 0)}
    for name, proto in NETLINK.items():
        out["netlink_" + name] = try_socket(socket.AF_NETLINK, socket.SOCK_RAW, proto)
    out["alg"] = try_socket(38, socket.SOCK_SEQPACKET, 0)
    out["packet"] = try_socket(17, socket.SOCK_RAW, 0)
    # The family in a 64-bit register with high bits set: the kernel reads an int.
    fd = libc.syscall(41, ctypes.c_long(0x100000000 | AF_VSOCK), 1, 0)
    out["vsock_high_bits"] = 0 if fd >= 0 else ctypes.get_errno()
    fd = libc.syscall(41, 16, 3, ctypes.c_long(0x100000000 | 4))
    out["sock_diag_high_bits"] = 0 if fd >= 0 else ctypes.get_errno()
    out["socketpair_inet"] = 0
    try:
        socket.socketpair(socket.AF_INET)
    except OSError as exc:
        out["socketpair_inet"] = exc.errno
    out["interfaces"] = sorted(n for _, n in socket.if_nameindex())
    out["addrinfo"] = sorted({a[4][0] for a in socket.getaddrinfo("localhost", 80)})
    return out


def handler(event, context):
    if event["action"] == "connect":
        return {f"{h}:{p}": connect(h, p) for h, p in event["targets"]}
    if event["action"] == "udp":
        return udp(event["host"], event["port"])
    if event["action"] == "families":
        return families()
    raise ValueError(event["action"])
"""


def _host_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.254", 9))
        except OSError:
            return None
        addr = s.getsockname()[0]
    return None if addr.startswith("127.") else addr


class Pong:
    """A TCP (and UDP) echo of "ping" on one address of this host."""

    def __init__(self, host: str) -> None:
        self.tcp = socket.socket()
        self.tcp.bind((host, 0))
        self.tcp.listen(16)
        self.tcp.settimeout(0.2)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, self.port))
        self.udp.settimeout(0.2)
        self.host = host
        self.accepted = 0
        self.datagrams = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve_tcp, daemon=True),
            threading.Thread(target=self._serve_udp, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                continue
            self.accepted += 1
            with conn:
                conn.settimeout(2)
                if conn.recv(16) == b"ping":
                    conn.sendall(b"pong")

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(16)
            except OSError:
                continue
            self.datagrams += 1
            if data == b"ping":
                self.udp.sendto(b"pong", peer)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.tcp.close()
        self.udp.close()


# An address of a private range, on this host's loopback for the test's duration: the
# stand-in for a database or an internal service on the operator's network.
PRIVATE = f"10.213.{os.getpid() % 250}.{1 + os.getpid() % 200}"


@pytest.fixture(scope="module")
def private_pong() -> Iterator[Pong]:
    try:
        added = subprocess.run(
            ["ip", "addr", "add", f"{PRIVATE}/32", "dev", "lo"], capture_output=True, text=True
        )
    except FileNotFoundError:
        pytest.skip("no `ip` (Debian package iproute2) to add a private test address to lo")
    if added.returncode != 0 and "File exists" not in added.stderr:
        pytest.skip(f"cannot add a private test address to lo: {added.stderr.strip()}")
    pong = Pong(PRIVATE)
    yield pong
    pong.close()
    subprocess.run(["ip", "addr", "del", f"{PRIVATE}/32", "dev", "lo"], capture_output=True)


@pytest.fixture(scope="module")
def host_pong() -> Iterator[Pong]:
    host = _host_address()
    if host is None:
        pytest.skip("this host has no non-loopback address to serve a test endpoint on")
    pong = Pong(host)
    yield pong
    pong.close()


@pytest.fixture(scope="module")
def default_srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("egress") / "data", sandbox="process").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def lam(default_srv: Server) -> Any:
    return default_srv.client("lambda")


@pytest.fixture(scope="module")
def prober(lam: Any) -> str:
    name = unique("egress")
    python_function(lam, name, EGRESS, Timeout=30)
    return name


@pytest.fixture(scope="module")
def victim(lam: Any) -> str:
    return make_victim(lam)


def run(lam: Any, name: str, **event: Any) -> Any:
    out, resp = invoke_json(lam, name, event)
    assert "FunctionError" not in resp, out
    return out


def refused(result: dict[str, Any]) -> bool:
    """The policy's refusal as the function sees it: slirp4netns's connect() gets EPERM and
    answers the function's SYN with "network unreachable", at once (not a timeout)."""
    return result.get("errno") in (errno.ENETUNREACH, errno.ECONNREFUSED) and result["s"] < 2.0


def test_metadata_host_and_private_addresses_are_refused(
    lam, prober, victim, host_pong, private_pong
):
    targets = [
        ("169.254.169.254", 80),  # cloud metadata
        (host_pong.host, host_pong.port),  # this host's own address
        (PRIVATE, private_pong.port),  # a private-range service
        ("10.0.2.2", 22),  # the gateway, which slirp maps to the host's loopback
        ("127.0.0.1", 9000),
    ]
    out = serves_while(lam, victim, lambda: run(lam, prober, action="connect", targets=targets))
    assert all(refused(r) for r in out.values()), out
    udp = run(lam, prober, action="udp", host=PRIVATE, port=private_pong.port)
    assert "ok" not in udp, udp
    assert host_pong.accepted == 0 and private_pong.accepted == 0 and private_pong.datagrams == 0
    # Refused by the policy, not for want of a network: the uplink is there (and the
    # same listeners answer once allowed, below).
    assert run(lam, prober, action="families")["interfaces"] == ["lo", "tap0"]


def test_allowed_ranges_are_reachable_when_configured(server_factory, host_pong, private_pong):
    srv = server_factory(sandbox="process", egress_allow=f"{PRIVATE}/32,{host_pong.host}/32")
    lam = srv.client("lambda")
    name = unique("allowed")
    python_function(lam, name, EGRESS, Timeout=30)
    targets = [(PRIVATE, private_pong.port), (host_pong.host, host_pong.port)]
    out = run(lam, name, action="connect", targets=targets)
    assert all(r.get("ok") == "pong" for r in out.values()), out
    assert run(lam, name, action="udp", host=PRIVATE, port=private_pong.port) == {"ok": "pong"}
    # Only what is listed: the metadata address stays refused.
    meta = run(lam, name, action="connect", targets=[("169.254.169.254", 80)])
    assert refused(meta["169.254.169.254:80"]), meta


def test_unneeded_socket_families_are_refused(lam, prober, victim):
    out = serves_while(lam, victim, lambda: run(lam, prober, action="families"))
    eafnosupport, eprotonosupport = 97, 93
    assert out["vsock"] == eafnosupport and out["vsock_high_bits"] == eafnosupport, out
    assert out["alg"] == eafnosupport and out["packet"] == eafnosupport, out
    for name in ("sock_diag", "xfrm", "audit", "netfilter", "kobject_uevent", "generic"):
        assert out["netlink_" + name] == eprotonosupport, (name, out)
    assert out["sock_diag_high_bits"] == eprotonosupport, out
    assert out["socketpair_inet"] != 0, out
    # What getifaddrs() and getaddrinfo() need still works.
    assert out["netlink_route"] == 0, out
    assert out["interfaces"] == ["lo", "tap0"] and "127.0.0.1" in out["addrinfo"], out


# --- the compiled filter itself, against the policy it was made from ------------------

PROBE_SOCKETS = r"""
import json, socket, sys
cg, targets = sys.argv[1], json.loads(sys.argv[2])
open(cg + "/cgroup.procs", "w").write("0")
out = []
for host, port in targets:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    res = {}
    for how in ("connect", "sendto"):
        s = socket.socket(family, socket.SOCK_DGRAM)
        try:
            s.connect((host, port)) if how == "connect" else s.sendto(b"x", (host, port))
            res[how] = 0
        except OSError as exc:
            res[how] = exc.errno
        finally:
            s.close()
    out.append(res)
print(json.dumps(out))
"""


def test_compiled_filter_decides_as_the_policy_says(tmp_path: Path):
    from firebox.sandbox.egress import EgressFilter, EgressPolicy, parse_cidrs

    policy = EgressPolicy(
        allow=parse_cidrs("10.1.2.0/24,192.168.7.7,fd12:3456::/32"),
        dns=(ipaddress.ip_address("10.9.9.9"), ipaddress.ip_address("fd00::53")),
        deny=EgressPolicy.for_host().deny,
    )
    egress = EgressFilter(policy, f"test-{os.getpid()}")
    egress.install()
    targets = [
        ("1.1.1.1", 443), ("8.8.8.8", 53), ("169.254.169.254", 80), ("169.254.0.1", 1),
        ("10.1.2.3", 5432), ("10.1.3.3", 5432), ("10.9.9.9", 53), ("10.9.9.9", 80),
        ("192.168.7.7", 1), ("192.168.7.8", 1), ("172.16.0.1", 1), ("172.32.0.1", 1),
        ("100.64.0.1", 1), ("100.128.0.1", 1), ("127.0.0.1", 9000), ("127.9.9.9", 1),
        ("0.0.0.0", 1), ("224.0.0.1", 1), ("255.255.255.255", 1), ("198.18.0.1", 1),
        ("fd12:3456::1", 1), ("fd12:3457::1", 1), ("fd00::53", 53), ("fd00::53", 54),
        ("::1", 1), ("2001:4860:4860::8888", 53), ("::ffff:169.254.169.254", 80),
    ]  # fmt: skip
    host = _host_address()
    if host is not None:
        targets.append((host, 1))
    try:
        out = subprocess.run(
            [sys.executable, "-c", PROBE_SOCKETS, str(egress.dir), json.dumps(targets)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        egress.remove()
    assert out.returncode == 0, out.stderr
    eperm = 1
    for (addr, port), res in zip(targets, json.loads(out.stdout), strict=True):
        expected = policy.allows(addr, port)
        for how, err in res.items():
            assert (err != eperm) == expected, (addr, port, how, err)
    assert not policy.allows("169.254.169.254", 80) and policy.allows("1.1.1.1", 443)


def test_egress_filter_costs_little(tmp_path: Path):
    """The price of the filter: connect() of a filtered process next to an unfiltered one
    (bench/bench_egress.py prints the figures; here only that it is not a cliff)."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "bench_egress.py"
    out = subprocess.run(
        [sys.executable, str(bench), "--n", "3000", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    # Tens of nanoseconds of BPF against microseconds of connect(): within noise, and a
    # filter that went wrong (say, a linear scan gone quadratic) would show.
    assert figures["udp_connect_filtered_us"] < figures["udp_connect_unfiltered_us"] * 2 + 5
