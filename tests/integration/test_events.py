"""The EventBridge API on the Lambda endpoint: rules, targets and PutEvents routing."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import Server, python_function, unique, wait_queue_drained

# Keeps what it received in memory; {"read": true} returns it. With a reserved concurrency
# of 1 there is a single environment, so the reader sees what the async invokes stored.
RECORDER = """
seen = []

def handler(event, context):
    if isinstance(event, dict) and event.get("read"):
        return seen
    seen.append(event)
    return "ok"
"""


def recorder(lam: Any, name: str | None = None) -> str:
    name = name or unique("rec")
    python_function(lam, name, RECORDER)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    return name


def seen(lam: Any, name: str, want: int, timeout_s: float = 20.0) -> list[Any]:
    """What the recorder got, once it has at least ``want`` events (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    got: list[Any] = []
    while time.monotonic() < deadline:
        try:
            resp = lam.invoke(FunctionName=name, Payload=json.dumps({"read": True}))
            got = json.loads(resp["Payload"].read())
            if len(got) >= want:
                return got
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TooManyRequestsException":
                raise
        time.sleep(0.2)
    return got


@pytest.fixture(scope="module")
def events(server: Server) -> Any:
    return server.client("events")


def _allow(lam: Any, fn: str, rule_arn: str) -> None:
    lam.add_permission(
        FunctionName=fn,
        StatementId=unique("ev"),
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=rule_arn,
    )


def test_rule_api(events: Any, lam: Any) -> None:
    name = unique("rule")
    arn = events.put_rule(
        Name=name, EventPattern=json.dumps({"source": ["my.app"]}), Description="d"
    )["RuleArn"]
    assert arn == f"arn:aws:events:us-east-1:000000000000:rule/{name}"
    rule = events.describe_rule(Name=name)
    assert rule["State"] == "ENABLED" and rule["Description"] == "d"
    assert json.loads(rule["EventPattern"]) == {"source": ["my.app"]}
    assert rule["EventBusName"] == "default"
    events.disable_rule(Name=name)
    assert events.describe_rule(Name=name)["State"] == "DISABLED"
    events.enable_rule(Name=name)
    assert name in [r["Name"] for r in events.list_rules(NamePrefix=name)["Rules"]]

    fn_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{unique('t')}"
    out = events.put_targets(
        Rule=name,
        Targets=[
            {"Id": "one", "Arn": fn_arn, "Input": '{"fixed": 1}'},
            {"Id": "two", "Arn": fn_arn, "InputPath": "$.detail"},
            {"Id": "bad", "Arn": "arn:aws:sqs:us-east-1:000000000000:q"},
        ],
    )
    assert out["FailedEntryCount"] == 1 and out["FailedEntries"][0]["TargetId"] == "bad"
    targets = events.list_targets_by_rule(Rule=name)["Targets"]
    assert sorted(t["Id"] for t in targets) == ["one", "two"]
    assert events.list_rule_names_by_target(TargetArn=fn_arn)["RuleNames"] == [name]
    with pytest.raises(ClientError) as exc:
        events.delete_rule(Name=name)
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    out = events.remove_targets(Rule=name, Ids=["one", "two", "nope"])
    assert out["FailedEntryCount"] == 1
    events.delete_rule(Name=name)
    with pytest.raises(ClientError) as exc:
        events.describe_rule(Name=name)
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        events.put_targets(Rule=name, Targets=[{"Id": "x", "Arn": fn_arn}])
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_invalid_rules(events: Any) -> None:
    with pytest.raises(ClientError) as exc:
        events.put_rule(Name=unique("r"), EventPattern='{"source": "not-a-list"}')
    assert exc.value.response["Error"]["Code"] == "InvalidEventPatternException"
    with pytest.raises(ClientError) as exc:
        events.put_rule(Name=unique("r"), ScheduleExpression="rate(1 minutes)")
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        events.put_rule(Name=unique("r"), ScheduleExpression="cron(0 10 * * * *)")
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        events.put_rule(Name=unique("r"))
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert (
        events.test_event_pattern(
            EventPattern=json.dumps({"detail": {"n": [{"numeric": [">", 5]}]}}),
            Event=json.dumps({"id": "1", "source": "s", "detail": {"n": 7}}),
        )["Result"]
        is True
    )


def test_put_events_routing(server: Server, events: Any, lam: Any) -> None:
    fn = recorder(lam)
    fn_arn = lam.get_function(FunctionName=fn)["Configuration"]["FunctionArn"]
    src = unique("src")
    whole = events.put_rule(
        Name=unique("whole"),
        EventPattern=json.dumps(
            {
                "source": [src],
                "detail": {
                    "amount": [{"numeric": [">=", 100]}],
                    "kind": [{"anything-but": "test"}],
                },
            }
        ),
    )["RuleArn"]
    path = events.put_rule(
        Name=unique("path"),
        EventPattern=json.dumps(
            {
                "source": [{"prefix": src}],
                "detail-type": ["order"],
                "detail": {"customer": [{"exists": True}]},
            }
        ),
    )["RuleArn"]
    events.put_targets(Rule=whole.split("/")[-1], Targets=[{"Id": "w", "Arn": fn_arn}])
    events.put_targets(
        Rule=path.split("/")[-1],
        Targets=[{"Id": "p", "Arn": fn_arn, "InputPath": "$.detail.customer"}],
    )
    _allow(lam, fn, whole)
    _allow(lam, fn, path)

    out = events.put_events(
        Entries=[
            {
                "Source": src,
                "DetailType": "order",
                "Detail": json.dumps({"amount": 150, "kind": "real", "customer": "ann"}),
            },
            {"Source": src, "DetailType": "order", "Detail": json.dumps({"amount": 50})},
            {
                "Source": src,
                "DetailType": "other",
                "Detail": json.dumps({"amount": 500, "kind": "test"}),
            },
            {
                "Source": "someone.else",
                "DetailType": "order",
                "Detail": json.dumps({"amount": 500, "customer": "bob"}),
            },
            {"Source": src, "DetailType": "order", "Detail": "not json"},
        ]
    )
    assert out["FailedEntryCount"] == 1
    assert [("EventId" in e) for e in out["Entries"]] == [True, True, True, True, False]
    # PutEvents queued every delivery before it answered: once the queue is empty, all
    # that will ever arrive has.
    wait_queue_drained(server, fn)
    got = seen(lam, fn, 2)
    full = [g for g in got if isinstance(g, dict)]
    assert "ann" in got
    assert len(full) == 1 and len(got) == 2, got
    event = full[0]
    assert event["source"] == src and event["detail-type"] == "order"
    assert event["detail"] == {"amount": 150, "kind": "real", "customer": "ann"}
    assert event["version"] == "0" and event["account"] == "000000000000"
    assert event["id"] == out["Entries"][0]["EventId"]


def test_input_transformer(events: Any, lam: Any) -> None:
    fn = recorder(lam)
    fn_arn = lam.get_function(FunctionName=fn)["Configuration"]["FunctionArn"]
    src = unique("src")
    rule = unique("tx")
    arn = events.put_rule(Name=rule, EventPattern=json.dumps({"source": [src]}))["RuleArn"]
    events.put_targets(
        Rule=rule,
        Targets=[
            {
                "Id": "t",
                "Arn": fn_arn,
                "InputTransformer": {
                    "InputPathsMap": {"who": "$.detail.who", "n": "$.detail.n"},
                    "InputTemplate": '{"greeting": "hello <who>", "count": <n>, '
                    '"rule": "<aws.events.rule-arn>"}',
                },
            }
        ],
    )
    _allow(lam, fn, arn)
    events.put_events(
        Entries=[{"Source": src, "DetailType": "x", "Detail": json.dumps({"who": "ann", "n": 3})}]
    )
    assert seen(lam, fn, 1) == [{"greeting": "hello ann", "count": 3, "rule": arn}]


def test_put_events_needs_permission(server: Server, events: Any, lam: Any) -> None:
    fn = recorder(lam)
    fn_arn = lam.get_function(FunctionName=fn)["Configuration"]["FunctionArn"]
    src = unique("src")
    rule = unique("noperm")
    arn = events.put_rule(Name=rule, EventPattern=json.dumps({"source": [src]}))["RuleArn"]
    events.put_targets(Rule=rule, Targets=[{"Id": "t", "Arn": fn_arn, "Input": '"first"'}])
    # A permission for another rule does not count.
    _allow(lam, fn, arn + "-other")
    events.put_events(Entries=[{"Source": src, "DetailType": "x", "Detail": "{}"}])
    _allow(lam, fn, arn)
    events.put_targets(Rule=rule, Targets=[{"Id": "t", "Arn": fn_arn, "Input": '"second"'}])
    events.put_events(Entries=[{"Source": src, "DetailType": "x", "Detail": "{}"}])
    wait_queue_drained(server, fn)
    assert seen(lam, fn, 1) == ["second"]
