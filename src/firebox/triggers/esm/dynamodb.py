"""Amazon DynamoDB Streams (or a compatible server at ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS``).

StartingPosition: TRIM_HORIZON (the oldest record still in the stream) or LATEST, which
here means records made from the second the mapping was created on (DynamoDB Streams has
no AT_TIMESTAMP: the shards are read from their start and older records are passed
over), so that a change made after CreateEventSourceMapping answered is never missed
while the poller starts.

The function's event is Lambda's ``aws:dynamodb`` event, field for field; the
``itemIdentifier`` of ReportBatchItemFailures is the record's ``dynamodb.SequenceNumber``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from firebox.store.metadata.base import Doc
from firebox.triggers.aws import AwsClients, error_code, mapping_credentials, parse_arn
from firebox.triggers.esm.streams import Shard, StreamReader, StreamRecord, epoch

MAX_PER_READ = 1000


def wire(value: Any) -> Any:
    """boto3's parsed attribute values back to the wire's JSON (bytes as base64)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [wire(v) for v in value]
    return value


class DynamoDBReader(StreamReader):
    batch_info = "DDBStreamBatchInfo"

    def __init__(self, mapping: Doc, aws: AwsClients) -> None:
        super().__init__(mapping)
        arn = parse_arn(mapping["EventSourceArn"])
        assert arn is not None
        self.region = arn.region
        self.aws = aws
        self.client: Any = None
        self._iterators: dict[str, tuple[str | None, str | None]] = {}
        # LATEST: records older than this (epoch seconds) are passed over.
        self._not_before = 0.0
        if mapping.get("StartingPosition", "LATEST") == "LATEST":
            self._not_before = float(int(float(mapping.get("_created", 0))))

    async def connect(self) -> None:
        self.client = await self.aws.make(
            "dynamodbstreams", self.region, mapping_credentials(self.mapping)
        )
        self._iterators = {}

    async def shards(self) -> list[Shard]:
        out: list[Shard] = []
        params: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            reply = await self.aws.call(self.client, "describe_stream", **params)
            description = reply["StreamDescription"]
            for s in description.get("Shards") or []:
                parent = s.get("ParentShardId")
                out.append(Shard(s["ShardId"], (parent,) if parent else ()))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return out
            params = {"StreamArn": self.stream_arn, "ExclusiveStartShardId": last}

    async def seek(self, shard: Shard, after: str | None) -> None:
        params: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.id}
        if after is not None:
            params.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
        else:
            params["ShardIteratorType"] = "TRIM_HORIZON"
        reply = await self.aws.call(self.client, "get_shard_iterator", **params)
        self._iterators[shard.id] = (reply["ShardIterator"], after)

    async def read(self, shard: Shard, limit: int) -> tuple[list[StreamRecord], bool]:
        iterator, last = self._iterators[shard.id]
        if iterator is None:
            return [], True
        try:
            reply = await self.aws.call(
                self.client,
                "get_records",
                ShardIterator=iterator,
                Limit=max(1, min(limit, MAX_PER_READ)),
            )
        except Exception as exc:
            if error_code(exc) != "ExpiredIteratorException":
                raise
            await self.seek(shard, last)
            return [], False
        records = [self._record(r) for r in reply.get("Records") or []]
        if records:
            last = records[-1].ident
        following = reply.get("NextShardIterator")
        self._iterators[shard.id] = (following, last)
        fresh = [r for r in records if r.arrival >= self._not_before]
        if fresh and len(fresh) < len(records):
            self._not_before = 0.0  # past the mapping's start: everything from here on
        return fresh, following is None and not records

    def _record(self, r: Doc) -> StreamRecord:
        body = wire(dict(r.get("dynamodb") or {}))
        arrival = epoch((r.get("dynamodb") or {}).get("ApproximateCreationDateTime"))
        body["ApproximateCreationDateTime"] = arrival
        seq = str(body.get("SequenceNumber", "0"))
        record = {
            "eventID": r.get("eventID", ""),
            "eventName": r.get("eventName", ""),
            "eventVersion": r.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": r.get("awsRegion") or self.region,
            "dynamodb": body,
            "eventSourceARN": self.stream_arn,
        }
        if r.get("userIdentity"):
            record["userIdentity"] = r["userIdentity"]
        key = json.dumps(body.get("Keys") or {}, sort_keys=True)
        return StreamRecord(seq, int(seq), key, arrival, record)

    def event(self, records: list[StreamRecord]) -> Doc:
        return {"Records": [r.record for r in records]}
