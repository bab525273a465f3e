"""State lives in the data dir and survives a clean restart and a kill -9."""

from __future__ import annotations

import threading

from botocore.exceptions import ClientError

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
    lam = server.client()
    prefix = unique("crash")
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        client = server.client()
        while not stop.is_set():
            name = f"{prefix}-{i}"
            try:
                python_function(client, name, "def handler(e, c):\n    return 1\n")
                acknowledged.append(name)
            except Exception:
                return
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    while len(acknowledged) < 5:
        threading.Event().wait(0.05)
    server.kill9()
    stop.set()
    thread.join(30)
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
    try:
        lam.get_function(FunctionName=f"{prefix}-{len(acknowledged)}")
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
