"""Asynchronous invocation throughput: events/s accepted (202) and drained, next to the raw
rate of the same queue backend with no function and no HTTP in front of it.

    python bench/bench_async.py [--events 4000] [--concurrency 64] [--pollers 8]

Prints a table, then one JSON line per figure. Server figures run a real `firebox serve`
subprocess on a fresh data dir; the client is an asyncio aiohttp loop in this process. The
client signs one request with SigV4 and replays its headers (the server still verifies
every signature; it does not refuse replays within the clock-skew window), so the
client's own cost stays small on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from firebox.invoke.enqueue import GroupCommitter
from firebox.store.queue.base import Completion, EventQueue, QueuedEvent
from firebox.store.queue.sqlite import SqliteEventQueue

ACCESS, SECRET = "AKIDFIREBOXBENCH0001", "firebox-bench-secret-key-000000000000000"
ROLE = "arn:aws:iam::000000000000:role/bench"
PAYLOAD = json.dumps({"bench": True, "pad": "x" * 200}).encode()


def event(i: int) -> QueuedEvent:
    return QueuedEvent(f"req-{i}", "bench", None, PAYLOAD, time.time())


# --- the queue backend alone ------------------------------------------------------------


def raw_put_single(make: Callable[[], EventQueue], n: int) -> float:
    q = make()
    start = time.perf_counter()
    for i in range(n):
        q.put([event(i)])
    rate = n / (time.perf_counter() - start)
    q.close()
    return rate


async def raw_put_group(make: Callable[[], EventQueue], n: int, concurrency: int) -> float:
    q = make()
    committer = GroupCommitter(q)
    counter = iter(range(n))

    async def submitter() -> None:
        for i in counter:
            await committer.put(event(i))

    start = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    rate = n / (time.perf_counter() - start)
    q.close()
    return rate


async def raw_drain(make: Callable[[], EventQueue], n: int, workers: int) -> float:
    """Claim and complete every event the way the pollers do, with no function behind."""
    q = make()
    q.put([event(i) for i in range(n)])
    done = 0
    start = time.perf_counter()
    while done < n:
        batch = await asyncio.to_thread(q.claim, workers, 960.0, time.time())
        await asyncio.gather(*(asyncio.to_thread(q.complete, e, Completion()) for e in batch))
        done += len(batch)
    rate = n / (time.perf_counter() - start)
    q.close()
    return rate


# --- through the server ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    data_dir: Path, sandbox: str, pollers: int, queue_url: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBOX_")}
    env.update(
        FIREBOX_DATA_DIR=str(data_dir),
        FIREBOX_PORT=str(port),
        FIREBOX_URL_PORT=str(free_port()),
        FIREBOX_ACCESS_KEY_ID=ACCESS,
        FIREBOX_SECRET_ACCESS_KEY=SECRET,
        FIREBOX_LOG_LEVEL="warning",
        FIREBOX_SANDBOX=sandbox,
        FIREBOX_ALLOW_UNSANDBOXED="1",
        FIREBOX_ASYNC_POLLERS=str(pollers),
        FIREBOX_QUEUE_URL=queue_url,
    )
    log = open(data_dir.parent / "server.log", "ab")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "firebox", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited; see " + str(data_dir.parent / "server.log"))
        try:
            with urllib.request.urlopen(endpoint + "/_firebox/health", timeout=1):
                return proc, endpoint
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def signed_headers(method: str, url: str, body: bytes, extra: dict[str, str]) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body, headers=extra)
    SigV4Auth(Credentials(ACCESS, SECRET), "lambda", "us-east-1").add_auth(request)
    return dict(request.headers)


async def queue_stats(session: aiohttp.ClientSession, endpoint: str, name: str) -> dict[str, Any]:
    url = endpoint + "/_firebox/queues"
    async with session.get(url, headers=signed_headers("GET", url, b"", {})) as resp:
        stats = await resp.json()
    return dict(stats.get(name) or {"depth": 0, "dead_lettered": 0})


async def _raw_sender(host: str, port: int, request: bytes, counter: Any) -> None:
    """One keep-alive connection sending pre-built requests: a client that costs little."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in counter:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            if status != 202:
                raise RuntimeError(f"{status}: {body[:300]!r}")
    finally:
        writer.close()


async def server_run(
    endpoint: str, name: str, n: int, concurrency: int
) -> tuple[float, float, int]:
    """(events/s accepted, events/s drained — from the first send until the queue is empty,
    events that failed). Failures are not retried (MaximumRetryAttempts=0), so that a
    retry's minute-long wait does not pass for queue throughput; they are counted."""
    url = f"{endpoint}/2015-03-31/functions/{name}/invocations"
    headers = signed_headers("POST", url, PAYLOAD, {"X-Amz-Invocation-Type": "Event"})
    host, port = endpoint.removeprefix("http://").split(":")
    lines = [
        f"POST /2015-03-31/functions/{name}/invocations HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Length: {len(PAYLOAD)}",
    ]
    lines += [
        f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length")
    ]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + PAYLOAD
    counter = iter(range(n))
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        await asyncio.gather(
            *(_raw_sender(host, int(port), request, counter) for _ in range(concurrency))
        )
        accepted = n / (time.perf_counter() - start)
        while True:  # the queue's own figure says when it is empty
            stats = await queue_stats(session, endpoint, name)
            if stats["depth"] == 0:
                break
            await asyncio.sleep(0.05)
        drained = n / (time.perf_counter() - start)
    return accepted, drained, int(stats["dead_lettered"])


def make_function(endpoint: str, name: str) -> None:
    lam = boto3.client(
        "lambda",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 0}),
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return {}\n")
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": buf.getvalue()},
    )
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    # Warm it once so the figure is about the queue, not the first cold start.
    lam.invoke(FunctionName=name, Payload=b"{}")


# --- main ------------------------------------------------------------------------------


@contextmanager
def pg_schema(url: str) -> Iterator[str]:
    """A fresh schema for one run (search_path in the URL), dropped afterwards."""
    import psycopg

    schema = f"fbbench_{os.getpid()}_{time.monotonic_ns() % 10**9}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        sep = "&" if "?" in url else "?"
        yield url + sep + "options=" + urllib.parse.quote(f"-csearch_path={schema}")
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def run_backend(
    label: str, make: Callable[[], EventQueue], n: int, c: int, pollers: int
) -> list[tuple[str, float, str]]:
    return [
        (
            "queue_put_one_per_commit",
            raw_put_single(make, min(n, 1000)),
            f"{label}, 1 event per durable transaction",
        ),
        (
            "queue_put_group_commit",
            asyncio.run(raw_put_group(make, n, c)),
            f"{label}, {c} concurrent submitters",
        ),
        (
            "queue_claim_complete",
            asyncio.run(raw_drain(make, n, pollers)),
            f"{label}, batches of {pollers}, no function",
        ),
    ]


def run_server(
    label: str, data: Path, queue_url: str, args: argparse.Namespace
) -> list[tuple[str, float, str]]:
    proc, endpoint = start_server(data, args.sandbox, args.pollers, queue_url)
    try:
        make_function(endpoint, "bench")
        accepted, drained, failed = asyncio.run(
            server_run(endpoint, "bench", args.events, args.concurrency)
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    return [
        ("server_accepted", accepted, f"{label}, HTTP 202s, {args.concurrency} connections"),
        (
            "server_drained",
            drained,
            f"{label}, no-op python function, {args.pollers} pollers, {args.sandbox},"
            f" {failed} failed",
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=4000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--pollers", type=int, default=8)
    ap.add_argument("--sandbox", default="process", help="process or unsandboxed")
    ap.add_argument(
        "--postgres",
        default="",
        metavar="URL",
        help="also measure the PostgreSQL queue at this URL "
        "(e.g. postgresql://postgres@127.0.0.1:5432/test)",
    )
    args = ap.parse_args()
    n, c = args.events, args.concurrency
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="firebox-bench-") as tmp:
        base = Path(tmp)
        files = iter(range(1000))
        rows += run_backend(
            "sqlite", lambda: SqliteEventQueue(base / f"q{next(files)}.db"), n, c, args.pollers
        )
        rows += run_server("sqlite", base / "data", "", args)
        if args.postgres:
            from firebox.store.postgres import PostgresDatabase
            from firebox.store.queue.postgres import PostgresEventQueue

            for kind in ("raw", "server"):
                with pg_schema(args.postgres) as url:
                    if kind == "raw":
                        db = PostgresDatabase(url)
                        try:
                            rows += run_backend(
                                "postgres",
                                lambda d=db: PostgresEventQueue(d, "bench"),
                                n,
                                c,
                                args.pollers,
                            )
                        finally:
                            db.close()
                    else:
                        rows += run_server("postgres", base / "data-pg", url, args)

    print(f"{'figure':<26} {'events/s':>10}  notes")
    for figure, rate, note in rows:
        print(f"{figure:<26} {rate:>10.0f}  {note}")
    for figure, rate, note in rows:
        print(
            json.dumps(
                {
                    "bench": "async",
                    "figure": figure,
                    "events_per_s": round(rate, 1),
                    "backend": note.split(",")[0],
                    "events": n,
                    "notes": note,
                }
            )
        )


if __name__ == "__main__":
    main()
