"""State lives in the data dir and survives a clean restart and a kill -9."""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from conftest import invoke_json, make_zip, python_function, unique


def test_state_survives_clean_restart(server_factory):
    server = server_factory()
    lam = server.client()
    name = unique()
    python_function(lam, name, "def handler(e, c):\n    return 'v1'\n")
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    layer = lam.publish_layer_version(
        LayerName=unique("lay"), Content={"ZipFile": make_zip({"a.txt": "a"})}
    )
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
    server.restart()
    lam = server.client()
    assert lam.get_function(FunctionName=name)["Concurrency"]["ReservedConcurrentExecutions"] == 3
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"
    assert lam.get_layer_version_by_arn(Arn=layer["LayerVersionArn"])["Version"] == 1
    assert invoke_json(lam, name, Qualifier="live")[0] == "v1"


def test_kill_9_mid_writes_loses_no_acknowledged_write(server_factory):
    server = server_factory()
    prefix = unique("crash")
    acknowledged: list[str] = []
    failures: list[Exception] = []

    def writer() -> None:
        client = server.client()
        i = 0
        while True:
            name = f"{prefix}-{i}"
            try:
                python_function(client, name, "def handler(e, c):\n    return 1\n")
            except Exception as exc:  # the kill: the write in flight gets no answer
                failures.append(exc)
                return
            acknowledged.append(name)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 5 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(acknowledged) >= 5 and thread.is_alive(), failures
    server.kill9()
    thread.join(30)
    assert not thread.is_alive()
    # The writer stopped because the server went away, not on an error of its own.
    assert isinstance(failures[0], BotoCoreError), failures
    server.start()
    lam = server.client()
    names = {
        f["FunctionName"]
        for p in lam.get_paginator("list_functions").paginate()
        for f in p["Functions"]
    }
    missing = [n for n in acknowledged if n not in names]
    assert not missing, missing
    # Each acknowledged function is whole: its code runs.
    assert invoke_json(lam, acknowledged[-1])[0] == 1
    # The write in flight at the kill may have landed or not; if it did, it is whole too.
    in_flight = f"{prefix}-{len(acknowledged)}"
    if in_flight in names:
        assert invoke_json(lam, in_flight)[0] == 1
    else:
        with pytest.raises(ClientError) as exc:
            lam.get_function(FunctionName=in_flight)
        assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
