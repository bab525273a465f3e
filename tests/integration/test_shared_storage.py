"""`firebox serve` with its state in PostgreSQL and its code in an S3-compatible store
(radosgw): everything a user made is still there after a restart, and a second server
with an empty data dir on the same database and bucket serves it all."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from test_async import send_event
from test_metering import usage

from conftest import Server, make_zip, python_function, unique

HANDLER = """
import json
from helper import greet
def handler(event, context):
    print("marker " + json.dumps(event))
    return {"greeting": greet(event.get("name", "?"))}
"""
LAYER = "def greet(name):\n    return 'hello ' + name\n"
SQLITE_FILES = ("metadata.db", "logs.db", "metering.db", "queue.db", "fleet.db")


def wait_for(condition: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = condition()
        if got:
            return got
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def markers(srv: Server, name: str) -> list[str]:
    pages = srv.client("logs").get_paginator("filter_log_events")
    group = f"/aws/lambda/{name}"
    try:
        return [
            e["message"].strip()
            for page in pages.paginate(logGroupName=group, filterPattern='"marker"')
            for e in page["events"]
        ]
    except ClientError as exc:  # the group appears with the first batch of logs written
        assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
        return []


def invoke(srv: Server, name: str, who: str) -> Any:
    resp = srv.client("lambda").invoke(FunctionName=name, Payload=json.dumps({"name": who}))
    assert "FunctionError" not in resp, resp["Payload"].read()
    return json.loads(resp["Payload"].read())


def requests_metered(srv: Server, name: str) -> int:
    status, report = usage(srv)
    assert status == 200, report
    return sum(r["requests"] for r in report["functions"] if r["function"] == name)


def test_serve_on_postgres_and_radosgw_keeps_everything_across_restarts_and_nodes(
    server_factory: Any, pg_url: str, s3_bucket: str, s3_env: Any
) -> None:
    shared = {"database_url": pg_url, "code_store_url": f"s3://{s3_bucket}/firebox"}
    a = server_factory(**shared)
    lam = a.client("lambda")
    layer = lam.publish_layer_version(
        LayerName=unique("helper"), Content={"ZipFile": make_zip({"python/helper.py": LAYER})}
    )
    name = unique("shared")
    python_function(lam, name, HANDLER, Layers=[layer["LayerVersionArn"]], MemorySize=256)
    lam.publish_version(FunctionName=name)
    assert invoke(a, name, "a1") == {"greeting": "hello a1"}
    assert invoke(a, name, "a2") == {"greeting": "hello a2"}
    wait_for(lambda: len(markers(a, name)) == 2)

    a.restart()
    lam = a.client("lambda")
    assert (
        lam.get_function(FunctionName=name)["Configuration"]["Layers"][0]["Arn"]
        == (layer["LayerVersionArn"])
    )
    assert invoke(a, name, "a3") == {"greeting": "hello a3"}
    wait_for(lambda: len(markers(a, name)) == 3)
    assert sorted(markers(a, name)) == [f'marker {{"name": "a{i}"}}' for i in (1, 2, 3)]
    wait_for(lambda: requests_metered(a, name) == 3)
    a.stop()

    # A second server with an empty data dir: the database and the bucket hold it all.
    b = server_factory(**shared)
    assert b.data_dir != a.data_dir
    lam = b.client("lambda")
    assert [f["FunctionName"] for f in lam.list_functions()["Functions"]] == [name]
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]] == [
        "$LATEST",
        "1",
    ]
    assert requests_metered(b, name) == 3
    assert len(markers(b, name)) == 3
    # Its first invoke fetches the code and the layer from the bucket into its own cache.
    assert invoke(b, name, "b1") == {"greeting": "hello b1"}
    assert list((b.data_dir / "code" / "zips").glob("*.zip"))
    # The async queue is in the database too.
    send_event(lam, name, {"name": "event"})
    wait_for(lambda: 'marker {"name": "event"}' in markers(b, name))
    wait_for(lambda: requests_metered(b, name) == 5)
    # The package downloads from the presigned Code.Location of the server that did not
    # receive it.
    got = lam.get_function(FunctionName=name)
    with urllib.request.urlopen(got["Code"]["Location"], timeout=10) as resp:
        digest = hashlib.sha256(resp.read()).digest()
    assert base64.b64encode(digest).decode() == got["Configuration"]["CodeSha256"]

    for srv in (a, b):
        assert not [f for f in SQLITE_FILES if (srv.data_dir / f).exists()], srv.data_dir


def test_serve_refuses_to_start_on_an_unreachable_database(tmp_path: Any) -> None:
    srv = Server(tmp_path / "data", database_url="postgresql://nobody@127.0.0.1:1/none")
    try:
        srv.start(timeout_s=30)
    except RuntimeError as exc:
        assert "cannot use PostgreSQL at postgresql://nobody@127.0.0.1:1/none" in str(exc)
    else:
        raise AssertionError("the server started without its database")
    finally:
        srv.stop()
