"""Amazon Kinesis Data Streams (or a compatible server at ``AWS_ENDPOINT_URL_KINESIS``).

StartingPosition: TRIM_HORIZON (the oldest record), AT_TIMESTAMP
(StartingPositionTimestamp) or LATEST, which here means the moment the mapping was
created (AT_TIMESTAMP of it), so a record put after CreateEventSourceMapping answered is
never missed while the poller starts. After a checkpoint, reading resumes
AFTER_SEQUENCE_NUMBER of it.

The function's event is Lambda's ``aws:kinesis`` event, field for field; the
``itemIdentifier`` of ReportBatchItemFailures is the record's ``sequenceNumber``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from firebox.store.metadata.base import Doc
from firebox.triggers.aws import AwsClients, error_code, mapping_credentials, parse_arn
from firebox.triggers.esm.streams import Shard, StreamReader, StreamRecord, epoch

# GetRecords returns at most this many per call.
MAX_PER_READ = 10000


class KinesisReader(StreamReader):
    batch_info = "KinesisBatchInfo"

    def __init__(self, mapping: Doc, aws: AwsClients) -> None:
        super().__init__(mapping)
        arn = parse_arn(mapping["EventSourceArn"])
        assert arn is not None
        self.region = arn.region
        self.stream = arn.resource.removeprefix("stream/")
        self.aws = aws
        self.client: Any = None
        # shard id -> (next iterator, the last sequence number read)
        self._iterators: dict[str, tuple[str | None, str | None]] = {}

    async def connect(self) -> None:
        self.client = await self.aws.make("kinesis", self.region, mapping_credentials(self.mapping))
        self._iterators = {}

    async def shards(self) -> list[Shard]:
        out: list[Shard] = []
        params: dict[str, Any] = {"StreamName": self.stream}
        while True:
            reply = await self.aws.call(self.client, "list_shards", **params)
            for s in reply.get("Shards") or []:
                parents = tuple(
                    p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p
                )
                out.append(Shard(s["ShardId"], parents))
            token = reply.get("NextToken")
            if not token:
                return out
            params = {"NextToken": token}

    async def seek(self, shard: Shard, after: str | None) -> None:
        params: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard.id}
        position = self.mapping.get("StartingPosition", "LATEST")
        if after is not None:
            params.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
        elif shard.parents or position == "TRIM_HORIZON":
            params["ShardIteratorType"] = "TRIM_HORIZON"
        elif position == "AT_TIMESTAMP":
            params.update(
                ShardIteratorType="AT_TIMESTAMP",
                Timestamp=float(self.mapping["StartingPositionTimestamp"]),
            )
        else:
            params.update(
                ShardIteratorType="AT_TIMESTAMP", Timestamp=float(self.mapping["_created"])
            )
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
            # Iterators live five minutes: take a new one where this one was.
            await self.seek(shard, last)
            return [], False
        records = [self._record(shard, r) for r in reply.get("Records") or []]
        if records:
            last = records[-1].ident
        following = reply.get("NextShardIterator")
        self._iterators[shard.id] = (following, last)
        return records, following is None and not records

    def _record(self, shard: Shard, r: Doc) -> StreamRecord:
        seq = r["SequenceNumber"]
        arrival = epoch(r.get("ApproximateArrivalTimestamp"))
        record = {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": r["PartitionKey"],
                "sequenceNumber": seq,
                "data": base64.b64encode(r["Data"]).decode(),
                "approximateArrivalTimestamp": arrival,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard.id}:{seq}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": self.mapping.get("_role", ""),
            "awsRegion": self.region,
            "eventSourceARN": self.mapping["EventSourceArn"],
        }
        return StreamRecord(seq, int(seq), r["PartitionKey"], arrival, record)

    def event(self, records: list[StreamRecord]) -> Doc:
        return {"Records": [r.record for r in records]}

    def filter_view(self, record: StreamRecord) -> Doc:
        # As Lambda: the kinesis object's fields, with data decoded when it is JSON.
        view = dict(record.record["kinesis"])
        try:
            view["data"] = json.loads(base64.b64decode(view["data"]))
        except ValueError:
            pass
        return view
