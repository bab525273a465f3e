"""Stream sources (Kinesis, DynamoDB Streams, PostgreSQL changes), consumed as Lambda
consumes streams.

- Every shard is read in order, one batch in the function at a time: with
  ParallelizationFactor N, a batch is split by partition key into up to N batches run
  at once (records of one key stay in order, in one of them). A child shard (after a
  split or merge) is read only once its parents are read to their end.
- A batch is up to BatchSize records gathered for at most MaximumBatchingWindowInSeconds.
- A failed batch is retried until it succeeds, MaximumRetryAttempts is exceeded (-1:
  until the records expire) or its records are older than MaximumRecordAgeInSeconds; with
  BisectBatchOnFunctionError it is split in two before each retry (the halves inherit
  its attempts), with ReportBatchItemFailures it is retried from the lowest failed
  sequence number. Records given up on go to the OnFailure destination as Lambda's
  invocation record with the batch's shard and sequence numbers.
- The position in each shard (the checkpoint) is kept in the metadata store, shared by the
  fleet, and written only after the whole batch is done and the log lines of its
  invocations are on disk: a crash replays the batch (at-least-once), never skips it; a
  clean stop finishes the batch in hand and writes its checkpoint, so nothing runs twice.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from firebox.control.event_sources import ESM_CHECKPOINT
from firebox.store.metadata.base import Doc
from firebox.triggers.destinations import DestinationFailed
from firebox.triggers.esm.base import PollerDeps, failure_key, invoke_batch, problem_text
from firebox.triggers.patterns import matches

log = logging.getLogger(__name__)

# How often the shard list is read again (new shards after a split or a merge).
SHARD_REFRESH_S = 10.0


@dataclass(slots=True)
class StreamRecord:
    ident: str  # the sequence number as the source spells it (the itemIdentifier)
    seq: int  # its order in the shard
    key: str  # records of one key keep their order (ParallelizationFactor)
    arrival: float  # when the source took it, epoch seconds (MaximumRecordAgeInSeconds)
    record: Doc  # as it appears in the function's event


@dataclass(frozen=True, slots=True)
class Shard:
    id: str
    parents: tuple[str, ...] = ()


class StreamReader(abc.ABC):
    """One stream of one mapping. Subclasses implement the source's calls."""

    # The name of the batch's description in an OnFailure record.
    batch_info = "KinesisBatchInfo"
    # Whether an OnFailure record carries the records themselves ("payload"): where the
    # source keeps nothing a consumer of the record could read them back from.
    failure_payload = False
    # How long to wait before reading a shard again when it had nothing new.
    poll_interval_s = 1.0

    def __init__(self, mapping: Doc) -> None:
        self.mapping = mapping

    @property
    def stream_arn(self) -> str:
        return str(self.mapping["EventSourceArn"])

    @abc.abstractmethod
    async def connect(self) -> None:
        """Reach the source (and check the stream exists)."""

    @abc.abstractmethod
    async def shards(self) -> list[Shard]:
        """The stream's shards, parents before children."""

    @abc.abstractmethod
    async def seek(self, shard: Shard, after: str | None) -> None:
        """Read ``shard`` next from just after the record ``after`` (a sequence number), or
        from the mapping's StartingPosition (a child shard: from its start) if None."""

    @abc.abstractmethod
    async def read(self, shard: Shard, limit: int) -> tuple[list[StreamRecord], bool]:
        """Up to ``limit`` records of ``shard`` after the last ones read, in order, and
        whether the shard has ended (closed and read to its end)."""

    @abc.abstractmethod
    def event(self, records: list[StreamRecord]) -> Doc:
        """The function's event for a batch, in the source's documented shape."""

    def filter_view(self, record: StreamRecord) -> Doc:
        """What FilterCriteria patterns are matched against."""
        return record.record

    async def committed(self, shard: Shard, ident: str) -> None:
        """The checkpoint of ``shard`` moved past ``ident`` (the source may prune)."""
        del shard, ident

    async def close(self) -> None:  # noqa: B027 (most readers hold nothing to close)
        """Let go of the source."""


class _Stopped(Exception):
    """The poller was asked to stop in the middle of retries: leave the batch unrecorded."""


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class StreamPoller:
    """Runs one stream mapping until stopped or cancelled."""

    def __init__(
        self, deps: PollerDeps, mapping: Doc, reader: StreamReader, report: Callable[[str], None]
    ) -> None:
        self.deps = deps
        self.mapping = mapping
        self.reader = reader
        self.report = report
        self.delivered = 0
        self.stopping = False

    @property
    def _filters(self) -> list[Doc]:
        out = []
        for f in (self.mapping.get("FilterCriteria") or {}).get("Filters") or []:
            with contextlib.suppress(ValueError, TypeError):
                out.append(json.loads(f["Pattern"]))
        return out

    async def run(self) -> None:
        delay = self.deps.retry_delay_s
        while not self.stopping:
            try:
                await self.reader.connect()
                await self._run_shards()
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await self.reader.close()
                raise
            except _Stopped:
                break
            except Exception as exc:
                text = problem_text(exc)
                log.warning("event source mapping %s: %s", self.mapping["UUID"], text)
                self.report(text)
                with contextlib.suppress(Exception):
                    await self.reader.close()
                await asyncio.sleep(delay)
        with contextlib.suppress(Exception):
            await self.reader.close()

    # --- shards ---------------------------------------------------------------------

    def _key(self, shard_id: str) -> str:
        return f"{self.mapping['UUID']}/{shard_id}"

    async def _checkpoint(self, shard_id: str) -> Doc | None:
        return await asyncio.to_thread(self.deps.metadata.get, ESM_CHECKPOINT, self._key(shard_id))

    async def _save(self, shard: Shard, ident: str | None, done: bool) -> None:
        doc: Doc = {"seq": ident, "done": done, "at": time.time()}
        await asyncio.to_thread(self.deps.metadata.put, ESM_CHECKPOINT, self._key(shard.id), doc)
        if ident is not None:
            await self.reader.committed(shard, ident)

    async def _run_shards(self) -> None:
        running: dict[str, asyncio.Task[bool]] = {}
        done: set[str] = set()
        try:
            while not self.stopping:
                shards = await self.reader.shards()
                present = {s.id for s in shards}
                for shard in shards:
                    if shard.id in running or shard.id in done:
                        continue
                    if any(p in present and p not in done for p in shard.parents):
                        continue  # its parents first: a key's records stay in order
                    checkpoint = await self._checkpoint(shard.id)
                    if checkpoint is not None and checkpoint.get("done"):
                        done.add(shard.id)
                        continue
                    after = checkpoint.get("seq") if checkpoint else None
                    running[shard.id] = asyncio.create_task(self._shard(shard, after))
                if not running:
                    await asyncio.sleep(min(SHARD_REFRESH_S, 1.0))
                    continue
                finished, _ = await asyncio.wait(
                    running.values(), timeout=SHARD_REFRESH_S, return_when=asyncio.FIRST_COMPLETED
                )
                for shard_id, task in list(running.items()):
                    if task in finished:
                        del running[shard_id]
                        if task.result():  # raises what the shard's loop raised
                            done.add(shard_id)
        finally:
            if self.stopping:
                # Each shard finishes its batch in hand and records it.
                await asyncio.gather(*running.values(), return_exceptions=True)
            for task in running.values():
                task.cancel()
            for task in running.values():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _shard(self, shard: Shard, after: str | None) -> bool:
        """Read one shard until stopped (False) or until its end (True)."""
        await self.reader.seek(shard, after)
        while not self.stopping:
            records, ended = await self._gather(shard)
            if records:
                await self._handle(shard, records)
                await self._save(shard, records[-1].ident, done=False)
                self.delivered += len(records)
            if ended:
                await self._save(shard, records[-1].ident if records else None, done=True)
                return True
        return False

    async def _gather(self, shard: Shard) -> tuple[list[StreamRecord], bool]:
        factor = max(1, int(self.mapping.get("ParallelizationFactor") or 1))
        limit = int(self.mapping["BatchSize"]) * factor
        window = float(self.mapping.get("MaximumBatchingWindowInSeconds") or 0)
        records, ended = await self.reader.read(shard, limit)
        if not records:
            if not ended:
                await asyncio.sleep(self.reader.poll_interval_s)
            return [], ended
        deadline = time.monotonic() + window
        while window > 0 and len(records) < limit and not ended and not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more, ended = await self.reader.read(shard, limit - len(records))
            records += more
            if not more and not ended:
                await asyncio.sleep(min(self.reader.poll_interval_s, left))
        return records, ended

    # --- batches --------------------------------------------------------------------

    async def _handle(self, shard: Shard, records: list[StreamRecord]) -> None:
        factor = max(1, int(self.mapping.get("ParallelizationFactor") or 1))
        if factor == 1:
            lanes = [records]
        else:
            by_lane: dict[int, list[StreamRecord]] = {}
            for r in records:
                by_lane.setdefault(zlib.crc32(r.key.encode()) % factor, []).append(r)
            lanes = list(by_lane.values())
        await asyncio.gather(*(self._lane(shard, lane) for lane in lanes))

    async def _lane(self, shard: Shard, records: list[StreamRecord]) -> None:
        size = int(self.mapping["BatchSize"])
        for i in range(0, len(records), size):
            await self._deliver(shard, records[i : i + size])

    async def _deliver(self, shard: Shard, batch: list[StreamRecord]) -> None:
        """One batch until it succeeds or is given up on (OnFailure)."""
        filters = self._filters
        if filters:
            batch = [
                r for r in batch if any(matches(p, self.reader.filter_view(r)) for p in filters)
            ]
        limit = int(self.mapping.get("MaximumRetryAttempts", -1))
        max_age = int(self.mapping.get("MaximumRecordAgeInSeconds", -1))
        bisect = bool(self.mapping.get("BisectBatchOnFunctionError"))
        todo: deque[tuple[list[StreamRecord], int]] = deque([(batch, 0)] if batch else [])
        while todo:
            part, tries = todo.popleft()
            if max_age != -1:
                now = time.time()
                old = [r for r in part if now - r.arrival > max_age]
                if old:
                    await self._on_failure(shard, old, "RecordAgeExceeded", tries)
                    part = [r for r in part if now - r.arrival <= max_age]
                if not part:
                    continue
            mark = self.deps.log_writer.position()
            failed, counted = await invoke_batch(
                self.deps.invoker,
                self.mapping,
                self.reader.event(part),
                {r.ident for r in part},
                self.report,
            )
            # Raises LogsNotWritten if they are lost: the batch then runs again.
            await self.deps.log_writer.durable(since=mark)
            if not failed:
                continue
            # Records before the first failed one are done (ReportBatchItemFailures).
            part = part[min(i for i, r in enumerate(part) if r.ident in failed) :]
            if self.stopping:
                raise _Stopped()
            if not counted:  # throttled: not an attempt
                await asyncio.sleep(min(0.2 * 2 ** min(tries, 5), 5.0))
                todo.appendleft((part, tries))
                continue
            tries += 1
            if bisect and len(part) > 1:
                half = len(part) // 2
                todo.extendleft([(part[half:], tries), (part[:half], tries)])
                continue
            if limit != -1 and tries > limit:
                await self._on_failure(shard, part, "RetryAttemptsExhausted", tries)
                continue
            await asyncio.sleep(min(0.1 * 2 ** min(tries, 6), 5.0))
            todo.appendleft((part, tries))

    async def _on_failure(
        self, shard: Shard, records: list[StreamRecord], condition: str, tries: int
    ) -> None:
        """Send what is given up on to the OnFailure destination (retried until it is
        taken: the shard waits, as nothing after these records may be checkpointed)."""
        destination = ((self.mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination"
        )
        if not destination:
            log.warning(
                "event source mapping %s: skipping %d records of %s (%s)",
                self.mapping["UUID"],
                len(records),
                shard.id,
                condition,
            )
            return
        record: Doc = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.mapping["FunctionArn"],
                "condition": condition,
                "approximateInvokeCount": tries,
            },
            "version": "1.0",
            "timestamp": _iso(time.time()),
            self.reader.batch_info: {
                "shardId": shard.id,
                "startSequenceNumber": records[0].ident,
                "endSequenceNumber": records[-1].ident,
                "approximateArrivalOfFirstRecord": _iso(records[0].arrival),
                "approximateArrivalOfLastRecord": _iso(records[-1].arrival),
                "batchSize": len(records),
                "streamArn": self.reader.stream_arn,
            },
        }
        if condition == "RetryAttemptsExhausted":
            record["responseContext"] = {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            }
        if self.reader.failure_payload:
            record["payload"] = self.reader.event(records)
        body = json.dumps(record)
        delay = 0.5
        while True:
            try:
                await self.deps.destinations.send(
                    destination, body, s3_key=failure_key(self.mapping, shard.id)
                )
                return
            except DestinationFailed as exc:
                if self.stopping:
                    raise _Stopped() from exc
                self.report(f"PROBLEM: OnFailure destination failed: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


def epoch(value: Any) -> float:
    """A timestamp boto3 parsed (datetime) or the wire's number, as epoch seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return time.time()
