"""Metering: billed duration x memory and requests per function per day, priced, over a
signed GET /_firebox/usage, surviving restarts."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import python_function, unique

OK = "def handler(event, context):\n    return {'ok': True}\n"
PRICE_GB_S = 0.0000166667
PRICE_REQ = 0.20


def usage(server, query: str = "", signed: bool = True) -> tuple[int, dict]:
    url = server.endpoint + "/_firebox/usage" + (f"?{query}" if query else "")
    req = AWSRequest(method="GET", url=url)
    if signed:
        creds = Credentials(server.access_key, server.secret_key)
        SigV4Auth(creds, "lambda", "us-east-1").add_auth(req)
    prepared = urllib.request.Request(url, headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(prepared, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def billed_ms_of(resp) -> int:
    tail = base64.b64decode(resp["LogResult"]).decode()
    return int(re.search(r"Billed Duration: (\d+) ms", tail).group(1))


def invoke_billed(lam, name: str) -> int:
    resp = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    resp["Payload"].read()
    return billed_ms_of(resp)


def requests_on_disk(server, name: str) -> int:
    """The requests of ``name`` written to the metering database (not those in memory)."""
    db = sqlite3.connect(f"file:{server.data_dir / 'metering.db'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT SUM(requests) FROM usage WHERE function = ?", (name,)).fetchone()
    finally:
        db.close()
    return int(row[0] or 0)


def function_row(report: dict, name: str) -> dict:
    rows = [r for r in report["functions"] if r["function"] == name]
    return rows[0] if rows else {"requests": 0, "gb_seconds": 0.0}


def test_usage_matches_billed_duration_times_memory(server, lam):
    name = unique("meter")
    python_function(lam, name, OK, MemorySize=256)
    billed = [invoke_billed(lam, name) for _ in range(3)]
    status, report = usage(server, f"function={name}")
    assert status == 200
    row = function_row(report, name)
    assert row["requests"] == 3
    assert row["billed_duration_ms"] == sum(billed)
    gb_s = sum(billed) / 1000 * 256 / 1024
    assert row["gb_seconds"] == pytest.approx(gb_s, rel=1e-12)
    assert row["cost_usd"] == pytest.approx(gb_s * PRICE_GB_S + 3 * PRICE_REQ / 1e6, rel=1e-6)
    today = datetime.now(UTC).date().isoformat()
    assert [(d["date"], d["function"], d["requests"]) for d in report["days"]] == [(today, name, 3)]
    assert report["prices"] == {"per_gb_second": PRICE_GB_S, "per_million_requests": PRICE_REQ}
    assert report["total"]["requests"] == 3


def test_usage_counts_every_function_and_skips_throttles(server, lam):
    a, b = unique("ma"), unique("mb")
    python_function(lam, a, OK, MemorySize=128)
    python_function(lam, b, OK, MemorySize=1024)
    _, before = usage(server)
    billed_a = invoke_billed(lam, a)
    billed_b = invoke_billed(lam, b) + invoke_billed(lam, b)
    lam.put_function_concurrency(FunctionName=b, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError):
        lam.invoke(FunctionName=b, Payload=b"{}")
    status, report = usage(server)
    assert status == 200
    assert function_row(report, a)["requests"] == 1
    assert function_row(report, b)["requests"] == 2
    assert function_row(report, b)["gb_seconds"] == pytest.approx(billed_b / 1000)
    assert report["total"]["requests"] == before["total"]["requests"] + 3
    expected = billed_a / 1000 / 8 + billed_b / 1000
    assert report["total"]["gb_seconds"] == pytest.approx(before["total"]["gb_seconds"] + expected)


def test_usage_needs_a_signature_and_valid_dates(server):
    status, body = usage(server, signed=False)
    assert status == 403
    assert body["Type"] == "User" or "message" in body
    status, body = usage(server, "since=yesterday")
    assert status == 400
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    status, body = usage(server, f"since={tomorrow}")
    assert status == 200
    assert body["days"] == [] and body["total"]["requests"] == 0


def test_usage_survives_restart_and_kill(server_factory):
    srv = server_factory(metering_flush_s=0.1, price_per_gb_s=0.001, price_per_million_requests=1.0)
    lam = srv.client("lambda")
    name = unique("mpersist")
    python_function(lam, name, OK, MemorySize=512)
    billed = invoke_billed(lam, name) + invoke_billed(lam, name)
    srv.restart()  # a clean stop writes what is pending
    _, report = usage(srv, f"function={name}")
    row = function_row(report, name)
    assert row["requests"] == 2
    assert row["gb_seconds"] == pytest.approx(billed / 1000 / 2)
    assert row["cost_usd"] == pytest.approx(billed / 1000 / 2 * 0.001 + 2 / 1e6)
    lam = srv.client("lambda")
    billed += invoke_billed(lam, name)
    # The usage report adds what is still in memory: read the file to see the flush land.
    deadline = time.monotonic() + 10
    while requests_on_disk(srv, name) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert requests_on_disk(srv, name) == 3
    srv.kill9()
    srv.start()
    _, report = usage(srv, f"function={name}")
    assert function_row(report, name)["requests"] == 3
    assert function_row(report, name)["billed_duration_ms"] == billed
