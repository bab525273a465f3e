"""Provisioned concurrency through boto3: Put/Get/Delete/List, IN_PROGRESS → READY or
FAILED, invokes served by the pre-initialised environments, aliases that move, configs
that survive a restart and go with their version, alias or function."""

from __future__ import annotations

import base64
import concurrent.futures
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import invoke_json, make_zip, python_function, unique

CODE = """
import os, time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"init": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"],
            "version": context.function_version, "stream": context.log_stream_name}
"""


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def _wait_status(lam: Any, name: str, qualifier: str, timeout_s: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        cfg = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        if cfg["Status"] != "IN_PROGRESS" or time.monotonic() > deadline:
            return cfg
        time.sleep(0.1)


def _call(lam: Any, name: str, qualifier: str, sleep: float = 0) -> tuple[Any, bool]:
    out, resp = invoke_json(lam, name, {"sleep": sleep}, Qualifier=qualifier, LogType="Tail")
    return out, "Init Duration" in base64.b64decode(resp["LogResult"]).decode()


def _function(lam: Any, versions: int = 1) -> str:
    name = unique("pc")
    python_function(lam, name, CODE)
    for i in range(versions):
        if i:
            lam.update_function_code(
                FunctionName=name, ZipFile=make_zip({"app.py": CODE + f"# v{i + 1}\n"})
            )
            lam.get_waiter("function_updated_v2").wait(FunctionName=name)
        lam.publish_version(FunctionName=name)
    return name


def test_validation_errors(lam: Any) -> None:
    name = _function(lam)
    with pytest.raises(ClientError) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
        )
    assert _error(exc) == ("InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="9", ProvisionedConcurrentExecutions=1
        )
    assert _error(exc) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=unique("nofn"), Qualifier="1", ProvisionedConcurrentExecutions=1
        )
    assert _error(exc) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert _error(exc) == ("ProvisionedConcurrencyConfigNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert _error(exc) == ("ProvisionedConcurrencyConfigNotFoundException", 404)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    with pytest.raises(ClientError) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=3
        )
    assert _error(exc) == ("InvalidParameterValueException", 400)
    lam.create_alias(FunctionName=name, Name="weighted", FunctionVersion="1")
    lam.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": CODE + "#\n"}))
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    lam.publish_version(FunctionName=name)
    lam.update_alias(
        FunctionName=name, Name="weighted", RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}}
    )
    with pytest.raises(ClientError) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="weighted", ProvisionedConcurrentExecutions=1
        )
    assert _error(exc) == ("InvalidParameterValueException", 400)


def test_ready_and_used_by_invokes(lam: Any) -> None:
    name = _function(lam)
    put = lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2
    )
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["Status"] == "IN_PROGRESS"
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    cfg = _wait_status(lam, name, "1")
    assert cfg["Status"] == "READY"
    assert cfg["AvailableProvisionedConcurrentExecutions"] == 2
    assert cfg["AllocatedProvisionedConcurrentExecutions"] == 2
    assert cfg["LastModified"]
    listed = lam.list_provisioned_concurrency_configs(FunctionName=name)
    [item] = listed["ProvisionedConcurrencyConfigs"]
    assert item["FunctionArn"].endswith(f":function:{name}:1")
    assert item["Status"] == "READY"
    # Two concurrent invokes land on the two initialised environments: no cold start.
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        two = list(pool.map(lambda _: _call(lam, name, "1", 0.5), range(2)))
        assert all(out["init"] == "provisioned-concurrency" for out, _ in two)
        assert not any(cold for _, cold in two)
        assert len({out["stream"] for out, _ in two}) == 2
        # A third at once spills over to an on-demand environment.
        three = list(pool.map(lambda _: _call(lam, name, "1", 0.5), range(3)))
    spill = [out for out, cold in three if cold]
    assert len(spill) == 1 and spill[0]["init"] == "on-demand"
    # $LATEST is not provisioned.
    out, cold = _call(lam, name, "$LATEST")
    assert cold and out["init"] == "on-demand"
    # Scale down, then delete: invokes go back to on-demand environments.
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    cfg = _wait_status(lam, name, "1")
    assert (cfg["Status"], cfg["AvailableProvisionedConcurrentExecutions"]) == ("READY", 1)
    resp = lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert (
        lam.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
        == []
    )


def test_alias_follows_its_version_and_conflicts(lam: Any) -> None:
    name = _function(lam, versions=2)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1
    )
    with pytest.raises(ClientError) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
        )
    assert _error(exc) == ("ResourceConflictException", 409)
    assert _wait_status(lam, name, "live")["Status"] == "READY"
    out, cold = _call(lam, name, "live")
    assert (out["init"], out["version"], cold) == ("provisioned-concurrency", "1", False)
    lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
    deadline = time.monotonic() + 20
    while True:
        out, cold = _call(lam, name, "live")
        if out["init"] == "provisioned-concurrency" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (out["init"], out["version"], cold) == ("provisioned-concurrency", "2", False)
    # Deleting the alias takes its config with it.
    lam.delete_alias(FunctionName=name, Name="live")
    deadline = time.monotonic() + 10
    while (
        lam.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert (
        lam.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
        == []
    )


def test_init_failure_reports_failed(lam: Any) -> None:
    name = unique("pcfail")
    python_function(lam, name, "raise RuntimeError('no init for you')\n")
    lam.publish_version(FunctionName=name)
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    cfg = _wait_status(lam, name, "1")
    assert cfg["Status"] == "FAILED"
    assert cfg["AvailableProvisionedConcurrentExecutions"] == 0
    assert "FUNCTION_ERROR_INIT_FAILURE" in cfg["StatusReason"]


def test_survives_restart_and_goes_with_the_function(server_factory: Any) -> None:
    # A short keep-alive: provisioned environments must outlive it.
    srv = server_factory(keepalive_s=0.3)
    lam = srv.client()
    name = _function(lam)
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    assert _wait_status(lam, name, "1")["Status"] == "READY"
    srv.restart()
    lam = srv.client()
    cfg = _wait_status(lam, name, "1")
    assert (cfg["Status"], cfg["AvailableProvisionedConcurrentExecutions"]) == ("READY", 1)
    out, cold = _call(lam, name, "1")
    assert out["init"] == "provisioned-concurrency" and not cold
    # An on-demand environment beside it: once that one has been reaped, the keep-alive
    # has run out for both.
    _call(lam, name, "$LATEST")
    deadline = time.monotonic() + 10
    while True:
        time.sleep(0.5)  # idle past the 0.3 s keep-alive (each call starts it again)
        if _call(lam, name, "$LATEST")[1]:
            break
        assert time.monotonic() < deadline, "the on-demand environment was never reaped"
    again, cold = _call(lam, name, "1")
    assert again["stream"] == out["stream"] and not cold
    # Deleting the function drops its configs: a new function of that name has none.
    lam.delete_function(FunctionName=name)
    python_function(lam, name, CODE)
    lam.publish_version(FunctionName=name)
    with pytest.raises(ClientError) as exc:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert _error(exc) == ("ProvisionedConcurrencyConfigNotFoundException", 404)
    out, cold = _call(lam, name, "1")
    assert out["init"] == "on-demand" and cold


def test_deleting_the_version_drops_the_config(lam: Any) -> None:
    name = _function(lam)
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    lam.delete_function(FunctionName=name, Qualifier="1")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not lam.list_provisioned_concurrency_configs(FunctionName=name)[
            "ProvisionedConcurrencyConfigs"
        ]:
            break
        time.sleep(0.1)
    assert (
        lam.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
        == []
    )


def test_metrics_show_provisioned_environments_in_use(server: Any, lam: Any) -> None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    def in_use() -> float:
        with urllib.request.urlopen(server.endpoint + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if (
                    s.name == "firebox_provisioned_concurrency_in_use"
                    and s.labels.get("function") == name
                ):
                    return s.value
        return -1.0

    name = _function(lam)
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    assert _wait_status(lam, name, "1")["Status"] == "READY"
    assert in_use() == 0
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(_call, lam, name, "1", 1.5)
        deadline = time.monotonic() + 5
        seen = 0.0
        while time.monotonic() < deadline and seen < 1:
            seen = in_use()
            time.sleep(0.1)
        out, cold = running.result()
    assert seen == 1
    assert out["init"] == "provisioned-concurrency" and not cold
    assert in_use() == 0


def test_provisioned_environments_are_replaced_at_their_lifetime(server_factory: Any) -> None:
    srv = server_factory(max_lifetime_s=2)
    lam = srv.client()
    name = _function(lam)
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    assert _wait_status(lam, name, "1")["Status"] == "READY"
    first, cold = _call(lam, name, "1")
    assert first["init"] == "provisioned-concurrency" and not cold
    deadline = time.monotonic() + 15
    second = first
    while time.monotonic() < deadline and second["stream"] == first["stream"]:
        time.sleep(0.3)
        cfg = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
        # The successor is ready before its predecessor goes: no dip, no cold start.
        assert cfg["Status"] == "READY"
        assert cfg["AvailableProvisionedConcurrentExecutions"] == 1
        second, cold = _call(lam, name, "1")
        assert second["init"] == "provisioned-concurrency" and not cold
    assert second["stream"] != first["stream"]
