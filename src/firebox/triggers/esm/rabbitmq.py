"""RabbitMQ queues, with the event Lambda gives for Amazon MQ for RabbitMQ.

The queue must exist (it is declared passively, as Amazon MQ expects). The channel's
prefetch is the batch size, messages are acknowledged one by one after the function
succeeded on them, and a closed channel hands every unacknowledged message back to the
queue, so a crash anywhere redelivers (with ``redelivered: true``).

The function's event (as Lambda's ``aws:rmq``):
  {"eventSource": "aws:rmq", "eventSourceArn": "...",
   "rmqMessagesByQueue": {"<queue>::<vhost>": [
       {"basicProperties": {"contentType": ..., "headers": {...}, "deliveryMode": 2,
                            "messageId": ..., "timestamp": ..., "bodySize": 12, ...},
        "redelivered": false, "data": "<base64 body>"}]}}
``itemIdentifier`` for ReportBatchItemFailures is the message's messageId (or, when it has
none, its delivery tag).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from yarl import URL

from firebox.control.event_sources import parse_source
from firebox.store.metadata.base import Doc
from firebox.triggers.esm.base import BrokerAuthError, Message, Source, credentials


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class RabbitMQSource(Source):
    def __init__(self, mapping: Doc) -> None:
        super().__init__(mapping)
        _, url = parse_source(mapping["EventSourceArn"])
        parsed = URL(url)
        user, password = credentials(mapping)
        if user is not None:
            parsed = parsed.with_user(user)
        if password is not None:
            parsed = parsed.with_password(password)
        vhost = unquote(parsed.raw_path.lstrip("/")) or "/"
        for item in mapping.get("SourceAccessConfigurations") or []:
            if item.get("Type") == "VIRTUAL_HOST":
                vhost = str(item.get("URI") or "/")
        self.vhost = vhost
        self.url = str(parsed.with_path("/" + vhost.replace("/", "%2F"), encoded=True))
        self.queue_name = mapping["Queues"][0]
        self.connection: Any = None
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._closed: asyncio.Event = asyncio.Event()

    async def connect(self) -> None:
        import aio_pika
        from aiormq.exceptions import ProbableAuthenticationError

        self._inbox = asyncio.Queue()
        self._closed = asyncio.Event()
        try:
            self.connection = await asyncio.wait_for(aio_pika.connect(self.url), 10)
        except ProbableAuthenticationError as exc:
            raise BrokerAuthError(str(exc)) from exc
        self.connection.close_callbacks.add(lambda *_: self._closed.set())
        channel = await self.connection.channel()
        channel.close_callbacks.add(lambda *_: self._closed.set())
        await channel.set_qos(prefetch_count=min(int(self.mapping["BatchSize"]), 65535))
        queue = await channel.declare_queue(self.queue_name, passive=True)
        await queue.consume(self._inbox.put, no_ack=False)

    async def _next(self, timeout_s: float) -> Any:
        if self._closed.is_set():
            raise ConnectionError("connection to RabbitMQ was closed")
        getter = asyncio.ensure_future(self._inbox.get())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            done, _ = await asyncio.wait(
                {getter, closed}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            closed.cancel()
        if getter in done:
            return getter.result()
        getter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await getter
        if closed in done:
            raise ConnectionError("connection to RabbitMQ was closed")
        return None

    async def fetch(self, max_messages: int, window_s: float) -> list[Message]:
        first = await self._next(1.0)
        if first is None:
            return []
        batch = [self._message(first)]
        deadline = time.monotonic() + window_s
        while len(batch) < max_messages:
            try:
                batch.append(self._message(self._inbox.get_nowait()))
                continue
            except asyncio.QueueEmpty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            nxt = await self._next(left)
            if nxt is None:
                break
            batch.append(self._message(nxt))
        return batch

    def _message(self, msg: Any) -> Message:
        stamp = msg.timestamp
        props = {
            "contentType": msg.content_type,
            "contentEncoding": msg.content_encoding,
            "headers": _plain(dict(msg.headers or {})),
            "deliveryMode": int(msg.delivery_mode) if msg.delivery_mode else None,
            "priority": msg.priority,
            "correlationId": msg.correlation_id,
            "replyTo": msg.reply_to,
            "expiration": str(msg.expiration) if msg.expiration is not None else None,
            "messageId": msg.message_id,
            "timestamp": stamp.strftime("%b %-d, %Y, %-I:%M:%S %p") if stamp else None,
            "type": msg.type,
            "userId": msg.user_id,
            "appId": msg.app_id,
            "clusterId": None,
            "bodySize": len(msg.body),
        }
        record = {
            "basicProperties": props,
            "redelivered": bool(msg.redelivered),
            "data": base64.b64encode(msg.body).decode(),
        }
        return Message(msg.message_id or str(msg.delivery_tag), record, msg)

    async def ack(self, messages: list[Message]) -> None:
        for m in messages:
            await m.handle.ack()

    async def close(self) -> None:
        if self.connection is not None:
            connection, self.connection = self.connection, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)

    def event(self, messages: list[Message]) -> Doc:
        return {
            "eventSource": "aws:rmq",
            "eventSourceArn": self.mapping["EventSourceArn"],
            "rmqMessagesByQueue": {
                f"{self.queue_name}::{self.vhost}": [m.record for m in messages]
            },
        }

    def filter_view(self, message: Message) -> Doc:
        # As Lambda filters MQ messages: on "data", decoded when the body is JSON.
        import json

        view = dict(message.record)
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            view["data"] = json.loads(base64.b64decode(view["data"]))
        return view
