"""SNS topics as event sources (Firebox subscribes an HTTP endpoint of its own) and SQS / SNS
as destinations of asynchronous invokes, against an AWS-compatible server (moto)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from aws_sources import consumer, flat, read_events, read_seen, wait_until
from conftest import Server, python_function, unique
from services import Moto


@pytest.fixture
def srv(server_factory: Any, aws_env: Moto) -> Server:
    return server_factory(async_throttle_delay_s=0.2, async_throttle_max_delay_s=1)


class Capture:
    """An HTTP endpoint of the test's own that SNS also delivers to: real signed messages."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                capture.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_sns_subscription_event_shape_signatures_and_teardown(srv: Server, aws_env: Moto) -> None:
    lam, sns = srv.client("lambda"), aws_env.client("sns")
    fn = consumer(lam)
    topic = sns.create_topic(Name=unique("topic"))["TopicArn"]
    capture = Capture()
    try:
        sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=capture.url)
        mapping = lam.create_event_source_mapping(FunctionName=fn, EventSourceArn=topic)
        subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        [ours] = [s for s in subs if "/_firebox/push/sns/" in s["Endpoint"]]
        assert ours["Endpoint"].startswith(srv.endpoint + "/_firebox/push/sns/" + mapping["UUID"])
        sent = sns.publish(
            TopicArn=topic,
            Message=json.dumps({"n": 1}),
            MessageAttributes={"colour": {"DataType": "String", "StringValue": "blue"}},
        )
        assert flat(read_seen(lam, fn, lambda s: 1 in flat(s))) == [1]
        [record] = read_events(lam, fn, 1)[0]["Records"]
        assert record["EventSource"] == "aws:sns" and record["EventVersion"] == "1.0"
        assert record["EventSubscriptionArn"] == ours["SubscriptionArn"]
        message = record["Sns"]
        assert message["MessageId"] == sent["MessageId"] and message["TopicArn"] == topic
        assert message["Type"] == "Notification" and message["Message"] == json.dumps({"n": 1})
        assert set(message) == {
            "SignatureVersion",
            "Timestamp",
            "Signature",
            "SigningCertUrl",
            "MessageId",
            "Message",
            "MessageAttributes",
            "Type",
            "UnsubscribeUrl",
            "TopicArn",
            "Subject",
        }
        # A real signed message, as SNS sent it to our own endpoint: taken once as it is,
        # refused once changed (or signed by a certificate that is not SNS's).
        genuine = wait_until(lambda: capture.bodies, what="SNS's delivery")[0]
        assert _post(ours["Endpoint"], genuine) == 200
        assert _post(ours["Endpoint"], {**genuine, "Message": json.dumps({"n": 666})}) == 403
        foreign = {**genuine, "SigningCertURL": "https://evil.example.com/cert.pem"}
        assert _post(ours["Endpoint"], foreign) == 403
        other_topic = {**genuine, "TopicArn": topic + "-other"}
        assert _post(ours["Endpoint"], other_topic) == 403
        assert 666 not in flat(read_seen(lam, fn, lambda s: len(s) >= 2))
        # Deleting the mapping unsubscribes it.
        lam.delete_event_source_mapping(UUID=mapping["UUID"])
        wait_until(
            lambda: (
                not [
                    s
                    for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
                    if "/_firebox/push/sns/" in s["Endpoint"]
                ]
            ),
            what="the subscription to be removed",
        )
    finally:
        capture.close()


FAILING = """
def handler(event, context):
    if event.get("ok"):
        return {"fine": True}
    raise ValueError("no good: " + str(event.get("n")))
"""


def test_async_destinations_and_dead_letters_on_sqs_and_sns(srv: Server, aws_env: Moto) -> None:
    lam, sqs, sns = srv.client("lambda"), aws_env.client("sqs"), aws_env.client("sns")

    def queue() -> tuple[str, str]:
        url = sqs.create_queue(QueueName=unique("dest"))["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return url, arn

    failures_url, failures_arn = queue()
    successes_url, successes_arn = queue()
    dlq_url, dlq_arn = queue()
    topic = sns.create_topic(Name=unique("dlq"))["TopicArn"]
    # The topic's messages land in a queue the test reads (SNS → SQS, raw).
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=dlq_arn)["SubscriptionArn"]
    sns.set_subscription_attributes(
        SubscriptionArn=sub, AttributeName="RawMessageDelivery", AttributeValue="true"
    )
    fn = unique("failing")
    python_function(lam, fn, FAILING, DeadLetterConfig={"TargetArn": topic})
    lam.put_function_event_invoke_config(
        FunctionName=fn,
        MaximumRetryAttempts=0,
        DestinationConfig={
            "OnFailure": {"Destination": failures_arn},
            "OnSuccess": {"Destination": successes_arn},
        },
    )
    lam.invoke(FunctionName=fn, InvocationType="Event", Payload=json.dumps({"n": 7}))
    lam.invoke(FunctionName=fn, InvocationType="Event", Payload=json.dumps({"ok": True}))

    def one(url: str) -> dict[str, Any]:
        got = wait_until(
            lambda: sqs.receive_message(
                QueueUrl=url, WaitTimeSeconds=1, MessageAttributeNames=["All"]
            ).get("Messages"),
            what=f"a message in {url}",
        )
        return dict(got[0])

    failure = json.loads(one(failures_url)["Body"])
    assert failure["requestContext"]["condition"] == "RetriesExhausted"
    assert failure["requestPayload"] == {"n": 7}
    assert failure["responseContext"]["functionError"] == "Unhandled"
    success = json.loads(one(successes_url)["Body"])
    assert success["requestContext"]["condition"] == "Success"
    assert success["responsePayload"] == {"fine": True}
    # The dead-letter topic got the event itself, with Lambda's attributes.
    dead = one(dlq_url)
    assert json.loads(dead["Body"]) == {"n": 7}
    attributes = {k: v["StringValue"] for k, v in dead.get("MessageAttributes", {}).items()}
    assert attributes["ErrorMessage"] == "no good: 7" and attributes["RequestID"]
    # Nothing was kept as an undeliverable dead letter.
    assert srv.signed_get(f"/_firebox/dead-letters?FunctionName={fn}") == {"DeadLetters": []}
