"""Amazon SQS (or an SQS-compatible server at ``AWS_ENDPOINT_URL_SQS``), polled as Lambda
polls it.

- Up to BatchSize messages (10,000 with a batching window; 10 without one, and for FIFO
  queues), gathered for at most MaximumBatchingWindowInSeconds.
- A message is deleted only after the function succeeded on it (with
  ReportBatchItemFailures: every message not reported as failed). A failed message is
  left alone: it becomes visible again when the queue's visibility timeout ends, and the
  queue's redrive policy moves it to its dead-letter queue after maxReceiveCount
  receives. Firebox does not retry it itself and has no OnFailure for it, as Lambda.
- Several batches at once: ScalingConfig.MaximumConcurrency pollers (default 5, Lambda's
  starting number), each one batch at a time.

The function's event is Lambda's ``aws:sqs`` event, field for field; ``itemIdentifier``
for ReportBatchItemFailures is the ``messageId``.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

from firebox.store.metadata.base import Doc
from firebox.triggers.aws import AwsClients, mapping_credentials, parse_arn
from firebox.triggers.esm.base import Message, Source

log = logging.getLogger(__name__)

# How long one receive waits for a message when there is none (SQS long polling): short,
# so that a poller asked to stop (UpdateEventSourceMapping, shutdown) stops promptly.
IDLE_WAIT_S = 1
DEFAULT_CONCURRENCY = 5


def concurrency(mapping: Doc) -> int:
    """How many batches of this mapping may be in the function at once."""
    return int((mapping.get("ScalingConfig") or {}).get("MaximumConcurrency") or 0) or (
        DEFAULT_CONCURRENCY
    )


def _attribute(value: Doc) -> Doc:
    """An SQS message attribute as Lambda's event spells it."""
    out: Doc = {
        "stringListValues": list(value.get("StringListValues") or []),
        "binaryListValues": [
            base64.b64encode(v).decode() for v in value.get("BinaryListValues") or []
        ],
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return out


class SqsSource(Source):
    redelivers_failures = True

    def __init__(self, mapping: Doc, aws: AwsClients) -> None:
        super().__init__(mapping)
        arn = parse_arn(mapping["EventSourceArn"])
        assert arn is not None
        self.region, self.account, self.queue = arn.region, arn.account, arn.resource
        self.aws = aws
        self.client: Any = None
        self.url = ""

    async def connect(self) -> None:
        self.client = await self.aws.make("sqs", self.region, mapping_credentials(self.mapping))
        reply = await self.aws.call(
            self.client,
            "get_queue_url",
            QueueName=self.queue,
            QueueOwnerAWSAccountId=self.account,
        )
        self.url = reply["QueueUrl"]

    async def _receive(self, count: int, wait_s: int) -> list[Message]:
        reply = await self.aws.call(
            self.client,
            "receive_message",
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(10, count)),
            WaitTimeSeconds=wait_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [self._message(m) for m in reply.get("Messages") or []]

    async def fetch(self, max_messages: int, window_s: float) -> list[Message]:
        batch = await self._receive(max_messages, IDLE_WAIT_S)
        if not batch or window_s <= 0:
            return batch
        deadline = time.monotonic() + window_s
        by_id = {m.id: m for m in batch}
        while len(by_id) < max_messages:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = await self._receive(max_messages - len(by_id), min(20, int(left)))
            # A message whose visibility timeout ended meanwhile (a timeout shorter than
            # the window) comes twice: once in the batch, with its newest receipt handle.
            for m in more:
                by_id[m.id] = m
        return list(by_id.values())

    def _message(self, m: Doc) -> Message:
        record: Doc = {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m.get("Body", ""),
            "attributes": dict(m.get("Attributes") or {}),
            "messageAttributes": {
                k: _attribute(v) for k, v in (m.get("MessageAttributes") or {}).items()
            },
            "md5OfBody": m.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.mapping["EventSourceArn"],
            "awsRegion": self.region,
        }
        if m.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = m["MD5OfMessageAttributes"]
        return Message(m["MessageId"], record, m["ReceiptHandle"])

    async def ack(self, messages: list[Message]) -> None:
        for i in range(0, len(messages), 10):
            chunk = messages[i : i + 10]
            reply = await self.aws.call(
                self.client,
                "delete_message_batch",
                QueueUrl=self.url,
                Entries=[{"Id": str(n), "ReceiptHandle": m.handle} for n, m in enumerate(chunk)],
            )
            for failed in reply.get("Failed") or []:
                # The receipt is stale (the visibility timeout ended): SQS delivers it again.
                log.warning("SQS %s: could not delete a message: %s", self.queue, failed)

    async def release(self, messages: list[Message]) -> None:
        for i in range(0, len(messages), 10):
            chunk = messages[i : i + 10]
            await self.aws.call(
                self.client,
                "change_message_visibility_batch",
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m.handle, "VisibilityTimeout": 0}
                    for n, m in enumerate(chunk)
                ],
            )

    async def close(self) -> None:
        self.client = None  # the client is shared and cached (AwsClients)

    def event(self, messages: list[Message]) -> Doc:
        return {"Records": [m.record for m in messages]}

    def filter_view(self, message: Message) -> Doc:
        # As Lambda: a body that is JSON is matched as JSON, any other as a string.
        view = dict(message.record)
        try:
            view["body"] = json.loads(view["body"])
        except ValueError:
            pass
        return view
