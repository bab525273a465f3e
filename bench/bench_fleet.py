"""Every core, and the fleet's hop: warm invokes/s of 1 and N processes, server CPU per
warm invoke, and the added latency of a front end that places on a worker in another
process — each next to a baseline measured in the same run.

    python bench/bench_fleet.py [--seconds 8] [--connections 8] [--processes 2]

Load comes from wrk (Debian's package `wrk`), a C client that costs little CPU, replaying
one SigV4-signed Invoke (the server verifies every signature; replays within the clock
skew window are allowed, as on AWS). Figures:

  throughput, N processes   warm invokes/s of one Python function (MemorySize 1769: one
                            vCPU) with --processes 1 and N. Baseline: bench/floor.py
                            (aiohttp answering a constant), same wrk, same connections.
  server CPU per invoke     user+system CPU of the server's own processes (not the
                            environments) per invoke at the load above. Baseline: the
                            floor's CPU per request (one HTTP exchange; an invoke is three).
  fleet hop latency         c=1 warm invoke latency through `--role api` + `--role worker`
                            (two processes, the internal protocol between them). Baseline:
                            the same through one `--role all` process.

Prints a table, then one JSON line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Stats  # noqa: E402
from run import PY_CODE, FireboxServer, FloorServer, choose_sandbox, latency, zip_of  # noqa: E402


def lua_for(raw: bytes) -> str:
    """A wrk script sending one pre-built HTTP request (method, path, headers, body)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(": ")
        if key.lower() not in ("host", "content-length"):
            headers[key] = value
    hdrs = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    return (
        f"wrk.method = {json.dumps(method)}\nwrk.path = {json.dumps(path)}\n"
        f"wrk.body = {json.dumps(body.decode())}\n{hdrs}\n"
        "done = function(summary, latency, requests)\n"
        "  io.write(string.format('RESULT %d %d %d\\n', summary.requests,"
        " summary.errors.status + summary.errors.connect + summary.errors.read"
        " + summary.errors.write + summary.errors.timeout, summary.duration))\n"
        "end\n"
    )


def wrk(port: int, raw: bytes, connections: int, seconds: float) -> tuple[float, int]:
    """(requests/s, errors) of one wrk run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(lua_for(raw))
        script = fh.name
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "-s",
                script,
                f"http://127.0.0.1:{port}/",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script)
    m = re.search(r"RESULT (\d+) (\d+) (\d+)", out)
    assert m, out
    requests, errors, duration_us = (int(x) for x in m.groups())
    return requests / (duration_us / 1e6), errors


def tree_cpu_s(pid: int, exclude_cgroups: bool = True) -> float:
    """CPU seconds (user+system) of a process and its descendants that are server
    processes (environments, zygotes and slirp4netns left out)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in [pid, *_descendants(pid)]:
        try:
            comm = Path(f"/proc/{p}/comm").read_text().strip()
            cmdline = Path(f"/proc/{p}/cmdline").read_bytes()
            stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if exclude_cgroups and not (b"firebox" in cmdline and b"serve" in cmdline):
            continue
        del comm
        total += (int(stat[11]) + int(stat[12])) / tick
    return total


def _descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def firebox(tmp: Path, name: str, sandbox: str, **settings: Any) -> FireboxServer:
    return FireboxServer(tmp / name / "data", sandbox, **settings).start()


def deploy(srv: FireboxServer, fn: str) -> bytes:
    from client import SyncConn

    conn = SyncConn("127.0.0.1", srv.port)
    resp = conn.request(
        srv.create_request(
            fn, "python3.11", "app.handler", zip_of({"app.py": PY_CODE}), MemorySize=1769
        )
    )
    assert resp.status == 201, resp.body
    raw = srv.invoke_request(fn)
    deadline = time.monotonic() + 30
    # A front end without a worker of its own waits for one to register.
    while conn.request(raw).status != 200:
        assert time.monotonic() < deadline, "no worker took the invoke"
        time.sleep(0.1)
    for _ in range(50):
        conn.request(raw)
    conn.close()
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--sandbox", default=None)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    sandbox, why = choose_sandbox(args.sandbox)
    print(f"sandbox: {sandbox} ({why})", file=sys.stderr)
    rows: list[tuple[str, str, float, str, float]] = []
    tmp = Path(tempfile.mkdtemp(prefix="firebox-bench-fleet-"))
    floor = FloorServer().start()
    try:
        raw_floor = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        cpu0 = tree_cpu_s(floor.proc.pid, exclude_cgroups=False)  # type: ignore[union-attr]
        floor_rps, _ = wrk(floor.port, raw_floor, args.connections, args.seconds)
        floor_cpu = tree_cpu_s(floor.proc.pid, exclude_cgroups=False) - cpu0  # type: ignore[union-attr]
        floor_cpu_ms = floor_cpu * 1000 / (floor_rps * args.seconds)
        floor_lat = Stats.of(latency(floor.port, raw_floor, 2000)).p50
    finally:
        floor.stop()
    print(f"floor: {floor_rps:.0f} req/s, {floor_cpu_ms:.3f} ms CPU per request", file=sys.stderr)
    for n in sorted({1, args.processes}):
        srv = firebox(tmp, f"p{n}", sandbox, processes=n)
        try:
            raw = deploy(srv, f"warm{n}")
            # Warm every process's environments, then measure.
            wrk(srv.port, raw, args.connections, 2)
            assert srv.proc is not None
            cpu0 = tree_cpu_s(srv.proc.pid)
            rps, errors = wrk(srv.port, raw, args.connections, args.seconds)
            cpu = tree_cpu_s(srv.proc.pid) - cpu0
        finally:
            srv.stop()
        cpu_ms = cpu * 1000 / (rps * args.seconds)
        rows.append(
            (
                f"warm throughput, {n} process(es), c={args.connections}",
                "req/s",
                rps,
                "floor (aiohttp constant), same wrk",
                floor_rps,
            )
        )
        rows.append(
            (
                f"server CPU per warm invoke, {n} process(es)",
                "ms",
                cpu_ms,
                "floor CPU per request",
                floor_cpu_ms,
            )
        )
        if errors:
            print(f"  {errors} errors at {n} process(es)", file=sys.stderr)
    # The fleet hop: api and worker in two processes on the same data dir.
    one = firebox(tmp, "all", sandbox)
    try:
        raw = deploy(one, "hop")
        direct = Stats.of(latency(one.port, raw, 2000))
    finally:
        one.stop()
    data = tmp / "split" / "data"
    worker = FireboxServer(data, sandbox, role="worker").start(wait=False)
    front = FireboxServer(data, sandbox, role="api")
    try:
        front.start()
        raw = deploy(front, "hop")
        hop = Stats.of(latency(front.port, raw, 2000))
    finally:
        front.stop()
        worker.stop()
    rows.append(
        (
            "warm latency c=1 through api -> worker",
            "ms",
            hop.p50,
            "one process (role all)",
            direct.p50,
        )
    )
    rows.append(("floor latency c=1", "ms", floor_lat, "", float("nan")))
    print(f"{'figure':52} {'value':>10}  {'baseline, same run':>36} {'value':>10}", file=sys.stderr)
    for name, unit, value, base_name, base in rows:
        print(f"{name:52} {value:>10.4g}  {base_name:>36} {base:>10.4g}  {unit}", file=sys.stderr)
    for name, unit, value, base_name, base in rows:
        print(
            json.dumps(
                {
                    "figure": name,
                    "unit": unit,
                    "value": value,
                    "baseline": base_name,
                    "baseline_value": base,
                }
            )
        )


if __name__ == "__main__":
    main()
