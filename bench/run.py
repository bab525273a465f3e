"""Firebox end to end on this machine, each figure next to a baseline measured in the same
run (the machine is shared and noisy: a figure alone means little, its ratio to the
baseline means more).

    python bench/run.py            # the full run, a few minutes
    python bench/run.py --quick    # fewer samples, about a minute and a half

Prints a table, one JSON line per figure on stdout, and writes everything to
bench/results/<UTC timestamp>.json. The server is a real `firebox serve` subprocess on a
fresh data dir (sandbox `process` where this host allows it, else `unsandboxed`); this
process is the load generator. Its client writes pre-built HTTP/1.1 requests on keep-alive
connections, each SigV4-signed by botocore before the clock starts (the server still
verifies every signature); the warm latency is also given signing per request, and through
boto3, to show what a client adds.

Figures and their baselines:
  cold start      CreateFunction, then the first Invoke (LogType=Tail) of many fresh
                  functions, Python, Node, Java (java17) and Ruby (ruby3.2); Init Duration
                  (REPORT line) and the platform's own part (end to end - Init Duration -
                  Duration) apart. Baselines: a fresh interpreter per invoke (python3 /
                  node / java / ruby running the same handler) and the sandbox floor (fork
                  into fresh namespaces and cgroups with nothing run,
                  bench_sandbox.baseline). Java and Ruby also get their warm latency next to
                  the fresh process, and the JVM's start with and without the runtime
                  client's class-data-sharing archive (bench_runtimes.py).
  warm invoke     latency at concurrency 1. Baseline: the floor, aiohttp answering a
                  constant (bench/floor.py), same client. Also next to the same server
                  with FIREBOX_FREEZE_IDLE=0 (environments not frozen between invokes).
  throughput      invokes/s at concurrency 1, 8, 32, 64. Baseline: the floor, same client
                  and concurrency.
  scale-out       100 concurrent invokes of a new function whose handler sleeps: time from
                  the first request until the 100th handler runs. Baseline: 100 fresh
                  interpreters started at once.
  density         PSS (/proc/<pid>/smaps_rollup) of each idle warm environment's processes
                  (found through its cgroup, or as the server's children when
                  unsandboxed), plus its slirp4netns helper; how many fit in 4 GiB.
                  Baseline: an idle interpreter that imported the same handler.
  async           bench/bench_async.py: events/s accepted (202) and drained, next to the
                  raw rates of the same queue.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.credentials import Credentials

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from client import AsyncConn, SyncConn, signed_request  # noqa: E402
from harness import Figure, Measure, Target, json_lines, markdown_table, table  # noqa: E402

ACCESS, SECRET = "AKIDFIREBOXBENCH0001", "firebox-bench-secret-key-000000000000000"
ROLE = "arn:aws:iam::000000000000:role/bench"
HOST = "127.0.0.1"
PY_CODE = "def handler(event, context):\n    return {'ok': True}\n"
NODE_CODE = "exports.handler = async (event) => ({ ok: true });\n"
SCALE_CODE = (
    "import os, time\n"
    "ENV = os.urandom(8).hex()\n"
    "def handler(event, context):\n"
    "    started = time.time()\n"
    "    time.sleep(event.get('sleep', 0))\n"
    "    return {'env': ENV, 'started': started}\n"
)
MiB = 1024 * 1024
# Settings given with --set, for every server the run starts.
SERVER_SETTINGS: dict[str, str] = {}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def zip_of(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


# --- processes we start -------------------------------------------------------------------


def choose_sandbox(forced: str | None) -> tuple[str, str]:
    """(backend, why): `process` where the host allows it, else `unsandboxed`."""
    if forced:
        return forced, "chosen with --sandbox"
    if os.geteuid() != 0:
        return "unsandboxed", "not root"
    try:
        from firebox.sandbox.process import host_problems
    except ImportError as exc:
        return "unsandboxed", f"process backend not importable: {exc}"
    problems = host_problems(network=False)
    if problems:
        return "unsandboxed", "; ".join(problems)
    return "process", "host supports namespaces and cgroups"


class FireboxServer:
    """A `firebox serve` subprocess on a fresh data dir."""

    def __init__(self, data_dir: Path, sandbox: str, **settings: Any) -> None:
        self.data_dir = data_dir
        self.sandbox = sandbox
        self.port = free_port()
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.creds = Credentials(ACCESS, SECRET)
        self.host = f"{HOST}:{self.port}"

    def start(self, wait: bool = True) -> FireboxServer:
        """Start it; ``wait`` for its API to answer (a worker-only server has none)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBOX_")}
        env.update(
            FIREBOX_DATA_DIR=str(self.data_dir),
            FIREBOX_PORT=str(self.port),
            FIREBOX_URL_PORT=str(free_port()),
            FIREBOX_ACCESS_KEY_ID=ACCESS,
            FIREBOX_SECRET_ACCESS_KEY=SECRET,
            FIREBOX_LOG_LEVEL="warning",
            FIREBOX_SANDBOX=self.sandbox,
            FIREBOX_ALLOW_UNSANDBOXED="1",
        )
        for key, value in {**SERVER_SETTINGS, **self.settings}.items():
            env["FIREBOX_" + key.upper()] = str(value)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.data_dir.parent / "server.log", "ab")  # noqa: SIM115 - the child's
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firebox", "serve"],
            env=env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        logf.close()
        if wait:
            wait_http(f"http://{self.host}/_firebox/health", self.proc)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> bytes:
        return signed_request(self.creds, self.host, method, path, body, headers)

    def create_request(
        self, name: str, runtime: str, handler: str, code: bytes, **kw: Any
    ) -> bytes:
        params = {
            "FunctionName": name,
            "Runtime": runtime,
            "Role": ROLE,
            "Handler": handler,
            "Code": {"ZipFile": base64.b64encode(code).decode()},
            **kw,
        }
        return self.request("POST", "/2015-03-31/functions", json.dumps(params).encode())

    def invoke_request(self, name: str, payload: bytes = b"{}", tail: bool = False) -> bytes:
        headers = {"X-Amz-Log-Type": "Tail"} if tail else {}
        return self.request("POST", f"/2015-03-31/functions/{name}/invocations", payload, headers)


class FloorServer:
    """bench/floor.py: aiohttp answering a constant."""

    def __init__(self) -> None:
        self.port = free_port()
        self.host = f"{HOST}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FloorServer:
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "floor.py"), str(self.port)],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_http(f"http://{self.host}/", self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {timeout_s} s")


@contextlib.contextmanager
def running(*servers: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for s in servers:
            s.stop()


# --- latency and throughput ---------------------------------------------------------------


def latency(port: int, raw: bytes, n: int, check: bytes = b"", gap_s: float = 0) -> list[float]:
    """n requests one after another on one connection (``gap_s`` apart, outside the
    timing); ms each."""
    conn = SyncConn(HOST, port)
    try:
        for _ in range(min(20, n)):  # warm the connection and the path
            conn.request(raw)
        samples = []
        for _ in range(n):
            if gap_s:
                time.sleep(gap_s)
            t0 = time.perf_counter()
            resp = conn.request(raw)
            samples.append(ms_since(t0))
            if resp.status != 200 or check not in resp.body:
                raise RuntimeError(f"{resp.status}: {resp.body[:300]!r}")
        return samples
    finally:
        conn.close()


def latency_signed_each(port: int, make: Callable[[], bytes], n: int) -> list[float]:
    """Like latency, but signing each request inside the timing (what an SDK pays)."""
    conn = SyncConn(HOST, port)
    try:
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            resp = conn.request(make())
            samples.append(ms_since(t0))
            if resp.status != 200:
                raise RuntimeError(f"{resp.status}: {resp.body[:300]!r}")
        return samples
    finally:
        conn.close()


async def _load(port: int, raw: bytes, concurrency: int, seconds: float) -> tuple[int, list[float]]:
    """``concurrency`` connections each sending back to back for ``seconds``; returns
    (completed, latencies in ms)."""
    conns = [await AsyncConn.open(HOST, port) for _ in range(concurrency)]
    # Warm up: every connection twice, so that (for Firebox) `concurrency` environments
    # exist and are warm before the clock starts.
    for _ in range(2):
        await asyncio.gather(*(c.request(raw) for c in conns))
    samples: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(c: AsyncConn) -> int:
        done = 0
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            resp = await c.request(raw)
            samples.append(ms_since(t0))
            if resp.status != 200:
                raise RuntimeError(f"{resp.status}: {resp.body[:300]!r}")
            done += 1
        return done

    start = time.perf_counter()
    counts = await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        await c.close()
    return int(sum(counts) / elapsed), samples


def throughput(port: int, raw: bytes, concurrency: int, seconds: float) -> tuple[int, list[float]]:
    return _run(_load(port, raw, concurrency, seconds))


def _run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


# --- cold starts --------------------------------------------------------------------------

REPORT_RE = re.compile(
    r"REPORT RequestId: \S+\s+Duration: ([\d.]+) ms.*?(?:Init Duration: ([\d.]+) ms)?\s*$"
)


def parse_report(log_result: str) -> tuple[float, float | None]:
    """(Duration, Init Duration or None) from X-Amz-Log-Result."""
    text = base64.b64decode(log_result).decode(errors="replace")
    for line in reversed(text.splitlines()):
        m = REPORT_RE.search(line)
        if m:
            return float(m.group(1)), float(m.group(2)) if m.group(2) else None
    raise ValueError(f"no REPORT line in {text!r}")


def cold_starts(
    srv: FireboxServer,
    prefix: str,
    runtime: str,
    handler: str,
    code: bytes,
    n: int,
    gap_s: float,
    memory_mb: int,
) -> dict[str, list[float]]:
    """Create n functions and invoke each once; ms per phase."""
    conn = SyncConn(HOST, srv.port)
    out: dict[str, list[float]] = {"create": [], "e2e": [], "init": [], "platform": []}
    try:
        for i in range(n):
            name = f"{prefix}-{i}"
            create = srv.create_request(name, runtime, handler, code, MemorySize=memory_mb)
            invoke = srv.invoke_request(name, tail=True)
            t0 = time.perf_counter()
            resp = conn.request(create)
            t1 = time.perf_counter()
            if resp.status != 201:
                raise RuntimeError(f"CreateFunction {resp.status}: {resp.body[:300]!r}")
            resp = conn.request(invoke)
            e2e = ms_since(t1)
            if resp.status != 200 or b"ok" not in resp.body:
                raise RuntimeError(f"Invoke {resp.status}: {resp.body[:300]!r}")
            duration, init = parse_report(resp.headers["x-amz-log-result"])
            if init is None:
                raise RuntimeError(f"{name}: first invoke has no Init Duration")
            out["create"].append((t1 - t0) * 1000)
            out["e2e"].append(e2e)
            out["init"].append(init)
            out["platform"].append(max(0.0, e2e - init - duration))
            time.sleep(gap_s)
    finally:
        conn.close()
    return out


def naive_cold(argv: list[str], n: int, cwd: Path) -> list[float]:
    """A fresh interpreter per invoke, running the same handler: ms each."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        out = subprocess.run(argv, cwd=cwd, capture_output=True, check=True)
        samples.append(ms_since(t0))
        if b"ok" not in out.stdout:
            raise RuntimeError(f"naive run printed {out.stdout!r}")
    return samples


def python_exe(runtime: str = "python3.11") -> str:
    from firebox.runtime.runtimes import available_runtimes

    rt = available_runtimes().get(runtime)
    return str(rt.executable) if rt is not None and rt.executable else sys.executable


def node_exe() -> str | None:
    from firebox.runtime.runtimes import available_runtimes

    for name in ("nodejs22.x", "nodejs20.x", "nodejs18.x"):
        rt = available_runtimes().get(name)
        if rt is not None and rt.executable:
            return str(rt.executable)
    return None


def sandbox_floor(n: int) -> list[float] | str:
    """bench_sandbox.baseline: fork from a zygote into fresh namespaces and cgroups,
    nothing run. Samples in ms, or why it could not run."""
    try:
        import bench_sandbox
    except ImportError as exc:
        return f"bench/bench_sandbox.py not importable: {exc}"
    fn = getattr(bench_sandbox, "baseline_samples", None)
    if fn is not None:
        return list(asyncio.run(fn(n)))
    # Older bench_sandbox: baseline() returns only percentiles; rebuild its loop here.
    return asyncio.run(_sandbox_floor_samples(n))


async def _sandbox_floor_samples(n: int) -> list[float]:
    from firebox.runtime.runtimes import available_runtimes
    from firebox.sandbox.process import ProcessBackend
    from firebox.settings import Settings

    with tempfile.TemporaryDirectory(prefix="firebox-bench-sbx-") as tmp:
        settings = Settings(data_dir=Path(tmp), pool_size=0, network=False).validate()
        backend = ProcessBackend(settings, Path(tmp) / "sandbox")
        await backend.start()
        try:
            zyg = await backend._zygote(available_runtimes()["python3.11"], "bench")
            samples = []
            for _ in range(n):
                t0 = time.perf_counter()
                slot = await zyg.prefork()
                samples.append(ms_since(t0))
                slot.discard()
                await asyncio.sleep(0.005)
        finally:
            await backend.close()
    return samples


# --- scale-out ----------------------------------------------------------------------------


async def _burst(port: int, raws: list[bytes]) -> tuple[float, list[dict[str, Any]]]:
    conns = await asyncio.gather(*(AsyncConn.open(HOST, port) for _ in raws))
    t0 = time.time()
    resps = await asyncio.gather(*(c.request(r) for c, r in zip(conns, raws, strict=True)))
    for c in conns:
        await c.close()
    out = []
    for r in resps:
        if r.status != 200 or r.headers.get("x-amz-function-error"):
            raise RuntimeError(f"{r.status}: {r.body[:300]!r}")
        out.append(json.loads(r.body))
    return t0, out


def scale_out(srv: FireboxServer, n: int, sleep_s: float) -> tuple[float, list[float], int]:
    """(ms until the n-th handler started, each handler's start in ms, distinct envs)."""
    name = "bench-scale"
    conn = SyncConn(HOST, srv.port)
    resp = conn.request(
        srv.create_request(
            name, "python3.11", "app.handler", zip_of({"app.py": SCALE_CODE}), Timeout=60
        )
    )
    conn.close()
    if resp.status != 201:
        raise RuntimeError(f"CreateFunction {resp.status}: {resp.body[:300]!r}")
    payload = json.dumps({"sleep": sleep_s}).encode()
    raws = [srv.invoke_request(name, payload) for _ in range(n)]
    t0, results = _run(_burst(srv.port, raws))
    starts = sorted((r["started"] - t0) * 1000 for r in results)
    return starts[-1], starts, len({r["env"] for r in results})


def naive_scale_out(exe: str, n: int) -> float:
    """ms until n fresh interpreters, started at once, have all run their first line."""
    code = "import time,sys;sys.stdout.write(repr(time.time()));sys.stdout.flush();time.sleep(1)"
    t0 = time.time()
    procs = [subprocess.Popen([exe, "-c", code], stdout=subprocess.PIPE) for _ in range(n)]
    starts = [float(p.communicate()[0]) for p in procs]
    return (max(starts) - t0) * 1000


# --- density ------------------------------------------------------------------------------


def pss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(p) for p in (task / "children").read_text().split()]
    return out


def descendants(pid: int) -> list[int]:
    out, todo = [], children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def environment_groups(data_dir: Path) -> list[list[int]]:
    """The process lists of the environments (not the pre-forked pool) of the `process`
    backend serving ``data_dir``: its memory cgroups whose limit has been set."""
    import hashlib

    key = hashlib.sha256(str(data_dir.absolute()).encode()).hexdigest()[:12]
    v1 = Path("/sys/fs/cgroup/memory/firebox") / key
    v2 = Path("/sys/fs/cgroup/firebox") / key
    root, limit_file = (v1, "memory.limit_in_bytes") if v1.is_dir() else (v2, "memory.max")
    groups = []
    for d in sorted(root.glob("*")) if root.is_dir() else []:
        try:
            limit = (d / limit_file).read_text().strip()
            pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except OSError:
            continue
        if limit == "max" or int(limit) >= 2**62:
            continue  # a pool slot: not yet given a function (no limit set)
        if pids:
            groups.append(pids)
    return groups


def density(srv: FireboxServer) -> dict[str, Any]:
    """PSS per idle warm environment, by runtime, plus per-environment helpers."""
    assert srv.proc is not None
    server_pid = srv.proc.pid
    below = descendants(server_pid)
    helpers = [p for p in below if comm(p) == "slirp4netns"]
    helper_kib = [k for k in (pss_kib(p) for p in helpers) if k is not None]
    per_env: dict[str, list[float]] = {}
    if srv.sandbox == "process":
        groups = environment_groups(srv.data_dir)
    else:  # unsandboxed: each environment is one child of the server (and its children)
        groups = [[p, *descendants(p)] for p in children(server_pid) if comm(p) != "slirp4netns"]
    for pids in groups:
        kinds = {comm(p) for p in pids}
        kind = "node" if any("node" in k for k in kinds) else "python"
        total = sum(k for k in (pss_kib(p) for p in pids) if k is not None)
        per_env.setdefault(kind, []).append(total / 1024)
    zygotes = [p for p in children(server_pid) if comm(p).startswith("python") and p not in helpers]
    zygote_mib = sum((pss_kib(p) or 0) for p in zygotes) / 1024 if srv.sandbox == "process" else 0
    return {
        "per_env_mib": per_env,
        "helper_mib": [k / 1024 for k in helper_kib],
        "server_mib": (pss_kib(server_pid) or 0) / 1024,
        "zygote_mib": zygote_mib,
    }


def naive_idle_pss(exe: str, n: int, code_dir: Path) -> list[float]:
    """PSS (MiB) of n idle interpreters that imported the handler, started together."""
    code = "import app,sys,time;sys.stdout.write('up\\n');sys.stdout.flush();time.sleep(60)"
    procs = [
        subprocess.Popen([exe, "-c", code], cwd=code_dir, stdout=subprocess.PIPE) for _ in range(n)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            p.stdout.readline()
        time.sleep(0.2)
        return [(pss_kib(p.pid) or 0) / 1024 for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


# --- async --------------------------------------------------------------------------------


def async_figures(sandbox: str, events: int, concurrency: int) -> dict[str, dict[str, Any]] | str:
    """Run bench/bench_async.py (its own server and queue baselines); its JSON lines by
    figure name, or why not."""
    script = BENCH / "bench_async.py"
    if not script.exists():
        return "bench/bench_async.py not present"
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            "--events",
            str(events),
            "--concurrency",
            str(concurrency),
            "--sandbox",
            sandbox,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        return f"bench_async.py failed: {out.stderr.strip()[-500:]}"
    rows = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            rows[row["figure"]] = row
    return rows


# --- the run ------------------------------------------------------------------------------


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick = args.quick
        self.figures: list[Figure] = []
        self.skipped: dict[str, str] = {}
        self.sandbox, self.sandbox_why = choose_sandbox(args.sandbox)
        self.load_at_start = os.getloadavg()

    def add(self, fig: Figure) -> None:
        self.figures.append(fig)
        print(json_lines([fig], {"sandbox": self.sandbox})[0], flush=True)

    def n(self, quick: int, full: int) -> int:
        return quick if self.quick else full

    def context(self) -> dict[str, Any]:
        return {
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": platform.node(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sandbox": self.sandbox,
            "sandbox_reason": self.sandbox_why,
            "quick": self.quick,
            # Other work on the machine: 1/5/15-minute load averages at start and end.
            "load_average_start": self.load_at_start,
            "load_average": os.getloadavg(),
            "client": "raw HTTP/1.1 keep-alive (bench/client.py) in the harness process; "
            "requests SigV4-signed with botocore before timing unless the figure says so",
            "git": _git_head(),
        }

    def execute(self) -> None:
        only = set(self.args.only.split(",")) if self.args.only else None
        steps = [
            ("warm", self.warm_and_throughput),
            ("cold", self.cold),
            ("scale", self.scale_and_density),
            ("async", self.async_),
        ]
        with tempfile.TemporaryDirectory(prefix="firebox-bench-") as tmp:
            self.tmp = Path(tmp)
            for name, step in steps:
                if only is not None and name not in only:
                    continue
                log(f"{name} …")
                try:
                    step()
                except Exception as exc:  # one broken part must not lose the others
                    log(f"{name} failed: {exc!r}")
                    self.skipped[name] = f"failed: {exc!r}"
                    # The data dir goes with the temporary directory: show why now.
                    for server_log in self.tmp.glob(f"{name}/server.log"):
                        log(f"{server_log}:\n{server_log.read_text(errors='replace')[-3000:]}")

    # Each step starts what it needs and stops it before the next, so that nothing of one
    # step (environments, the floor) competes with the next one's measurements.

    def warm_and_throughput(self) -> None:
        floor = FloorServer().start()
        srv = FireboxServer(self.tmp / "warm" / "data", self.sandbox).start()
        # The same server with environments left running between invokes: what freezing
        # them (the default) costs a warm invoke.
        unfrozen = FireboxServer(
            self.tmp / "warm-unfrozen" / "data", self.sandbox, freeze_idle=0
        ).start()
        with running(floor, srv, unfrozen):
            name = "bench-warm"
            for server in (srv, unfrozen):
                conn = SyncConn(HOST, server.port)
                r = conn.request(
                    server.create_request(
                        name,
                        "python3.11",
                        "app.handler",
                        zip_of({"app.py": PY_CODE}),
                        MemorySize=self.args.memory,
                    )
                )
                if r.status != 201:
                    raise RuntimeError(f"CreateFunction {r.status}: {r.body[:300]!r}")
                conn.close()
            inv = srv.invoke_request(name)
            inv_unfrozen = unfrozen.invoke_request(name)
            floor_raw = srv.invoke_request(name).replace(srv.host.encode(), floor.host.encode())
            n = self.n(500, 3000)
            # Interleave floor and Firebox in tenths so that a noisy neighbour hits all.
            f_lat, w_lat, u_lat = [], [], []
            for _ in range(10):
                f_lat += latency(floor.port, floor_raw, n // 10)
                w_lat += latency(srv.port, inv, n // 10, check=b"ok")
                u_lat += latency(unfrozen.port, inv_unfrozen, n // 10, check=b"ok")
            floor_m = Measure.samples("floor c=1 (aiohttp constant)", "ms", f_lat)
            self.add(
                Figure(
                    "warm invoke latency c=1, freezer on",
                    Measure.samples("warm invoke, freezer on (default)", "ms", w_lat),
                    Measure.samples("FIREBOX_FREEZE_IDLE=0, same run", "ms", u_lat),
                    notes="back to back: an environment is frozen 2 ms after an invoke, so "
                    "these never are",
                )
            )
            # Invokes 10 ms apart: each one finds its environment frozen and thaws it.
            gap = 0.01
            t_lat, tu_lat = [], []
            for _ in range(10):
                t_lat += latency(srv.port, inv, n // 20, check=b"ok", gap_s=gap)
                tu_lat += latency(unfrozen.port, inv_unfrozen, n // 20, check=b"ok", gap_s=gap)
            self.add(
                Figure(
                    "warm invoke latency c=1, thawed each time",
                    Measure.samples("10 ms apart, frozen in between", "ms", t_lat),
                    Measure.samples("10 ms apart, FIREBOX_FREEZE_IDLE=0", "ms", tu_lat),
                    notes="each invoke thaws its environment (cgroup freezer) first",
                )
            )
            unfrozen.stop()
            self.add(
                Figure(
                    "warm invoke latency c=1",
                    Measure.samples("warm invoke, pre-signed", "ms", w_lat),
                    floor_m,
                    Target("<=", 1.0),
                    f"MemorySize {self.args.memory} MB; raw keep-alive client, request signed "
                    "before timing",
                )
            )
            m = self.n(200, 1000)
            signed_each = latency_signed_each(srv.port, lambda: srv.invoke_request(name), m)
            self.add(
                Figure(
                    "warm invoke latency c=1, signed per request",
                    Measure.samples("warm invoke, SigV4 per request", "ms", signed_each),
                    floor_m,
                    notes="botocore SigV4Auth inside the timing: what an SDK's signing adds",
                )
            )
            boto = self._boto3_latency(srv, name, m)
            self.add(
                Figure(
                    "warm invoke latency c=1, boto3",
                    Measure.samples("warm invoke via boto3", "ms", boto),
                    floor_m,
                    notes="boto3 lambda.invoke with payload read: the client most users have",
                )
            )
            secs = self.n(2, 5)
            c128 = SyncConn(HOST, srv.port)
            resp = c128.request(
                srv.create_request(
                    name + "-128", "python3.11", "app.handler", zip_of({"app.py": PY_CODE})
                )
            )
            c128.close()
            if resp.status != 201:
                raise RuntimeError(f"CreateFunction {resp.status}: {resp.body[:300]!r}")
            inv128 = srv.invoke_request(name + "-128")
            lat128 = latency(srv.port, inv128, m, check=b"ok")
            rate128, _ = throughput(srv.port, inv128, 1, secs)
            self.add(
                Figure(
                    "warm invoke latency c=1, 128 MB",
                    Measure.samples("warm invoke, MemorySize 128", "ms", lat128),
                    floor_m,
                    notes=f"CPU quota 7% of a core (Lambda's ratio); {rate128} invokes/s at c=1",
                    extra={"throughput_c1": rate128},
                )
            )
            for c in (1, 8, 32, 64):
                base, base_lat = throughput(floor.port, floor_raw, c, secs)
                rate, lat = throughput(srv.port, inv, c, secs)
                self.add(
                    Figure(
                        f"warm throughput c={c}",
                        Measure("invokes/s", "req/s", value=rate),
                        Measure(f"floor c={c}", "req/s", value=base),
                        Target(">=", 0.5, relative=True),
                        f"{secs} s, {c} keep-alive connections, pre-signed; an invoke is 3 "
                        "HTTP exchanges in the server (Invoke, /next, /response), the floor's 1",
                        extra={
                            "latency_p50_ms": round(_p(lat, 50), 3),
                            "latency_p99_ms": round(_p(lat, 99), 3),
                            "floor_latency_p50_ms": round(_p(base_lat, 50), 3),
                        },
                    )
                )

    def _boto3_latency(self, srv: FireboxServer, name: str, n: int) -> list[float]:
        import boto3
        from botocore.config import Config

        lam = boto3.client(
            "lambda",
            endpoint_url=f"http://{srv.host}",
            region_name="us-east-1",
            aws_access_key_id=ACCESS,
            aws_secret_access_key=SECRET,
            config=Config(retries={"max_attempts": 0}),
        )
        for _ in range(10):
            lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read()
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read()
            samples.append(ms_since(t0))
        return samples

    def cold(self) -> None:
        srv = FireboxServer(self.tmp / "cold" / "data", self.sandbox).start()
        code_dir = self.tmp / "naive"
        code_dir.mkdir()
        (code_dir / "app.py").write_text(PY_CODE)
        (code_dir / "index.js").write_text(NODE_CODE)
        gap = 0.05
        with running(srv):
            time.sleep(1.0)  # let the zygote start and its pool fill
            n = self.n(25, 100)
            mem = self.args.memory
            py_zip = zip_of({"app.py": PY_CODE})
            py = cold_starts(srv, "bench-cold-py", "python3.11", "app.handler", py_zip, n, gap, mem)
            py128 = cold_starts(
                srv, "bench-cold-py128", "python3.11", "app.handler", py_zip, self.n(10, 30),
                gap, 128,
            )  # fmt: skip
            exe = python_exe()
            naive_py = naive_cold(
                [exe, "-c", "import json,app;print(json.dumps(app.handler({},None)))"],
                self.n(15, 50),
                code_dir,
            )
            sbx = sandbox_floor(self.n(30, 100)) if self.sandbox == "process" else "unsandboxed"
            node = node_exe()
            nd: dict[str, list[float]] | None = None
            naive_node: list[float] = []
            if node is not None:
                nd = cold_starts(
                    srv, "bench-cold-node", "nodejs20.x", "index.handler",
                    zip_of({"index.js": NODE_CODE}), self.n(15, 50), gap, mem,
                )  # fmt: skip
                naive_node = naive_cold(
                    [
                        node,
                        "-e",
                        "require('./index.js').handler({}).then(r=>console.log(JSON.stringify(r)))",
                    ],
                    self.n(10, 30),
                    code_dir,
                )
            prestarted = self._java_and_ruby(srv, code_dir, mem)
        note = (
            f"MemorySize {self.args.memory} MB, pool_size=2 (default), "
            f"{gap * 1000:.0f} ms between cold starts"
        )
        naive_m = Measure.samples(f"fresh python3 per invoke ({Path(exe).name})", "ms", naive_py)
        sbx_m = (
            Measure.samples("sandbox floor (fork+ns+cgroups)", "ms", sbx)
            if isinstance(sbx, list)
            else None
        )
        if isinstance(sbx, str):
            self.skipped["sandbox floor"] = sbx
        self._cold_rows("python", py, naive_m, sbx_m, note, Target("<=", 10.0))
        self.add(
            Figure(
                "cold start python 128 MB, end to end",
                Measure.samples("first Invoke after Create", "ms", py128["e2e"]),
                naive_m,
                notes="MemorySize 128 MB: CPU quota 7% of a core (Lambda's ratio) slows Init",
                extra={"init_p50_ms": round(_p(py128["init"], 50), 2)},
            )
        )
        if nd is not None:
            node_m = Measure.samples("fresh node per invoke", "ms", naive_node)
            self._cold_rows("node", nd, node_m, sbx_m, note, None)
        else:
            self.skipped["cold node"] = "no node runtime on this host"
        for kind, (r, warm, naive, gap_s) in prestarted.items():
            note_k = f"MemorySize {mem} MB, pool_size=2, {gap_s * 1000:.0f} ms between cold starts"
            self._cold_rows(kind, r, naive, sbx_m, note_k, None)
            self.add(
                Figure(
                    f"warm invoke latency {kind} c=1",
                    Measure.samples("warm invoke, pre-signed", "ms", warm),
                    naive,
                    notes="one function, invoked back to back on one keep-alive connection",
                )
            )
        if sbx_m is not None:
            self.add(Figure("sandbox floor", sbx_m, notes="bench_sandbox.baseline, in-process"))

    def _java_and_ruby(
        self, srv: FireboxServer, code_dir: Path, mem: int
    ) -> dict[str, tuple[dict[str, list[float]], list[float], Measure, float]]:
        """Cold starts, warm latency and a fresh process per invoke for java17 and ruby3.2
        (bench_runtimes.py), plus the JVM's start with and without its archive."""
        import bench_runtimes as br
        from firebox.runtime.runtimes import available_runtimes

        rts = available_runtimes()
        out: dict[str, tuple[dict[str, list[float]], list[float], Measure, float]] = {}
        java = rts.get("java17")
        built = br.java_build(self.tmp / "java") if java is not None else "no java17 here"
        if isinstance(built, str):
            self.skipped["cold java17"] = built
        else:
            assert java is not None and java.executable is not None and java.prefix is not None
            jzip, classes = built
            # A JVM's pool refills in about a second on this machine: that far apart, every
            # cold start finds its JVM started.
            gap = 1.0
            # The first start of a data dir compiles the client and dumps its archive.
            cold_starts(srv, "bench-java-prime", "java17", "bench.Handler", jzip, 1, gap, mem)
            r = cold_starts(
                srv, "bench-cold-java", "java17", "bench.Handler", jzip, self.n(10, 30), gap, mem
            )
            warm = latency(
                srv.port, srv.invoke_request("bench-cold-java-0"), self.n(200, 1000), b"ok"
            )
            naive = naive_cold(
                br.java_naive_argv(str(java.executable), classes), self.n(10, 30), code_dir
            )
            out["java17"] = (r, warm, Measure.samples("fresh java per invoke", "ms", naive), gap)
            clients = sorted((srv.data_dir / "sandbox" / "runtimes").glob("java17-*"))
            cds = (
                br.jvm_start_samples(java.prefix, clients[-1], self.n(10, 30))
                if clients and self.sandbox == "process"
                else "no sandbox-built client"
            )
            if isinstance(cds, str):
                self.skipped["jvm start, cds"] = cds
            else:
                self.add(
                    Figure(
                        "jvm start to first /next, with the client's CDS archive",
                        Measure.samples("-XX:SharedArchiveFile=firebox.jsa", "ms", cds["cds"]),
                        Measure.samples("JDK's own archive only", "ms", cds["plain"]),
                        notes="the runtime's JVM with AWS's flags, sandbox paths, no function: "
                        "what a cold start without a pooled JVM pays",
                    )
                )
        ruby = rts.get("ruby3.2")
        if ruby is None or ruby.executable is None:
            self.skipped["cold ruby3.2"] = "no ruby here"
        else:
            (code_dir / "app.rb").write_text(br.RUBY_CODE)
            rzip = zip_of({"app.rb": br.RUBY_CODE})
            gap = 0.25
            cold_starts(srv, "bench-ruby-prime", "ruby3.2", "app.handler", rzip, 1, gap, mem)
            r = cold_starts(
                srv, "bench-cold-ruby", "ruby3.2", "app.handler", rzip, self.n(15, 50), gap, mem
            )
            warm = latency(
                srv.port, srv.invoke_request("bench-cold-ruby-0"), self.n(200, 1000), b"ok"
            )
            naive = naive_cold(br.ruby_naive_argv(str(ruby.executable)), self.n(10, 30), code_dir)
            out["ruby3.2"] = (r, warm, Measure.samples("fresh ruby per invoke", "ms", naive), gap)
        return out

    def _cold_rows(
        self,
        kind: str,
        r: dict[str, list[float]],
        naive: Measure,
        sbx: Measure | None,
        note: str,
        target: Target | None,
    ) -> None:
        self.add(
            Figure(
                f"cold start {kind}, end to end",
                Measure.samples("first Invoke after Create", "ms", r["e2e"]),
                naive,
                target,
                note,
            )
        )
        self.add(
            Figure(
                f"cold start {kind}, Init Duration",
                Measure.samples("REPORT Init Duration", "ms", r["init"]),
                naive,
                notes="runtime start + handler import, as the REPORT line gives it",
            )
        )
        self.add(
            Figure(
                f"cold start {kind}, platform part",
                Measure.samples("end to end - Init - Duration", "ms", r["platform"]),
                sbx,
                notes="HTTP, auth, sandbox hand-off, Runtime API round trips",
            )
        )
        self.add(
            Figure(
                f"create function {kind}",
                Measure.samples("CreateFunction", "ms", r["create"]),
                notes="control plane: store the zip, write metadata (fsync)",
            )
        )

    def scale_and_density(self) -> None:
        srv = FireboxServer(self.tmp / "scale" / "data", self.sandbox).start()
        exe = python_exe()
        code_dir = self.tmp / "naive-scale"
        code_dir.mkdir()
        (code_dir / "app.py").write_text(SCALE_CODE)
        with running(srv):
            time.sleep(1.0)
            n = 100
            sleep_s = 3.0
            last, starts, envs = scale_out(srv, n, sleep_s)
            naive = naive_scale_out(exe, n)
            self.add(
                Figure(
                    f"scale-out 0 -> {n} environments",
                    Measure("until the last handler runs", "ms", value=last),
                    Measure(f"{n} fresh python3 at once", "ms", value=naive),
                    Target("<=", 1000.0),
                    f"{n} concurrent invokes of a new function (handler sleeps {sleep_s} s); "
                    f"{envs} distinct environments",
                    extra={
                        "handler_start_p50_ms": round(_p(starts, 50), 1),
                        "distinct_environments": envs,
                    },
                )
            )
            time.sleep(0.5)  # all idle now
            d = density(srv)
        naive_pss = naive_idle_pss(exe, 10, code_dir)
        naive_m = Measure.samples("idle python3 that imported it", "MiB", naive_pss)
        helper = _mean(d["helper_mib"])
        py = d["per_env_mib"].get("python", [])
        if not py:
            self.skipped["density"] = "no environment processes found"
            return
        self.add(
            Figure(
                "density: PSS per idle warm python env",
                Measure.samples("environment processes", "MiB", py),
                naive_m,
                Target("<=", 8.0),
                f"{len(py)} environments; PSS of the processes in each environment's cgroup",
                extra={
                    "zygote_mib": round(d["zygote_mib"], 1),
                    "server_mib": round(d["server_mib"], 1),
                },
            )
        )
        if d["helper_mib"]:
            self.add(
                Figure(
                    "density: slirp4netns per env",
                    Measure.samples("outbound network helper", "MiB", d["helper_mib"]),
                    notes="one slirp4netns per environment with network on",
                )
            )
        per_env = _p(py, 50) + helper
        self.add(
            Figure(
                "density: idle python envs in 4 GiB",
                Measure("environments", "envs", value=int(4096 // per_env)),
                Measure("idle python3 processes", "procs", value=int(4096 // _p(naive_pss, 50))),
                notes=f"4096 MiB / ({_p(py, 50):.2f} MiB env + {helper:.2f} MiB network helper)",
            )
        )

    def async_(self) -> None:
        events = self.n(2000, 8000)
        rows = async_figures(self.sandbox, events, 64)
        if isinstance(rows, str):
            self.skipped["async"] = rows
            return
        acc, drn = rows.get("server_accepted"), rows.get("server_drained")
        grp, claim = rows.get("queue_put_group_commit"), rows.get("queue_claim_complete")
        if acc is not None:
            self.add(
                Figure(
                    "async events accepted",
                    Measure("Invoke Event -> 202", "ev/s", value=acc["events_per_s"]),
                    Measure("raw queue, group commit", "ev/s", value=grp["events_per_s"])
                    if grp
                    else None,
                    Target(">=", 2000.0),
                    f"bench_async.py: {acc.get('notes', '')}",
                )
            )
        if drn is not None:
            self.add(
                Figure(
                    "async events drained",
                    Measure("queued -> function ran", "ev/s", value=drn["events_per_s"]),
                    Measure("raw queue claim+complete", "ev/s", value=claim["events_per_s"])
                    if claim
                    else None,
                    notes=f"bench_async.py: {drn.get('notes', '')}",
                )
            )


def _p(samples: list[float], p: float) -> float:
    from harness import percentile

    return percentile(samples, p) if samples else float("nan")


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _git_head() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(BENCH), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples (about 1-2 minutes)")
    ap.add_argument("--sandbox", choices=("process", "unsandboxed"), help="default: detect")
    ap.add_argument("--only", default="", help="comma list of: warm, cold, scale, async")
    ap.add_argument(
        "--memory",
        type=int,
        default=1769,
        help="MemorySize of the warm-path function (1769 MB buys one full vCPU, as on Lambda)",
    )
    ap.add_argument("--out", type=Path, default=BENCH / "results", help="results directory")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SETTING=VALUE",
        help="a server setting for every Firebox server of the run (template_per_function=0)",
    )
    args = ap.parse_args()
    for item in args.set:
        key, _, value = item.partition("=")
        SERVER_SETTINGS[key.strip().lower()] = value
    started = time.monotonic()
    run = Run(args)
    log(f"sandbox backend: {run.sandbox} ({run.sandbox_why})")
    run.execute()
    context = run.context()
    context["seconds"] = round(time.monotonic() - started, 1)
    context["skipped"] = run.skipped
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"{stamp}.json"
    path.write_text(
        json.dumps(
            {
                "run": context,
                "figures": [f.to_json() for f in run.figures],
                "markdown": markdown_table(run.figures),
            },
            indent=2,
        )
    )
    print(file=sys.stderr)
    print(table(run.figures), file=sys.stderr)
    for name, why in run.skipped.items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    print(
        f"\nsandbox={run.sandbox}; {context['seconds']} s; load average "
        f"{' '.join(f'{x:.2f}' for x in context['load_average'])}; results in {path}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
