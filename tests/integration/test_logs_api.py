"""The CloudWatch Logs API through boto3 and the AWS CLI: function log groups and streams,
GetLogEvents, FilterLogEvents patterns and pagination, retention, deletes, restarts."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from conftest import invoke_json, python_function, unique
from shapes import assert_shape

PRINTING = (
    "print('cold import line')\n"
    "def handler(event, context):\n"
    "    print('hello from', event.get('who', 'nobody'))\n"
    "    return {'ok': True}\n"
)
STREAM_RE = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")


@pytest.fixture(scope="module")
def logs(server):
    return server.client("logs")


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def wait_for(fn, timeout_s: float = 3.0):
    """Poll until fn() is truthy: the log writer flushes in the background."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = fn()
        except ClientError as exc:  # the group does not exist until the first flush
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def stream_messages(logs, group: str) -> list[str]:
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    out: list[str] = []
    for s in streams:
        out += [
            e["message"]
            for e in logs.get_log_events(
                logGroupName=group, logStreamName=s["logStreamName"], startFromHead=True
            )["events"]
        ]
    return out


def test_function_log_stream_has_platform_lines_and_prints(lam, logs):
    name = unique("logs")
    python_function(lam, name, PRINTING)
    _, resp = invoke_json(lam, name, {"who": "alice"})
    rid = resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    group = f"/aws/lambda/{name}"

    def report_written():
        return any(m.startswith("REPORT") for m in stream_messages(logs, group))

    assert wait_for(report_written, 2.0), "REPORT line not in the log store within 2 s"
    groups = logs.describe_log_groups(logGroupNamePrefix=group)
    assert_shape("logs", "DescribeLogGroups", groups)
    assert [g["logGroupName"] for g in groups["logGroups"]] == [group]
    assert groups["logGroups"][0]["storedBytes"] > 0
    streams = logs.describe_log_streams(logGroupName=group)
    assert_shape("logs", "DescribeLogStreams", streams)
    assert len(streams["logStreams"]) == 1
    s = streams["logStreams"][0]
    assert STREAM_RE.match(s["logStreamName"]), s["logStreamName"]
    assert s["firstEventTimestamp"] <= s["lastEventTimestamp"]
    events = logs.get_log_events(
        logGroupName=group, logStreamName=s["logStreamName"], startFromHead=True
    )
    assert_shape("logs", "GetLogEvents", events)
    msgs = [e["message"] for e in events["events"]]
    assert f"START RequestId: {rid} Version: $LATEST" in msgs
    assert f"END RequestId: {rid}" in msgs
    report = next(m for m in msgs if m.startswith("REPORT"))
    assert f"RequestId: {rid}" in report and "Billed Duration:" in report
    assert "Init Duration:" in report  # the first invoke was a cold start
    assert any("hello from alice" in m for m in msgs)
    assert any("cold import line" in m for m in msgs)
    assert msgs.index(f"START RequestId: {rid} Version: $LATEST") < msgs.index(
        f"END RequestId: {rid}"
    )
    assert all(e["timestamp"] > 0 and e["ingestionTime"] > 0 for e in events["events"])


def _seed(logs, group: str) -> tuple[str, int]:
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="a")
    logs.create_log_stream(logGroupName=group, logStreamName="b")
    base = int(time.time() * 1000) - 60_000
    a = [
        "ERROR disk full on /var",
        "INFO all good",
        "WARN slow request",
        '{"level": "error", "ms": 250, "user": {"id": "u1"}}',
        '{"level": "info", "ms": 20, "tags": ["x", "y"]}',
    ]
    b = [
        "ERROR timeout talking to db",
        "DEBUG noisy detail",
        "INFO Exiting cleanly",
        "ERROR Exiting on signal",
    ]
    logs.put_log_events(
        logGroupName=group,
        logStreamName="a",
        logEvents=[{"timestamp": base + i * 1000, "message": m} for i, m in enumerate(a)],
    )
    logs.put_log_events(
        logGroupName=group,
        logStreamName="b",
        logEvents=[{"timestamp": base + 500 + i * 1000, "message": m} for i, m in enumerate(b)],
    )
    return group, base


def _filter(logs, group: str, **kw) -> list[str]:
    pages = logs.get_paginator("filter_log_events").paginate(logGroupName=group, **kw)
    return [e["message"] for page in pages for e in page["events"]]


def test_filter_log_events_patterns(logs):
    group, base = _seed(logs, f"/test/{unique('filter')}")
    assert _filter(logs, group, filterPattern="ERROR") == [
        "ERROR disk full on /var",
        "ERROR timeout talking to db",
        "ERROR Exiting on signal",
    ]
    assert _filter(logs, group, filterPattern="ERROR Exiting") == ["ERROR Exiting on signal"]
    assert _filter(logs, group, filterPattern='"disk full"') == ["ERROR disk full on /var"]
    assert _filter(logs, group, filterPattern="?WARN ?DEBUG") == [
        "DEBUG noisy detail",
        "WARN slow request",
    ]
    assert _filter(logs, group, filterPattern="ERROR -Exiting") == [
        "ERROR disk full on /var",
        "ERROR timeout talking to db",
    ]
    assert _filter(logs, group, filterPattern='{ $.level = "error" }') == [
        '{"level": "error", "ms": 250, "user": {"id": "u1"}}'
    ]
    assert len(_filter(logs, group, filterPattern="{ $.ms > 100 || $.level = inf* }")) == 2
    assert len(_filter(logs, group, filterPattern='{ $.user.id = "u1" && $.ms >= 250 }')) == 1
    assert len(_filter(logs, group, filterPattern="{ $.user NOT EXISTS }")) == 1
    assert _filter(logs, group, filterPattern="%time[a-z]+t%") == ["ERROR timeout talking to db"]
    # Streams and time range: [start, end] in milliseconds.
    assert _filter(logs, group, logStreamNames=["b"], filterPattern="INFO") == [
        "INFO Exiting cleanly"
    ]
    assert _filter(logs, group, startTime=base + 1000, endTime=base + 2000) == [
        "INFO all good",
        "DEBUG noisy detail",
        "WARN slow request",
    ]
    assert _filter(logs, group, logStreamNamePrefix="a", startTime=base + 3000) == [
        '{"level": "error", "ms": 250, "user": {"id": "u1"}}',
        '{"level": "info", "ms": 20, "tags": ["x", "y"]}',
    ]
    with pytest.raises(ClientError) as exc:
        logs.filter_log_events(logGroupName=group, filterPattern="{ $.ms > }")
    assert error_code(exc) == "InvalidParameterException"


def test_filter_log_events_paginates_with_next_token(logs):
    group, _ = _seed(logs, f"/test/{unique('page')}")
    first = logs.filter_log_events(logGroupName=group, limit=3)
    assert_shape("logs", "FilterLogEvents", first)
    assert len(first["events"]) == 3 and "nextToken" in first
    assert [e["logStreamName"] for e in first["events"]] == ["a", "b", "a"]
    assert len({e["eventId"] for e in first["events"]}) == 3
    rest = logs.filter_log_events(logGroupName=group, limit=100, nextToken=first["nextToken"])
    assert len(rest["events"]) == 6 and "nextToken" not in rest
    times = [e["timestamp"] for e in first["events"] + rest["events"]]
    assert times == sorted(times)
    everything = _filter(logs, group, PaginationConfig={"PageSize": 2})
    assert len(everything) == 9


def test_get_log_events_pages_forward_and_backward(logs):
    group = f"/test/{unique('get')}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    base = int(time.time() * 1000) - 10_000
    logs.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[{"timestamp": base + i, "message": f"line {i}"} for i in range(7)],
    )
    # Without a token, the newest events (in time order).
    tail = logs.get_log_events(logGroupName=group, logStreamName="s", limit=3)
    assert [e["message"] for e in tail["events"]] == ["line 4", "line 5", "line 6"]
    back = logs.get_log_events(
        logGroupName=group, logStreamName="s", limit=3, nextToken=tail["nextBackwardToken"]
    )
    assert [e["message"] for e in back["events"]] == ["line 1", "line 2", "line 3"]
    seen, token = [], None
    for _ in range(10):
        kw = {"nextToken": token} if token else {"startFromHead": True}
        page = logs.get_log_events(logGroupName=group, logStreamName="s", limit=3, **kw)
        seen += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:  # the end, as CloudWatch signals it
            break
        token = page["nextForwardToken"]
    assert seen == [f"line {i}" for i in range(7)]
    window = logs.get_log_events(
        logGroupName=group,
        logStreamName="s",
        startFromHead=True,
        startTime=base + 2,
        endTime=base + 4,
    )
    assert [e["message"] for e in window["events"]] == ["line 2", "line 3"]


def test_logs_errors_have_cloudwatch_codes(logs):
    group = f"/test/{unique('err')}"
    with pytest.raises(ClientError) as exc:
        logs.describe_log_streams(logGroupName=group)
    assert error_code(exc) == "ResourceNotFoundException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    logs.create_log_group(logGroupName=group)
    with pytest.raises(ClientError) as exc:
        logs.create_log_group(logGroupName=group)
    assert error_code(exc) == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as exc:
        logs.get_log_events(logGroupName=group, logStreamName="missing")
    assert error_code(exc) == "ResourceNotFoundException"
    assert "log stream" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        logs.put_retention_policy(logGroupName=group, retentionInDays=2)
    assert error_code(exc) == "InvalidParameterException"
    with pytest.raises(ClientError) as exc:
        logs.create_log_group(logGroupName="bad name!")
    assert error_code(exc) == "InvalidParameterException"
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = int(time.time() * 1000)
    with pytest.raises(ClientError) as exc:
        logs.put_log_events(
            logGroupName=group,
            logStreamName="s",
            logEvents=[{"timestamp": now, "message": "b"}, {"timestamp": now - 5, "message": "a"}],
        )
    assert error_code(exc) == "InvalidParameterException"
    resp = logs.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[
            {"timestamp": now - 20 * 86_400_000, "message": "too old"},
            {"timestamp": now - 20 * 86_400_000 + 1, "message": "old too"},
        ],
    )
    assert resp["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 2}
    resp = logs.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[
            {"timestamp": now, "message": "fine"},
            {"timestamp": now + 3 * 3600_000, "message": "from the future"},
        ],
    )
    assert resp["rejectedLogEventsInfo"] == {"tooNewLogEventStartIndex": 1}
    got = logs.get_log_events(logGroupName=group, logStreamName="s")
    assert [e["message"] for e in got["events"]] == ["fine"]
    logs.delete_log_stream(logGroupName=group, logStreamName="s")
    with pytest.raises(ClientError) as exc:
        logs.delete_log_stream(logGroupName=group, logStreamName="s")
    assert error_code(exc) == "ResourceNotFoundException"
    logs.delete_log_group(logGroupName=group)
    with pytest.raises(ClientError) as exc:
        logs.delete_log_group(logGroupName=group)
    assert error_code(exc) == "ResourceNotFoundException"


def test_retention_hides_old_events_and_the_sweep_deletes_them(server_factory):
    srv = server_factory(log_retention_sweep_s=0.2)
    logs = srv.client("logs")
    group = "/test/retention"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[
            {"timestamp": now - 3 * 86_400_000, "message": "three days old"},
            {"timestamp": now - 3 * 86_400_000 + 1, "message": "also old"},
        ],
    )
    logs.put_log_events(
        logGroupName=group, logStreamName="s", logEvents=[{"timestamp": now, "message": "fresh"}]
    )
    assert len(_filter(logs, group)) == 3
    logs.put_retention_policy(logGroupName=group, retentionInDays=1)
    assert (
        logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["retentionInDays"] == 1
    )
    assert _filter(logs, group) == ["fresh"]
    got = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)
    assert [e["message"] for e in got["events"]] == ["fresh"]

    def swept():
        s = logs.describe_log_streams(logGroupName=group)["logStreams"][0]
        return s["firstEventTimestamp"] == now

    assert wait_for(swept, 3.0), "the retention sweep did not delete the old events"
    # Removing the policy does not bring deleted events back.
    logs.delete_retention_policy(logGroupName=group)
    assert (
        "retentionInDays" not in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]
    )
    assert _filter(logs, group) == ["fresh"]


def test_function_logs_survive_restart_and_group_delete_removes_them(server_factory):
    srv = server_factory()
    lam, logs = srv.client("lambda"), srv.client("logs")
    name = unique("persist")
    python_function(lam, name, PRINTING)
    invoke_json(lam, name, {"who": "bob"})
    group = f"/aws/lambda/{name}"
    assert wait_for(
        lambda: any("hello from bob" in m for m in _filter(logs, group, filterPattern="hello")), 2.0
    )
    srv.restart()
    logs = srv.client("logs")
    msgs = stream_messages(logs, group)
    assert any("hello from bob" in m for m in msgs)
    assert sum(m.startswith("REPORT") for m in msgs) == 1
    logs.delete_log_group(logGroupName=group)
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []
    with pytest.raises(ClientError) as exc:
        logs.filter_log_events(logGroupName=group)
    assert error_code(exc) == "ResourceNotFoundException"


def test_aws_cli_reads_function_logs(server, lam, logs):
    name = unique("cli")
    python_function(lam, name, PRINTING)
    invoke_json(lam, name, {"who": "carol"})
    group = f"/aws/lambda/{name}"
    assert wait_for(lambda: _filter(logs, group, filterPattern="REPORT"), 2.0)
    env = {
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": "/usr/bin:/bin:" + _path(),
    }
    out = subprocess.run(
        [
            "aws",
            "logs",
            "filter-log-events",
            "--endpoint-url",
            server.endpoint,
            "--log-group-name",
            group,
            "--filter-pattern",
            "hello",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    events = json.loads(out.stdout)["events"]
    assert [e["message"].strip() for e in events] == ["hello from carol"]
    out = subprocess.run(
        [
            "aws",
            "logs",
            "describe-log-groups",
            "--endpoint-url",
            server.endpoint,
            "--log-group-name-prefix",
            "/nope/",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["logGroups"] == []


def _path() -> str:
    import os

    return os.environ.get("PATH", "")


def test_log_group_tags(logs):
    group = f"/test/{unique('tags')}"
    logs.create_log_group(logGroupName=group, tags={"team": "a"})
    arn = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["logGroupArn"]
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "a"}
    logs.tag_resource(resourceArn=arn, tags={"env": "dev"})
    logs.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"env": "dev"}
    assert logs.list_tags_log_group(logGroupName=group)["tags"] == {"env": "dev"}
    with pytest.raises(ClientError) as exc:
        logs.tag_resource(resourceArn=arn, tags={f"k{i}": "v" for i in range(50)})
    assert error_code(exc) == "TooManyTagsException"
    with pytest.raises(ClientError) as exc:
        logs.list_tags_for_resource(resourceArn=arn.replace(group, group + "-gone"))
    assert error_code(exc) == "ResourceNotFoundException"
