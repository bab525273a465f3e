"""Every lifecycle transition of an execution environment, seen through boto3: cold start,
warm reuse, scale-out, keep-alive expiry (fixed and adaptive), maximum lifetime, retirement
on update, and the end of an environment on crash, timeout or out-of-memory.

An environment's identity is its log stream name (one stream per environment, as on
Lambda); a module-level counter shows whether Init ran again.
"""

from __future__ import annotations

import base64
import concurrent.futures
import time
from typing import Any

import pytest

from conftest import default_sandbox, invoke_json, python_function, unique, wait_for_log

STATE = """
import os, time
COUNT = 0
def handler(event, context):
    global COUNT
    COUNT += 1
    if event.get("mark"):
        print(event["mark"], flush=True)
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("crash"):
        os._exit(7)
    if event.get("hang"):
        time.sleep(100)
    if event.get("alloc_mb"):
        blocks = [bytearray(1024 * 1024) for _ in range(event["alloc_mb"])]
        for b in blocks:
            b[::4096] = b"x" * len(b[::4096])
    if event.get("procs"):
        import subprocess
        started = []
        try:
            for _ in range(event["procs"]):
                started.append(subprocess.Popen(["sleep", "5"]))
        except OSError as exc:
            pass
        n = len(started)
        for p in started:
            p.kill()
            p.wait()
        return {"procs": n}
    return {"stream": context.log_stream_name, "count": COUNT, "pid": os.getpid(),
            "var": os.environ.get("VV"), "init": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]}
"""

process_only = pytest.mark.skipif(
    default_sandbox() != "process",
    reason="memory and process limits need the process backend's cgroups",
)


def _tail(resp: dict[str, Any]) -> str:
    return base64.b64decode(resp["LogResult"]).decode()


def _call(lam: Any, name: str, event: dict[str, Any] | None = None) -> tuple[Any, bool]:
    """(result, cold): cold when the REPORT line carries an Init Duration."""
    out, resp = invoke_json(lam, name, event or {}, LogType="Tail")
    return out, "Init Duration" in _tail(resp)


def test_cold_then_warm(lam: Any) -> None:
    name = unique("warm")
    python_function(lam, name, STATE)
    first, cold1 = _call(lam, name)
    second, cold2 = _call(lam, name)
    assert cold1 and not cold2
    assert first["init"] == "on-demand"
    assert (first["count"], second["count"]) == (1, 2)
    assert first["stream"] == second["stream"]
    assert first["pid"] == second["pid"]


def test_concurrent_invokes_scale_out_then_reuse(lam: Any) -> None:
    name = unique("scale")
    python_function(lam, name, STATE)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        first = list(pool.map(lambda _: _call(lam, name, {"sleep": 0.6}), range(3)))
        streams = {out["stream"] for out, _ in first}
        assert len(streams) == 3  # one invoke at a time per environment
        assert all(cold for _, cold in first)
        second = list(pool.map(lambda _: _call(lam, name, {"sleep": 0.6}), range(3)))
    assert {out["stream"] for out, _ in second} == streams
    assert not any(cold for _, cold in second)
    assert sorted(out["count"] for out, _ in second) == [2, 2, 2]


def test_keepalive_expiry(server_factory: Any) -> None:
    srv = server_factory(keepalive_s=0.5, keepalive_adaptive=False)
    lam = srv.client()
    name = unique("ka")
    python_function(lam, name, STATE)
    a, _ = _call(lam, name)
    b, cold_b = _call(lam, name)  # within the keep-alive: warm
    assert not cold_b and b["stream"] == a["stream"]
    time.sleep(1.0)
    c, cold_c = _call(lam, name)
    assert cold_c and c["stream"] != a["stream"] and c["count"] == 1


def test_adaptive_keepalive_keeps_regular_functions_longer(server_factory: Any) -> None:
    # Invoked every 0.55 s with a 0.3 s base: a fixed keep-alive loses the environment
    # between calls; the adaptive one learns the rhythm after three calls.
    srv = server_factory(keepalive_s=0.3)
    lam = srv.client()
    name = unique("rhythm")
    python_function(lam, name, STATE)
    colds = []
    for _ in range(5):
        _, cold = _call(lam, name)
        colds.append(cold)
        time.sleep(0.55)
    assert colds[:3] == [True, True, True]
    assert colds[3:] == [False, False]


def test_max_lifetime(server_factory: Any) -> None:
    srv = server_factory(max_lifetime_s=0.6, keepalive_s=60)
    lam = srv.client()
    name = unique("life")
    python_function(lam, name, STATE)
    streams = []
    deadline = time.monotonic() + 1.6
    while time.monotonic() < deadline:
        out, _ = _call(lam, name)
        streams.append(out["stream"])
        time.sleep(0.15)
    assert len(set(streams)) >= 2
    # Each environment served a run of consecutive invokes, then was replaced for good.
    changes = sum(1 for x, y in zip(streams, streams[1:], strict=False) if x != y)
    assert changes == len(set(streams)) - 1


def test_update_retires_environments(server: Any, lam: Any) -> None:
    name = unique("retire")
    python_function(lam, name, STATE, Environment={"Variables": {"VV": "1"}})
    before, _ = _call(lam, name)
    assert before["var"] == "1"
    # An update while an invoke runs: that invoke finishes on the old environment.
    mark = unique("running")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(_call, lam, name, {"sleep": 1.0, "mark": mark})
        wait_for_log(server, name, mark)
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"VV": "2"}})
        lam.get_waiter("function_updated_v2").wait(FunctionName=name)
        during, _ = running.result()
    assert during["var"] == "1" and during["stream"] == before["stream"]
    after, cold = _call(lam, name)
    assert cold and after["var"] == "2" and after["stream"] != before["stream"]
    again, cold = _call(lam, name)
    assert not cold and again["stream"] == after["stream"]
    # New code retires it too.
    from conftest import make_zip

    lam.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": STATE + "\nX = 1\n"}))
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    last, cold = _call(lam, name)
    assert cold and last["stream"] != after["stream"]


def test_crash_ends_only_that_environment(lam: Any) -> None:
    name = unique("crash")
    python_function(lam, name, STATE)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: _call(lam, name, {"sleep": 0.5}), range(2)))
    streams = {out["stream"] for out, _ in both}
    out, resp = invoke_json(lam, name, {"crash": True})
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Runtime.ExitError"
    assert "exit status 7" in out["errorMessage"]
    # One environment is left warm; the next concurrent pair needs one fresh one.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        pair = list(pool.map(lambda _: _call(lam, name, {"sleep": 0.5}), range(2)))
    colds = sorted(cold for _, cold in pair)
    assert colds == [False, True]
    survivors = {out["stream"] for out, cold in pair if not cold}
    assert survivors <= streams


def test_timeout_ends_the_environment(lam: Any) -> None:
    name = unique("timeout")
    python_function(lam, name, STATE, Timeout=1)
    first, _ = _call(lam, name)
    t0 = time.monotonic()
    out, resp = invoke_json(lam, name, {"hang": True}, LogType="Tail")
    assert 1.0 <= time.monotonic() - t0 < 3.0
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Sandbox.Timedout"
    assert out["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert "Task timed out after 1.00 seconds" in _tail(resp)
    after, cold = _call(lam, name)
    assert cold and after["stream"] != first["stream"] and after["count"] == 1


@process_only
def test_memory_size_enforced(lam: Any) -> None:
    name = unique("oom")
    python_function(lam, name, STATE, MemorySize=128)
    out, resp = invoke_json(lam, name, {"alloc_mb": 400})
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Runtime.OutOfMemory"
    ok, _ = _call(lam, name, {"alloc_mb": 20})
    assert ok["count"] == 1  # a fresh environment


@process_only
def test_process_count_bounded(lam: Any) -> None:
    name = unique("pids")
    python_function(lam, name, STATE, MemorySize=1024, Timeout=30)
    out, _ = invoke_json(lam, name, {"procs": 3000})
    assert 10 < out["procs"] < 3000
