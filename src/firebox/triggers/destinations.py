"""Delivery of invocation records and dead-lettered events to where AWS sends them: a
Lambda function (an asynchronous invoke through the durable queue), an SQS queue, an SNS
topic, or (for event source mappings) an S3 bucket.

A send either reaches its target or raises DestinationFailed; the caller decides what a
failure means (keep retrying, or keep the record as a dead letter). Sends are
at-least-once: a crash after a send and before the caller recorded it sends it again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from firebox.arn import FunctionRef
from firebox.control.event_invoke import lambda_target
from firebox.errors import FireboxError
from firebox.triggers.aws import AwsClients, parse_arn

log = logging.getLogger(__name__)

Submit = Callable[[FunctionRef, bytes], Awaitable[str]]


class DestinationFailed(Exception):
    """The target could not take the record; the message says why."""


class Destinations:
    def __init__(self, aws: AwsClients, submit: Submit) -> None:
        self.aws = aws
        self.submit = submit
        self._queue_urls: dict[str, str] = {}

    @staticmethod
    def reachable(arn: str) -> bool:
        """Can a record be sent to ``arn`` at all (a service Firebox delivers to)?"""
        if lambda_target(arn) is not None:
            return True
        parsed = parse_arn(arn)
        return parsed is not None and parsed.service in ("sqs", "sns", "s3")

    async def send(
        self,
        arn: str,
        body: str,
        *,
        s3_key: str = "",
        attributes: dict[str, str] | None = None,
    ) -> None:
        """Deliver ``body`` (JSON text) to ``arn``; ``s3_key`` names the object for a
        bucket, ``attributes`` become SQS message attributes / SNS message attributes."""
        target = lambda_target(arn)
        try:
            if target is not None:
                await self.submit(target, body.encode())
                return
            parsed = parse_arn(arn)
            if parsed is None:
                raise DestinationFailed(f"not a destination ARN: {arn}")
            if parsed.service == "sqs":
                await self._sqs(parsed.region, parsed.account, parsed.resource, body, attributes)
            elif parsed.service == "sns":
                client = await self.aws.make("sns", parsed.region)
                params: dict[str, Any] = {"TopicArn": arn, "Message": body}
                if attributes:
                    params["MessageAttributes"] = {
                        k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
                    }
                await self.aws.call(client, "publish", **params)
            elif parsed.service == "s3":
                client = await self.aws.make("s3", parsed.region)
                await self.aws.call(
                    client,
                    "put_object",
                    Bucket=parsed.resource,
                    Key=s3_key or "firebox-record.json",
                    Body=body.encode(),
                    ContentType="application/json",
                )
            else:
                raise DestinationFailed(f"records cannot be sent to {parsed.service}: {arn}")
        except DestinationFailed:
            raise
        except FireboxError as exc:
            raise DestinationFailed(f"{exc.code}: {exc.message}") from exc
        except Exception as exc:
            raise DestinationFailed(f"{type(exc).__name__}: {exc}") from exc

    async def _sqs(
        self, region: str, account: str, name: str, body: str, attributes: dict[str, str] | None
    ) -> None:
        client = await self.aws.make("sqs", region)
        key = f"{region}:{account}:{name}"
        url = self._queue_urls.get(key)
        if url is None:
            params: dict[str, Any] = {"QueueName": name}
            if account:
                params["QueueOwnerAWSAccountId"] = account
            url = (await self.aws.call(client, "get_queue_url", **params))["QueueUrl"]
            self._queue_urls[key] = url
        message: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
        if name.endswith(".fifo"):
            import hashlib

            message["MessageGroupId"] = "firebox"
            message["MessageDeduplicationId"] = hashlib.sha256(body.encode()).hexdigest()
        if attributes:
            message["MessageAttributes"] = {
                k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
            }
        await self.aws.call(client, "send_message", **message)
