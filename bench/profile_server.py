"""Where a warm invoke's time goes: CPU per invoke of the server, the environments and
the client (from /proc/<pid>/stat), and, with py-spy installed, the server's profile.

    python bench/profile_server.py [--concurrency 8] [--seconds 5] [--sandbox process]

py-spy (``pip install py-spy``) samples only while the server holds the GIL, so the
profile shows where its CPU goes, not where it waits. Prints the CPU split, then the
server's time by area (innermost Firebox module on the stack) and its top functions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run as R  # noqa: E402
from client import SyncConn  # noqa: E402

# (area, a substring of a py-spy frame); the innermost match on a stack names its area.
AREAS = [
    ("sigv4", "api/sigv4.py"),
    ("runtime API", "runtime/api.py"),
    ("environment", "workers/environment.py"),
    ("worker manager", "workers/manager.py"),
    ("sandbox", "firebox/sandbox/"),
    ("invoker", "invoke/sync.py"),
    ("Lambda API routes", "api/lambda_routes.py"),
    ("front door", "api/server.py"),
    ("logs, metrics, metering", "firebox/observe/"),
    ("socket send", "_writelines"),
    ("socket send", "StreamWriter._write "),
]


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def env_pids(srv: R.FireboxServer) -> list[int]:
    assert srv.proc is not None
    if srv.sandbox == "process":
        return [p for g in R.environment_groups(srv.data_dir) for p in g]
    return R.descendants(srv.proc.pid)


def summarise(raw: Path, top: int) -> None:
    areas: Counter[str] = Counter()
    selfs: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        selfs[frames[-1]] += n
        area = "aiohttp / asyncio / other"
        for frame in reversed(frames):
            hit = next((name for name, pat in AREAS if pat in frame), None)
            if hit:
                area = hit
                break
        areas[area] += n
    if not total:
        print("py-spy recorded nothing")
        return
    print(f"\nserver, by area ({total} samples while holding the GIL):")
    for area, n in areas.most_common():
        print(f"  {n / total * 100:5.1f}%  {area}")
    print("\nserver, top functions (self):")
    for frame, n in selfs.most_common(top):
        print(f"  {n / total * 100:5.1f}%  {frame}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--memory", type=int, default=1769)
    ap.add_argument("--sandbox", choices=("process", "unsandboxed"))
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    sandbox, _why = R.choose_sandbox(args.sandbox)
    spy_exe = shutil.which("py-spy")
    with tempfile.TemporaryDirectory(prefix="firebox-profile-") as tmp:
        srv = R.FireboxServer(Path(tmp) / "data", sandbox).start()
        assert srv.proc is not None
        try:
            conn = SyncConn(R.HOST, srv.port)
            code = R.zip_of({"app.py": R.PY_CODE})
            resp = conn.request(
                srv.create_request("p", "python3.11", "app.handler", code, MemorySize=args.memory)
            )
            conn.close()
            if resp.status != 201:
                raise SystemExit(f"CreateFunction {resp.status}: {resp.body[:300]!r}")
            inv = srv.invoke_request("p")
            R.throughput(srv.port, inv, args.concurrency, 0.5)  # environments up and warm
            envs = env_pids(srv)
            raw = Path(tmp) / "profile.txt"
            spy = None
            if spy_exe:
                spy = subprocess.Popen(
                    [spy_exe, "record", "-p", str(srv.proc.pid), "-d", str(int(args.seconds) + 2)]
                    + ["-r", "1000", "--gil", "--nonblocking", "--format", "raw", "-o", str(raw)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(0.5)
            s0, e0, c0 = cpu_s(srv.proc.pid), sum(map(cpu_s, envs)), time.process_time()
            t0 = time.perf_counter()
            rate, lat = R.throughput(srv.port, inv, args.concurrency, args.seconds)
            wall = time.perf_counter() - t0
            n = rate * args.seconds
            server = cpu_s(srv.proc.pid) - s0
            env = sum(map(cpu_s, envs)) - e0
            client = time.process_time() - c0
            print(
                f"sandbox {sandbox}, concurrency {args.concurrency}, {rate} invokes/s, "
                f"p50 {R._p(lat, 50):.3f} ms"
            )
            print(
                f"CPU per invoke: server {server / n * 1000:.3f} ms "
                f"({server / wall * 100:.0f}% of a core), environments {env / n * 1000:.3f} ms, "
                f"client {client / n * 1000:.3f} ms; load average {os.getloadavg()[0]:.1f}"
            )
            if spy is not None:
                spy.wait()
                if raw.exists():
                    summarise(raw, args.top)
            else:
                print("(install py-spy for the server's profile)")
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
