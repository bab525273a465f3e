"""The process sandbox's environment as a function sees it, and its lifetimes on the host:
interpreters from /var/lang, cgroup limits, and no groups or processes left behind."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    ROLE,
    invoke_json,
    make_zip,
    needs_process_sandbox,
    python_function,
    unique,
)

pytestmark = needs_process_sandbox

INSPECT = """
import os, socket, sys

def handler(event, context):
    devs = sorted(os.listdir("/dev"))
    return {
        "executable": sys.executable, "prefix": sys.prefix, "version": list(sys.version_info[:2]),
        "runtime_api": os.environ.get("AWS_LAMBDA_RUNTIME_API"),
        "task_root": os.environ.get("LAMBDA_TASK_ROOT"), "cwd": os.getcwd(),
        "root": sorted(os.listdir("/")), "devs": devs,
        "urandom": len(open("/dev/urandom", "rb").read(8)),
        "proc_self": os.readlink("/proc/self"),
        "runtime_dir": sorted(os.listdir("/var/runtime")),
        "lang_bin": os.path.exists("/var/lang/bin"),
        "tmp_writable": os.access("/tmp", os.W_OK),
        "hostname": socket.gethostname(),
        "cgroup": open("/proc/self/cgroup").read(),
        "nofile": list(__import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)),
    }
"""


def cgroup_key(data_dir: Path) -> str:
    return hashlib.sha256(str(data_dir.absolute()).encode()).hexdigest()[:12]


def memory_root(data_dir: Path) -> Path:
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    base = Path("/sys/fs/cgroup") if v2 else Path("/sys/fs/cgroup/memory")
    return base / "firebox" / cgroup_key(data_dir)


@pytest.mark.parametrize("runtime", ["python3.8", "python3.11", "python3.13"])
def test_python_runs_from_var_lang(server_factory: Any, runtime: str) -> None:
    from firebox.runtime.runtimes import available_runtimes

    if runtime not in available_runtimes():
        pytest.skip(f"{runtime} is not installed on this host")
    srv = server_factory(sandbox="process", pool_size=0)
    lam = srv.client("lambda")
    name = unique("inspect")
    python_function(lam, name, INSPECT, runtime=runtime)
    out, resp = invoke_json(lam, name)
    assert "FunctionError" not in resp, out
    minor = runtime.split(".")[1]
    assert out["version"] == [3, int(minor)]
    assert out["executable"].startswith("/var/lang/bin/python3")
    assert out["prefix"] == "/var/lang"
    assert out["runtime_api"] == "127.0.0.1:9001"
    assert out["task_root"] == "/var/task" and out["cwd"] == "/var/task"
    assert "bootstrap.py" in out["runtime_dir"] and out["lang_bin"]
    assert {"null", "zero", "random", "urandom"} <= set(out["devs"])
    assert out["urandom"] == 8 and out["proc_self"] == "2" and out["tmp_writable"]
    assert not {"root", "home", "work"} & set(out["root"])
    # The cgroup namespace hides the host's cgroup paths.
    assert "firebox" not in out["cgroup"]
    assert out["nofile"] == [1024, 1024]


NODE_INSPECT = """
const fs = require('fs');
exports.handler = async () => ({
  cwd: process.cwd(),
  root: fs.readdirSync('/'),
  host: fs.existsSync('/.host') ? fs.readdirSync('/.host') : [],
  task: fs.readdirSync('/var/task'),
  uid: process.getuid(),
  fn: process.env.AWS_LAMBDA_FUNCTION_NAME,
  api: process.env.AWS_LAMBDA_RUNTIME_API,
  leftover: Object.keys(process.env).filter((k) => k.startsWith('FIREBOX')),
  fds: fs.readdirSync('/proc/self/fd').length,
  helper: require('helper').value,
});
"""


@pytest.mark.parametrize("pool_size", [0, 2])
def test_node_started_before_its_function_sees_only_its_own(
    server_factory: Any, pool_size: int
) -> None:
    # With a pool, `node` is already running when the function arrives: its code, layers
    # and environment must still be exactly the function's, and the host root gone.
    srv = server_factory(sandbox="process", pool_size=pool_size)
    lam = srv.client("lambda")
    layer = lam.publish_layer_version(
        LayerName=unique("nodelayer"),
        Content={
            "ZipFile": make_zip(
                {"nodejs/node_modules/helper/index.js": "exports.value = 'from-layer';"}
            )
        },
    )["LayerVersionArn"]
    name = unique("nodeinspect")
    lam.create_function(
        FunctionName=name,
        Runtime="nodejs20.x",
        Role=ROLE,
        Handler="index.handler",
        Layers=[layer],
        Code={"ZipFile": make_zip({"index.js": NODE_INSPECT})},
    )
    out, resp = invoke_json(lam, name)
    assert "FunctionError" not in resp, out
    assert out["cwd"] == "/var/task" and out["task"] == ["index.js"]
    # /.host (the zygote's view of the host) is an empty mount point by now.
    assert out["host"] == [] and not {"root", "home", "work"} & set(out["root"])
    assert out["uid"] == 65534
    assert out["fn"] == name and out["api"] == "127.0.0.1:9001"
    assert out["leftover"] == []
    assert out["helper"] == "from-layer"


def test_limits_follow_memory_size(server_factory: Any) -> None:
    srv = server_factory(sandbox="process", pool_size=1)
    lam = srv.client("lambda")
    name = unique("limits")
    python_function(lam, name, "def handler(e, c):\n    return 1\n", MemorySize=512)
    invoke_json(lam, name)
    root = memory_root(srv.data_dir)
    limits = []
    for group in root.iterdir():
        if group.is_dir():
            f = group / ("memory.limit_in_bytes" if root.parts[4] == "memory" else "memory.max")
            limits.append(f.read_text().strip())
    assert str(512 * 1024 * 1024) in limits


def test_out_of_memory_is_reported(server_factory: Any) -> None:
    srv = server_factory(sandbox="process", pool_size=0)
    lam = srv.client("lambda")
    name = unique("oom")
    python_function(
        lam,
        name,
        "def handler(e, c):\n    x = bytearray(300 << 20)\n"
        "    x[::4096] = b'1' * len(x[::4096])\n    return len(x)\n",
        MemorySize=128,
        Timeout=20,
    )
    out, resp = invoke_json(lam, name, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Runtime.OutOfMemory", out


def _leftover_sleeper(data_dir: Path, runtime_key: str = "python3.11") -> tuple[Any, Path]:
    """A process in a cgroup under the server's root, as a dead server would leave one."""
    root = memory_root(data_dir)
    group = root / f"{runtime_key}-999999999-0-abcdef"
    group.mkdir(parents=True)
    proc = subprocess.Popen(["sleep", "60"])
    (group / "cgroup.procs").write_text(str(proc.pid))
    return proc, group


def test_start_sweeps_environments_of_a_dead_server(server_factory: Any, tmp_path: Path) -> None:
    srv = server_factory(sandbox="process", pool_size=0)
    srv.stop()
    proc, group = _leftover_sleeper(srv.data_dir)
    try:
        srv.start()
        assert proc.wait(5) == -9
        assert not group.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stop_leaves_no_groups_or_processes(server_factory: Any) -> None:
    srv = server_factory(sandbox="process", pool_size=2)
    lam = srv.client("lambda")
    name = unique("left")
    python_function(lam, name, "def handler(e, c):\n    return 1\n")
    invoke_json(lam, name)
    root = memory_root(srv.data_dir)
    assert root.exists()
    assert srv.proc is not None
    helpers = _children(srv.proc.pid)  # zygote and slirp4netns processes
    assert helpers
    srv.stop()
    # The root can only go once every group in it is empty: no environment survived.
    assert not root.exists()
    left = [pid for pid in helpers if Path(f"/proc/{pid}").exists()]
    assert left == [], [Path(f"/proc/{p}/stat").read_text() for p in left]


def test_outbound_dns_config_is_the_hosts(server_factory: Any) -> None:
    srv = server_factory(sandbox="process", pool_size=0)
    lam = srv.client("lambda")
    name = unique("resolv")
    python_function(lam, name, "def handler(e, c):\n    return open('/etc/resolv.conf').read()\n")
    out, _ = invoke_json(lam, name)
    assert out == Path("/etc/resolv.conf").read_text()


ORPHANS = """
import os, time

def handler(event, context):
    if event.get("exit") is not None:
        os._exit(event["exit"])
    if event.get("signal"):
        os.kill(os.getpid(), event["signal"])
        time.sleep(5)
    # Double fork: the grandchild is orphaned, re-parented to PID 1 and must be reaped.
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
    # The grandchild exits on its own time: wait until it is gone (or stays a zombie).
    deadline = time.monotonic() + 5
    while True:
        states = []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open("/proc/%s/stat" % p) as fh:
                        states.append(fh.read().rsplit(")", 1)[1].split()[0])
                except OSError:
                    pass  # exited while we listed it
        if len(states) <= 2 or time.monotonic() > deadline:
            return states
        time.sleep(0.01)
"""


def test_orphans_are_reaped_and_exit_statuses_are_exact(server_factory: Any) -> None:
    srv = server_factory(sandbox="process", pool_size=0)
    lam = srv.client("lambda")
    name = unique("orphans")
    python_function(lam, name, ORPHANS, Timeout=10)
    states, resp = invoke_json(lam, name)
    assert "FunctionError" not in resp, states
    assert "Z" not in states and len(states) == 2  # init and the runtime
    out, resp = invoke_json(lam, name, {"exit": 3})
    assert out["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in out["errorMessage"]
    out, resp = invoke_json(lam, name, {"signal": 9})
    assert out["errorType"] == "Runtime.ExitError"
    assert "signal: killed" in out["errorMessage"]


def test_a_dead_zygote_is_replaced(server_factory: Any) -> None:
    srv = server_factory(sandbox="process", pool_size=1)
    lam = srv.client("lambda")
    name = unique("phoenix")
    python_function(lam, name, "def handler(e, c):\n    return 'up'\n")
    assert invoke_json(lam, name)[0] == "up"
    assert srv.proc is not None
    zygotes = [pid for pid in _children(srv.proc.pid) if b"--stage2" in _cmdline(pid)]
    assert zygotes
    for pid in zygotes:
        subprocess.run(["kill", "-9", str(pid)], check=True)
    # Dead, not yet reaped: the server finds out when it next needs one.
    deadline = time.monotonic() + 10
    while not all(_dead(pid) for pid in zygotes) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(_dead(pid) for pid in zygotes)
    out, resp = invoke_json(lam, name)
    assert "FunctionError" not in resp and out == "up", out
    other = unique("phoenix")
    python_function(lam, other, "def handler(e, c):\n    return 'new'\n")
    assert invoke_json(lam, other)[0] == "new"


def _dead(pid: int) -> bool:
    """The process has exited: a zombie, or already reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _children(ppid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
                found.append(int(entry.name))
    return found


async def test_a_zygote_started_by_a_server_with_many_descriptors_serves(tmp_path: Path) -> None:
    # A zygote started late (the first Java or Ruby function after a thousand environments)
    # inherits its socket under the server's descriptor number, past select()'s FD_SETSIZE.
    import os
    import resource

    from firebox.runtime.runtimes import available_runtimes
    from firebox.sandbox.process import ProcessBackend
    from firebox.settings import Settings

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low to hold 1,100 descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    settings = Settings(data_dir=tmp_path, pool_size=0, network=False).validate()
    backend = ProcessBackend(settings, tmp_path / "sandbox")
    try:
        await backend.start()
        zyg = await backend._zygote(available_runtimes()["python3.11"])
        assert zyg.sock is not None and zyg.sock.fileno() > 1024
        slot = await zyg.prefork()
        assert not slot.exit.done()
        slot.discard()
    finally:
        await backend.close()
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
