"""NATS JetStream through a durable pull consumer.

The mapping's consumer (ConsumerGroupId, default the mapping's UUID) is created on first
connect with explicit acks, delivering the whole stream (TRIM_HORIZON) or what arrived
after the mapping was created (LATEST). Messages held by the poller — in the function or
waiting for a retry — are kept alive with ``+WPI`` (in progress) so JetStream does not
hand them out again meanwhile; once the poller or the server dies, JetStream redelivers
them after ACK_WAIT_S.

The function's event:
  {"eventSource": "firebox:nats", "eventSourceArn": "...",
   "records": [{"stream": "ORDERS", "consumer": "...", "subject": "orders.new",
                "id": "42", "sequence": 42, "timestamp": "2026-…Z", "deliveryCount": 1,
                "headers": {...}, "data": "<base64 payload>"}]}
``itemIdentifier`` for ReportBatchItemFailures is ``id`` (the stream sequence number).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from firebox.control.event_sources import parse_source
from firebox.store.metadata.base import Doc
from firebox.triggers.esm.base import BrokerAuthError, Message, Source, credentials

ACK_WAIT_S = 10.0


class NatsSource(Source):
    def __init__(self, mapping: Doc) -> None:
        super().__init__(mapping)
        _, self.url = parse_source(mapping["EventSourceArn"])
        self.stream = mapping["Topics"][0]
        self.durable = mapping.get("_group") or mapping["UUID"]
        self.nc: Any = None
        self.sub: Any = None
        self._held: dict[str, Any] = {}
        self._keepalive: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        import nats
        from nats.errors import Error as NatsError
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import BadRequestError

        user, password = credentials(self.mapping)
        kwargs: dict[str, Any] = {}
        if user is not None:
            kwargs["user"] = user
        if password is not None:
            kwargs["password"] = password
        parts = urlsplit(self.url)
        if parts.username and "user" not in kwargs:
            kwargs["user"], kwargs["password"] = parts.username, parts.password or ""
        server = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port or 4222}", "", "", ""))
        errors: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            errors.append(exc)

        # nats-py keeps retrying a refused first connect forever: probe the port ourselves
        # so that a broker that is down shows as a connection error.
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port or 4222), 5
        )
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        try:
            self.nc = await asyncio.wait_for(
                nats.connect(
                    server,
                    connect_timeout=5,
                    allow_reconnect=False,
                    max_reconnect_attempts=0,
                    error_cb=on_error,
                    **kwargs,
                ),
                15,
            )
        except NatsError as exc:
            text = " ".join(str(e) for e in [exc, *errors])
            if "authorization" in text.lower() or "authentication" in text.lower():
                raise BrokerAuthError(text) from exc
            raise
        js = self.nc.jetstream()
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_S,
            max_ack_pending=max(int(self.mapping["BatchSize"]) * 2, 1000),
        )
        if self.mapping.get("StartingPosition", "LATEST") == "LATEST":
            config.deliver_policy = DeliverPolicy.BY_START_TIME
            created = datetime.fromtimestamp(float(self.mapping.get("_created", time.time())), UTC)
            config.opt_start_time = created
        else:
            config.deliver_policy = DeliverPolicy.ALL
        try:
            await js.consumer_info(self.stream, self.durable)
        except Exception:
            try:
                await js.add_consumer(self.stream, config)
            except BadRequestError:
                # Created meanwhile by another poller of the same consumer.
                await js.consumer_info(self.stream, self.durable)
        self.sub = await js.pull_subscribe_bind(durable=self.durable, stream=self.stream)
        self._held = {}
        self._keepalive = asyncio.create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        while True:
            # Well inside the ack wait, even on a loaded machine.
            await asyncio.sleep(ACK_WAIT_S / 5)
            for msg in list(self._held.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def _pull(self, n: int, timeout_s: float) -> list[Any]:
        import nats.errors

        if self.nc is None or self.nc.is_closed:
            raise ConnectionError("connection to NATS was closed")
        try:
            return list(await self.sub.fetch(batch=n, timeout=timeout_s))
        except nats.errors.TimeoutError:
            if self.nc.is_closed:
                raise ConnectionError("connection to NATS was closed") from None
            return []

    async def fetch(self, max_messages: int, window_s: float) -> list[Message]:
        msgs = await self._pull(max_messages, 1.0)
        if msgs and window_s > 0:
            deadline = time.monotonic() + window_s
            while len(msgs) < max_messages:
                left = deadline - time.monotonic()
                if left <= 0.05:
                    break
                msgs += await self._pull(max_messages - len(msgs), left)
        out = [self._message(m) for m in msgs]
        for m in out:
            self._held[m.id] = m.handle
        return out

    def _message(self, msg: Any) -> Message:
        meta = msg.metadata
        seq = int(meta.sequence.stream)
        stamp = meta.timestamp
        record = {
            "stream": self.stream,
            "consumer": self.durable,
            "subject": msg.subject,
            "id": str(seq),
            "sequence": seq,
            "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if stamp else None,
            "deliveryCount": int(meta.num_delivered),
            "headers": dict(msg.headers or {}),
            "data": base64.b64encode(msg.data).decode(),
        }
        return Message(str(seq), record, msg)

    async def ack(self, messages: list[Message]) -> None:
        for m in messages:
            await m.handle.ack_sync(timeout=5)
            self._held.pop(m.id, None)

    async def release(self, messages: list[Message]) -> None:
        for m in messages:
            with contextlib.suppress(Exception):
                await m.handle.nak()
            self._held.pop(m.id, None)

    async def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        if self.nc is not None:
            nc, self.nc = self.nc, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 5)

    def event(self, messages: list[Message]) -> Doc:
        return {
            "eventSource": "firebox:nats",
            "eventSourceArn": self.mapping["EventSourceArn"],
            "records": [m.record for m in messages],
        }

    def filter_view(self, message: Message) -> Doc:
        view = dict(message.record)
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            view["data"] = json.loads(base64.b64decode(view["data"]))
        return view
