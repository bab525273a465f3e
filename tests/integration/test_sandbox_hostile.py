"""Hostile functions against the process sandbox: each attack must fail inside its own
environment while the server keeps serving every other function."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    ROLE,
    Server,
    invoke_json,
    make_zip,
    needs_outbound_network,
    needs_process_sandbox,
    python_function,
    unique,
)

pytestmark = needs_process_sandbox

PROBE = r'''
import ctypes, errno, os, socket, time

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def _try(fn, *args):
    try:
        return {"ok": True, "value": fn(*args)}
    except BaseException as exc:
        return {"ok": False, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def _read(path):
    if os.path.isdir(path):
        return os.listdir(path)
    with open(path, "rb") as fh:
        return fh.read(64).decode("latin-1")


def _write(path):
    with open(path, "w") as fh:
        fh.write("x")
    return True


def _errno_of(ret):
    return 0 if ret >= 0 else ctypes.get_errno()


def syscalls():
    out = {}
    out["mount"] = _errno_of(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
    out["umount"] = _errno_of(libc.umount2(b"/proc", 2))
    out["unshare_net"] = _errno_of(libc.unshare(0x40000000))
    out["unshare_user"] = _errno_of(libc.unshare(0x10000000))
    out["init_module"] = _errno_of(libc.syscall(175, None, 0, b""))
    out["finit_module"] = _errno_of(libc.syscall(313, 0, b"", 0))
    out["delete_module"] = _errno_of(libc.syscall(176, b"ext4", 0))
    out["ptrace_attach"] = _errno_of(libc.syscall(101, 16, 1, 0, 0))
    out["kexec_load"] = _errno_of(libc.syscall(246, 0, 0, 0, 0))
    out["bpf"] = _errno_of(libc.syscall(321, 0, 0, 0))
    out["perf_event_open"] = _errno_of(libc.syscall(298, 0, 0, -1, -1, 0))
    out["keyctl"] = _errno_of(libc.syscall(250, 0, 0, 0, 0, 0))
    out["reboot"] = _errno_of(libc.syscall(169, 0xfee1dead, 672274793, 0x4321fedc, 0))
    out["swapon"] = _errno_of(libc.syscall(167, b"/tmp/swap", 0))
    out["chroot"] = _errno_of(libc.chroot(b"/tmp"))
    raw = _try(socket.socket, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    out["raw_socket"] = raw.get("errno") or 0
    packet = _try(socket.socket, 17, socket.SOCK_RAW, 0)
    out["packet_socket"] = packet.get("errno") or 0
    return out


def status_fields():
    fields = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return {k: fields.get(k) for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs",
                                       "Seccomp")}


def everything_visible_text():
    """Environment and command lines of every process this environment can see."""
    texts = [repr(dict(os.environ))]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for name in ("environ", "cmdline"):
                r = _try(_read, "/proc/%s/%s" % (pid, name))
                if r["ok"]:
                    with open("/proc/%s/%s" % (pid, name), "rb") as fh:
                        texts.append(fh.read().decode("latin-1"))
    return "\n".join(texts)


def fork_bomb():
    r, w = os.pipe()
    children, error = [], None
    while len(children) < 5000:
        try:
            pid = os.fork()
        except OSError as exc:
            error = exc.errno
            break
        if pid == 0:
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        children.append(pid)
    os.close(w)
    for pid in children:
        os.waitpid(pid, 0)
    os.close(r)
    return {"forked": len(children), "errno": error}


def fill_tmp():
    chunk = b"\0" * (1 << 20)
    written = 0
    try:
        with open("/tmp/fill", "wb") as fh:
            while written < 4096:
                fh.write(chunk)
                fh.flush()
                written += 1
    except OSError as exc:
        os.unlink("/tmp/fill")
        return {"mb": written, "errno": exc.errno}
    os.unlink("/tmp/fill")
    return {"mb": written, "errno": None}


def connect(host, port):
    with socket.create_connection((host, port), timeout=3) as s:
        s.sendall(b"ping")
        return s.recv(16).decode()


def handler(event, context):
    action = event["action"]
    if action == "read":
        return {p: _try(_read, p) for p in event["paths"]}
    if action == "write":
        return {p: _try(_write, p) for p in event["paths"]}
    if action == "procs":
        pids = sorted(p for p in os.listdir("/proc") if p.isdigit())
        return {"pids": pids, "kill": _try(os.kill, event["pid"], 0)}
    if action == "visible":
        return everything_visible_text()
    if action == "syscalls":
        return syscalls()
    if action == "identity":
        return {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
                "groups": os.getgroups(), "status": status_fields(),
                "hostname": socket.gethostname()}
    if action == "fork_bomb":
        return fork_bomb()
    if action == "fill_tmp":
        return fill_tmp()
    if action == "tmp":
        with open("/tmp/hello", "w") as fh:
            fh.write("hi")
        os.mkfifo("/tmp/fifo")
        os.unlink("/tmp/fifo")
        with open("/tmp/hello") as fh:
            return fh.read()
    if action == "ifaces":
        return sorted(name for _, name in socket.if_nameindex())
    if action == "connect":
        return _try(connect, event["host"], event["port"])
    raise ValueError(action)
'''

HOG = """
def handler(event, context):
    hoard = []
    for _ in range(event["mb"]):
        hoard.append(bytearray(b"x" * (1 << 20)))
    return len(hoard)
"""


@pytest.fixture(scope="module")
def psrv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # The outbound tests talk to a listener on this host's own address, which the egress
    # policy refuses unless the operator allows it (test_sandbox_egress.py tests that).
    host = _host_address()
    allow = {"egress_allow": f"{host}/32"} if host else {}
    srv = Server(tmp_path_factory.mktemp("sbx") / "data", sandbox="process", **allow).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def plam(psrv: Server) -> Any:
    return psrv.client("lambda")


@pytest.fixture(scope="module")
def probe(plam: Any) -> str:
    name = unique("probe")
    python_function(plam, name, PROBE, MemorySize=1024, Timeout=30, EphemeralStorage={"Size": 512})
    return name


@pytest.fixture(scope="module")
def victim(plam: Any) -> dict[str, Any]:
    name = unique("victim")
    return python_function(
        plam, name, "SECRET = 'victim-code'\ndef handler(e, c):\n    return 'ok'\n"
    )


def run(lam: Any, name: str, **event: Any) -> Any:
    out, resp = invoke_json(lam, name, event)
    assert "FunctionError" not in resp, out
    return out


def assert_server_serves(lam: Any, victim: dict[str, Any]) -> None:
    out, resp = invoke_json(lam, victim["FunctionName"])
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, out
    assert out == "ok"


def test_cannot_read_data_dir_or_other_functions_code(plam, probe, victim, psrv):
    sha = base64.b64decode(victim["CodeSha256"]).hex()
    data = psrv.data_dir
    paths = [
        str(data),
        str(data / "metadata.db"),
        str(data / "code"),
        str(data / "code" / "trees" / sha / "app.py"),
        "/root",
        "/home",
        "/work",
        "/var/lib",
        "/.host",
        "/etc/shadow",
        str(Path(__file__)),
    ]
    out = run(plam, probe, action="read", paths=paths)
    leaked = {p: r for p, r in out.items() if r["ok"] and r["value"]}
    assert not leaked, leaked
    # Its own code is there, read-only.
    own = run(plam, probe, action="read", paths=["/var/task/app.py"])
    assert own["/var/task/app.py"]["ok"]


def test_cannot_write_outside_tmp(plam, probe):
    paths = [
        "/var/task/x",
        "/var/task/app.py",
        "/etc/x",
        "/x",
        "/opt/x",
        "/usr/x",
        "/var/runtime/x",
        "/var/lang/x",
        "/dev/x",
        "/proc/sys/kernel/hostname",
    ]
    out = run(plam, probe, action="write", paths=paths)
    written = [p for p, r in out.items() if r["ok"]]
    assert written == []
    assert {r["error"] for r in out.values()} <= {"OSError", "PermissionError", "FileNotFoundError"}
    assert run(plam, probe, action="tmp") == "hi"


def test_sees_only_its_own_processes(plam, probe, psrv):
    assert psrv.proc is not None
    out = run(plam, probe, action="procs", pid=psrv.proc.pid)
    assert out["pids"] == ["1", "2"]
    assert out["kill"] == {"ok": False, "error": "ProcessLookupError", "errno": 3}


def test_server_environment_and_credentials_are_invisible(plam, probe, psrv):
    text = run(plam, probe, action="visible")
    # The /proc reads worked: its runtime's command line is there.
    assert "/var/lang/bin/python3" in text, text[:500]
    assert psrv.secret_key not in text
    assert psrv.access_key not in text
    assert "FIREBOX_" not in text
    assert str(psrv.data_dir) not in text


def test_runs_as_nobody_without_capabilities(plam, probe):
    out = run(plam, probe, action="identity")
    assert (out["uid"], out["euid"], out["gid"], out["groups"]) == (65534, 65534, 65534, [])
    status = out["status"]
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    assert int(status["CapBnd"], 16) == 0 and int(status["CapAmb"], 16) == 0
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"


def test_dangerous_syscalls_are_refused(plam, probe):
    out = run(plam, probe, action="syscalls")
    allowed = {name: err for name, err in out.items() if err == 0}
    assert not allowed, out
    # The seccomp filter answers EPERM (capability checks would too, but not for all).
    assert out["unshare_user"] == 1 and out["bpf"] == 1 and out["finit_module"] == 1


def test_fork_bomb_hits_the_pids_limit(plam, probe, victim):
    out = run(plam, probe, action="fork_bomb")
    assert out["errno"] == 11, out  # EAGAIN from the pids controller
    assert 100 < out["forked"] < 1024
    assert_server_serves(plam, victim)
    assert run(plam, probe, action="tmp") == "hi"


def test_filling_tmp_stops_at_ephemeral_storage(plam, probe, victim):
    out = run(plam, probe, action="fill_tmp")
    assert out["errno"] == 28, out  # ENOSPC
    assert 500 <= out["mb"] <= 512
    assert_server_serves(plam, victim)


def test_allocating_past_memory_size_kills_only_that_environment(plam, victim):
    name = unique("hog")
    python_function(plam, name, HOG, MemorySize=128, Timeout=30)
    out, resp = invoke_json(plam, name, {"mb": 400})
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Runtime.OutOfMemory", out
    assert_server_serves(plam, victim)
    small, resp = invoke_json(plam, name, {"mb": 10})
    assert "FunctionError" not in resp and small == 10


def test_cannot_reach_host_loopback_services(plam, probe, psrv):
    # Its own network namespace: loopback (its Runtime API) and the user-space uplink only.
    assert run(plam, probe, action="ifaces") == ["lo", "tap0"]
    for host in ("127.0.0.1", "10.0.2.2"):
        out = run(plam, probe, action="connect", host=host, port=psrv.port)
        assert not out["ok"], (host, out)


def _host_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.254", 9))
        except OSError:
            return None
        addr = s.getsockname()[0]
    return None if addr.startswith("127.") else addr


@pytest.fixture
def pong_server() -> Iterator[tuple[str, int]]:
    host = _host_address()
    if host is None:
        pytest.skip("this host has no non-loopback address to serve a test endpoint on")
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                if conn.recv(16) == b"ping":
                    conn.sendall(b"pong")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield host, listener.getsockname()[1]
    stop.set()
    thread.join(2)
    listener.close()


@needs_outbound_network
def test_outbound_connections_work(plam, probe, pong_server):
    host, port = pong_server
    out = run(plam, probe, action="connect", host=host, port=port)
    assert out == {"ok": True, "value": "pong"}


def test_outbound_connections_refused_when_network_is_off(server_factory, pong_server):
    srv = server_factory(sandbox="process", network=False)
    lam = srv.client("lambda")
    name = unique("nonet")
    python_function(lam, name, PROBE, Timeout=10)
    host, port = pong_server
    out = run(lam, name, action="connect", host=host, port=port)
    assert out["ok"] is False and out["error"] in ("OSError", "TimeoutError"), out


@needs_outbound_network
def test_a_function_tagged_network_off_has_no_outbound_network(plam, pong_server):
    name = unique("tagnonet")
    arn = python_function(plam, name, PROBE, Timeout=10, Tags={"firebox:network": "off"})[
        "FunctionArn"
    ]
    host, port = pong_server
    out = run(plam, name, action="connect", host=host, port=port)
    assert out["ok"] is False and out["error"] in ("OSError", "TimeoutError"), out
    # Removing the tag gives it back, without waiting for the warm environment to expire.
    plam.untag_resource(Resource=arn, TagKeys=["firebox:network"])
    assert run(plam, name, action="connect", host=host, port=port) == {
        "ok": True,
        "value": "pong",
    }


def test_layers_are_readable_at_opt(plam):
    layer = plam.publish_layer_version(
        LayerName=unique("layer"),
        Content={
            "ZipFile": make_zip(
                {"python/layered.py": "VALUE = 'from-layer'\n", "data.txt": "layer-data"}
            )
        },
    )
    name = unique("uses-layer")
    plam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Layers=[layer["LayerVersionArn"]],
        Code={
            "ZipFile": make_zip(
                {
                    "app.py": (
                        "import layered\ndef handler(e, c):\n"
                        "    return [layered.VALUE, open('/opt/data.txt').read()]\n"
                    )
                }
            )
        },
    )
    assert run(plam, name) == ["from-layer", "layer-data"]
