"""Redis Streams through a consumer group.

The mapping's group (ConsumerGroupId, default the mapping's UUID) is created on first
connect at the stream's start (TRIM_HORIZON) or at the moment the mapping was created
(LATEST, so that nothing sent after CreateEventSourceMapping returned is missed). The
consumer name is fixed per mapping, so after a crash the poller first re-reads its own
pending entries (``XREADGROUP … 0``) and only then new ones (``>``); an entry is
``XACK``ed only after the function succeeded on it.

The function's event:
  {"eventSource": "firebox:redis", "eventSourceArn": "...",
   "records": [{"stream": "orders", "id": "1700000000000-0", "timestamp": 1700000000000,
                "fields": {"k": "v", ...}}]}
Field values are UTF-8 text; an entry with a value that is not is passed with
"fieldsBase64" instead of "fields". ``itemIdentifier`` for ReportBatchItemFailures is the
entry id.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from firebox.control.event_sources import parse_source
from firebox.store.metadata.base import Doc
from firebox.triggers.esm.base import BrokerAuthError, Message, Source, credentials


class RedisStreamSource(Source):
    def __init__(self, mapping: Doc) -> None:
        super().__init__(mapping)
        _, self.url = parse_source(mapping["EventSourceArn"])
        self.stream = mapping["Topics"][0]
        self.group = mapping.get("_group") or mapping["UUID"]
        self.consumer = f"firebox-{mapping['UUID']}"
        self.client: Any = None
        # Our own pending entries are read once after each connect, before new ones.
        self._backlog = True

    async def connect(self) -> None:
        import redis.asyncio as redis
        from redis.exceptions import AuthenticationError, ResponseError

        user, password = credentials(self.mapping)
        kwargs: dict[str, Any] = {"socket_connect_timeout": 5}
        if password is not None:
            kwargs["password"] = password
        if user is not None:
            kwargs["username"] = user
        self.client = redis.Redis.from_url(self.url, **kwargs)
        try:
            await self.client.ping()
        except AuthenticationError as exc:
            raise BrokerAuthError(str(exc)) from exc
        except ResponseError as exc:
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                raise BrokerAuthError(str(exc)) from exc
            raise
        start = "0"
        if self.mapping.get("StartingPosition", "LATEST") == "LATEST":
            start = f"{int(self.mapping.get('_created', time.time()) * 1000)}-0"
        try:
            await self.client.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._backlog = True

    async def fetch(self, max_messages: int, window_s: float) -> list[Message]:
        if self._backlog:
            got = await self._read("0", max_messages, None)
            if got:
                return got
            self._backlog = False
        batch = await self._read(">", max_messages, 1000)
        if batch and window_s > 0 and len(batch) < max_messages:
            deadline = time.monotonic() + window_s
            while len(batch) < max_messages:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                batch += await self._read(">", max_messages - len(batch), max(1, int(left * 1000)))
        return batch

    async def _read(self, start: str, count: int, block_ms: int | None) -> list[Message]:
        reply = await self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=count, block=block_ms
        )
        out: list[Message] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                if fields is None:  # deleted from the stream while pending
                    await self.client.xack(self.stream, self.group, entry_id)
                    continue
                out.append(self._message(entry_id, fields))
        return out

    def _message(self, entry_id: bytes, fields: dict[bytes, bytes]) -> Message:
        mid = entry_id.decode()
        record: Doc = {"stream": self.stream, "id": mid, "timestamp": int(mid.split("-", 1)[0])}
        try:
            record["fields"] = {k.decode(): v.decode() for k, v in fields.items()}
        except UnicodeDecodeError:
            record["fieldsBase64"] = {
                base64.b64encode(k).decode(): base64.b64encode(v).decode()
                for k, v in fields.items()
            }
        return Message(mid, record, entry_id)

    async def ack(self, messages: list[Message]) -> None:
        if messages:
            await self.client.xack(self.stream, self.group, *[m.handle for m in messages])

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            try:
                await asyncio.wait_for(client.aclose(), 5)
            except (TimeoutError, Exception):
                pass

    def event(self, messages: list[Message]) -> Doc:
        return {
            "eventSource": "firebox:redis",
            "eventSourceArn": self.mapping["EventSourceArn"],
            "records": [m.record for m in messages],
        }
