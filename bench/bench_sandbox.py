"""The process sandbox's share of a cold start, and what a caller sees end to end.

    python bench/bench_sandbox.py [--cold 40] [--warm 300] [--memory 1769]

Figures (p50/p90/p99 in ms):
  baseline       fork from the zygote into fresh cgroups + pid/mount/ipc/uts/net/cgroup
                 namespaces, listener handed back, nothing run (in-process, no HTTP)
  cold (pool)    first Invoke of a new function over HTTP, pre-forked pool available
  cold (no pool) the same with pool_size=0: the fork happens on the request's path
  create+cold    CreateFunction + first Invoke, both over HTTP
  warm           Invoke of a warm environment over HTTP
  unsandboxed    the same server with the unsandboxed backend (exec per environment), for
                 the floor the sandbox adds to
Server figures run a real `firebox serve --sandbox process` on a fresh data dir; requests
are SigV4-signed before the clock starts, over one keep-alive connection. Needs root.
Prints a table, then one JSON line per result.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS, SECRET = "AKIDFIREBOXBENCH0001", "firebox-bench-secret-key-000000000000000"
ROLE = "arn:aws:iam::000000000000:role/bench"
CODE = "def handler(event, context):\n    return {'ok': True}\n"


def pct(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)

    def at(p: float) -> float:
        return round(s[min(len(s) - 1, int(p * len(s)))], 3)

    return {
        "n": len(s),
        "p50": at(0.5),
        "p90": at(0.9),
        "p99": at(0.99),
        "mean": round(statistics.fmean(s), 3),
    }


# --- baseline: the sandbox alone -------------------------------------------------------


async def baseline(n: int) -> dict[str, float]:
    from firebox.runtime.runtimes import available_runtimes
    from firebox.sandbox.process import ProcessBackend
    from firebox.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), pool_size=0, network=False).validate()
        backend = ProcessBackend(settings, Path(tmp) / "sandbox")
        await backend.start()
        try:
            zyg = await backend._zygote(available_runtimes()["python3.11"], "bench")
            samples = []
            for _ in range(n):
                t = time.perf_counter()
                slot = await zyg.prefork()
                samples.append((time.perf_counter() - t) * 1000)
                slot.discard()
                await asyncio.sleep(0.01)
        finally:
            await backend.close()
    return pct(samples)


# --- the server, over HTTP -------------------------------------------------------------


class Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.creds = Credentials(ACCESS, SECRET)

    def signed(self, method: str, path: str, body: bytes) -> dict[str, str]:
        req = AWSRequest(
            method=method,
            url=f"http://127.0.0.1:{self.port}{path}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(self.creds, "lambda", "us-east-1").add_auth(req)
        return dict(req.headers.items())

    def send(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()


def zip_code() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", CODE)
    return buf.getvalue()


def start_server(
    data: Path, pool_size: int, sandbox: str = "process"
) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBOX_")}
    env.update(
        FIREBOX_DATA_DIR=str(data),
        FIREBOX_PORT=str(port),
        FIREBOX_SANDBOX=sandbox,
        FIREBOX_ALLOW_UNSANDBOXED="1",
        FIREBOX_ACCESS_KEY_ID=ACCESS,
        FIREBOX_SECRET_ACCESS_KEY=SECRET,
        FIREBOX_POOL_SIZE=str(pool_size),
        FIREBOX_LOG_LEVEL="warning",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "firebox", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_firebox/health", timeout=1)
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def server_figures(
    pool_size: int, cold: int, warm: int, memory: int, sandbox: str = "process"
) -> dict[str, dict[str, float]]:
    code = zip_code()
    import base64

    zipped = base64.b64encode(code).decode()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(Path(tmp) / "data", pool_size, sandbox)
        try:
            c = Client(port)
            time.sleep(0.5)  # let the zygote start and the pool fill
            colds, creates = [], []
            invoke_body = b"{}"
            for i in range(cold):
                name = f"bench-{pool_size}-{i}"
                body = json.dumps(
                    {
                        "FunctionName": name,
                        "Runtime": "python3.11",
                        "Role": ROLE,
                        "Handler": "app.handler",
                        "Code": {"ZipFile": zipped},
                        "MemorySize": memory,
                    }
                ).encode()
                path = "/2015-03-31/functions"
                h_create = c.signed("POST", path, body)
                ipath = f"/2015-03-31/functions/{name}/invocations"
                h_inv = c.signed("POST", ipath, invoke_body)
                t0 = time.perf_counter()
                status, out = c.send("POST", path, body, h_create)
                assert status == 201, out
                t1 = time.perf_counter()
                status, out = c.send("POST", ipath, invoke_body, h_inv)
                t2 = time.perf_counter()
                assert status == 200 and b'"ok"' in out, out
                colds.append((t2 - t1) * 1000)
                creates.append((t2 - t0) * 1000)
                time.sleep(0.25)  # the pool refills (fork + slirp4netns) between cold starts
            name = f"bench-{pool_size}-0"
            ipath = f"/2015-03-31/functions/{name}/invocations"
            h_inv = c.signed("POST", ipath, invoke_body)
            warms = []
            for _ in range(warm):
                t = time.perf_counter()
                status, out = c.send("POST", ipath, invoke_body, h_inv)
                warms.append((time.perf_counter() - t) * 1000)
                assert status == 200, out
        finally:
            stop_server(proc)
    return {"cold": pct(colds), "create+cold": pct(creates), "warm": pct(warms or [0.0])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cold", type=int, default=40)
    ap.add_argument("--warm", type=int, default=300)
    ap.add_argument("--baseline", type=int, default=100)
    # 1769 MB buys one full vCPU: smaller sizes measure the (Lambda-like) CPU quota, not
    # the sandbox, once a tight loop of warm invokes uses up the function's share.
    ap.add_argument("--memory", type=int, default=1769, help="MemorySize of the functions")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (namespaces and cgroups)")
    results: list[tuple[str, dict[str, float]]] = []
    results.append(("baseline fork+ns+cgroups", asyncio.run(baseline(args.baseline))))
    pooled = server_figures(2, args.cold, args.warm, args.memory)
    results.append(("cold start (pool)", pooled["cold"]))
    results.append(("create+cold (pool)", pooled["create+cold"]))
    results.append(("warm invoke", pooled["warm"]))
    unpooled = server_figures(0, args.cold, 0, args.memory)
    results.append(("cold start (no pool)", unpooled["cold"]))
    results.append(("create+cold (no pool)", unpooled["create+cold"]))
    # The same server without isolation: the floor the sandbox's share is measured against.
    floor = server_figures(0, args.cold, args.warm, args.memory, sandbox="unsandboxed")
    results.append(("cold start (unsandboxed)", floor["cold"]))
    results.append(("warm invoke (unsandboxed)", floor["warm"]))
    print(f"{'figure':<26}{'n':>5}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for label, r in results:
        print(f"{label:<26}{r['n']:>5}{r['p50']:>10}{r['p90']:>10}{r['p99']:>10}{r['mean']:>10}")
    for label, r in results:
        print(json.dumps({"bench": "sandbox", "figure": label, **r}))


if __name__ == "__main__":
    main()
