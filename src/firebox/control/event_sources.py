"""Event source mappings: Create/Get/Update/Delete/List, for AWS's own sources and for
self-hosted brokers and databases.

How a source is named through the unchanged Lambda API (boto3, the CLI, IaC tools):

  AWS sources, by their real ARN (endpoints and credentials: triggers/aws.py):
    arn:aws:sqs:REGION:ACCOUNT:QUEUE                         polled (triggers/esm/sqs.py)
    arn:aws:kinesis:REGION:ACCOUNT:stream/NAME               a stream (triggers/esm/kinesis.py)
    arn:aws:dynamodb:REGION:ACCOUNT:table/T/stream/LABEL     a stream (triggers/esm/dynamodb.py)
    arn:aws:s3:::BUCKET       the store's bucket notifications push to Firebox (triggers/push.py)
    arn:aws:sns:REGION:ACCOUNT:TOPIC   an HTTP(S) subscription of Firebox (triggers/push.py)
  Self-hosted, arn:aws:<kind>:::<URL> (``arn:firebox:…`` is accepted too):
    kind: redis | rabbitmq | nats | postgres
    e.g. arn:aws:redis:::redis://127.0.0.1:6379/0
         arn:aws:rabbitmq:::amqp://127.0.0.1:5672/%2F
         arn:aws:nats:::nats://127.0.0.1:4222
         arn:aws:postgres:::postgresql://app@db:5432/shop   (changes of a table, pg_changes.py)
  Topics=[name]    Redis: the stream; NATS: the JetStream stream; PostgreSQL: schema.table
  Queues=[name]    RabbitMQ: the queue (as for Amazon MQ)
  SourceAccessConfigurations=[{"Type": "BASIC_AUTH", "URI": "user:password"}]
                   credentials, when they are not in the URL (AWS would name a secret); for
                   AWS sources "ACCESS_KEY_ID:SECRET_ACCESS_KEY" instead of the server's chain;
                   {"Type": "VIRTUAL_HOST", "URI": "/vhost"} for RabbitMQ
  SelfManagedKafkaEventSourceConfig={"ConsumerGroupId": "..."}
                   the Redis consumer group / NATS durable consumer (default: the UUID)

Keys in the metadata store:
  esm            {uuid}          the mapping as GetEventSourceMapping returns it (+ private
                                 fields, which start with "_")
  esm_checkpoint {uuid}/{shard}  a stream mapping's position in one shard (triggers/esm/streams)
  esm_teardown   {uuid}          a deleted mapping whose set-up on its source (notifications,
                                 subscription, trigger) is still to be removed

The pollers (triggers/esm) follow the stored mappings; State shows Enabled/Disabled, and
LastProcessingResult what the poller last saw ("OK", "PROBLEM: Connection error. …").
"""

from __future__ import annotations

import builtins
import re
import secrets
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

from firebox.arn import parse_function_ref
from firebox.control.catalog import ALIAS, FUNCTION, VERSION, Catalog, paginate, version_key
from firebox.control.event_invoke import lambda_target
from firebox.errors import FireboxError, InvalidEventPattern
from firebox.messages import (
    ESM_ACCESS_TYPE,
    ESM_DESTINATION,
    ESM_FIFO_BATCH,
    ESM_FILTER_INVALID,
    ESM_FUNCTION_MISSING,
    ESM_RECORD_AGE,
    ESM_SETUP_FAILED,
    ESM_SOURCE_MISSING,
    ESM_SOURCE_NAMES,
    ESM_SOURCE_UNSUPPORTED,
    ESM_SOURCE_URL,
    ESM_SQS_WINDOW,
    ESM_STARTING_POSITION,
    ESM_STARTING_POSITION_MISSING,
    ESM_TABLE,
    ESM_TIMESTAMP_MISSING,
    RESOURCE_NOT_FOUND,
)
from firebox.store.metadata.base import Delete, DeletePrefix, Doc, Put
from firebox.triggers.patterns import parse_pattern

ESM = "esm"
ESM_CHECKPOINT = "esm_checkpoint"
ESM_TEARDOWN = "esm_teardown"
KINDS = {
    "redis": ("redis", "rediss"),
    "rabbitmq": ("amqp", "amqps"),
    "nats": ("nats", "tls"),
    "postgres": ("postgresql", "postgres"),
}
# Sources read as streams: shards, checkpoints in the metadata store, bisect, record age.
STREAMS = frozenset({"kinesis", "dynamodb", "postgres"})
# Sources that push to Firebox: each notification is an asynchronous invoke.
PUSHED = frozenset({"s3", "sns"})
# Sources on which a mapping sets something up (and removes it when deleted).
SET_UP = frozenset({"s3", "sns", "postgres"})
_STARTING = {
    "kinesis": ("LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"),
    "dynamodb": ("LATEST", "TRIM_HORIZON"),
    "postgres": ("LATEST", "TRIM_HORIZON"),
    "redis": ("LATEST", "TRIM_HORIZON"),
    "nats": ("LATEST", "TRIM_HORIZON"),
}
_SOURCE_RE = re.compile(r"^arn:(?:aws|firebox):(redis|rabbitmq|nats|postgres):[^:]*:[^:]*:(.+)$")
_AWS_RE = {
    "sqs": re.compile(r"^arn:aws[a-zA-Z-]*:sqs:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,80}(\.fifo)?$"),
    "kinesis": re.compile(r"^arn:aws[a-zA-Z-]*:kinesis:[a-z0-9-]+:\d{12}:stream/[A-Za-z0-9_.-]+$"),
    "dynamodb": re.compile(
        r"^arn:aws[a-zA-Z-]*:dynamodb:[a-z0-9-]+:\d{12}:table/[A-Za-z0-9_.-]+/stream/.+$"
    ),
    "sns": re.compile(r"^arn:aws[a-zA-Z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$"),
    "s3": re.compile(r"^arn:aws[a-zA-Z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
}
_TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*$")
_UPDATABLE = (
    "Enabled",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "FilterCriteria",
    "FunctionResponseTypes",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "BisectBatchOnFunctionError",
    "ParallelizationFactor",
    "ScalingConfig",
    "DestinationConfig",
    "SourceAccessConfigurations",
    "FunctionName",
)
_ACCESS_TYPES = ("BASIC_AUTH", "VIRTUAL_HOST")

# Blocking calls made on a source when a mapping is created (set-up) or deleted
# (teardown), by kind: given the stored mapping, they may add private fields to it.
SourceHook = Callable[[Doc], None]


def parse_source(arn: str) -> tuple[str, str]:
    """(kind, broker URL) of an EventSourceArn (URL "" for AWS sources);
    InvalidParameterValue if it names none."""
    if not arn:
        raise ESM_SOURCE_MISSING()
    for kind, pattern in _AWS_RE.items():
        if pattern.match(arn):
            return kind, ""
    m = _SOURCE_RE.match(arn)
    if m is None:
        raise ESM_SOURCE_UNSUPPORTED(arn=arn)
    kind, url = m[1], m[2]
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
    if host is None or parts.scheme not in KINDS[kind]:
        raise ESM_SOURCE_URL(kind=kind, scheme=KINDS[kind][0], url=url)
    return kind, url


def _defaults(kind: str) -> Doc:
    """What a new mapping of this kind starts with (Lambda's defaults per source)."""
    if kind == "sqs":
        return {"BatchSize": 10, "MaximumBatchingWindowInSeconds": 0, "FunctionResponseTypes": []}
    if kind in PUSHED:
        return {"BatchSize": 1, "DestinationConfig": {"OnFailure": {}}}
    doc: Doc = {
        "BatchSize": 100,
        "MaximumBatchingWindowInSeconds": 0,
        "MaximumRetryAttempts": -1,
        "FunctionResponseTypes": [],
        "DestinationConfig": {"OnFailure": {}},
    }
    if kind in STREAMS:
        doc.update(
            ParallelizationFactor=1, BisectBatchOnFunctionError=False, MaximumRecordAgeInSeconds=-1
        )
    return doc


class EventSourceMappings:
    def __init__(
        self,
        catalog: Catalog,
        setup: SourceHook | None = None,
    ) -> None:
        self.c = catalog
        # Sets up what a new mapping needs on its source (bucket notifications, an SNS
        # subscription, a change trigger), before CreateEventSourceMapping answers: nothing
        # the source sees after that answer is missed.
        self.setup = setup
        # Called with the UUID after any change (the pollers follow).
        self.listeners: list[Callable[[str], None]] = []
        # uuid -> LastProcessingResult, as the pollers last reported it.
        self.status: dict[str, str] = {}

    def _changed(self, mapping_id: str) -> None:
        for listener in self.listeners:
            listener(mapping_id)

    def _arn(self, mapping_id: str) -> str:
        s = self.c.settings
        return f"arn:aws:lambda:{s.region}:{s.account_id}:event-source-mapping:{mapping_id}"

    def _public(self, doc: Doc, state: str | None = None) -> Doc:
        out = {k: v for k, v in doc.items() if not k.startswith("_")}
        out["LastProcessingResult"] = self.status.get(
            doc["UUID"], doc.get("LastProcessingResult", "No records processed")
        )
        if state:
            out["State"] = state
        return out

    def _function(self, name: str) -> tuple[str, str]:
        """The function's ARN and its execution role."""
        ref = parse_function_ref(name, region=self.c.settings.region)
        doc = self.c.store.get(FUNCTION, ref.name)
        exists = doc is not None
        q = ref.qualifier
        if exists and q and q != "$LATEST":
            kind = VERSION if q.isdigit() else ALIAS
            key = version_key(ref.name, int(q)) if q.isdigit() else f"{ref.name}/{q}"
            exists = self.c.store.get(kind, key) is not None
        if not exists or doc is None:
            raise ESM_FUNCTION_MISSING()
        return self.c.arn(ref.name, ref.qualifier), str(doc["config"].get("Role") or "")

    def _validate(self, doc: Doc, params: Doc) -> None:
        for field in _UPDATABLE:
            if field not in params or params[field] is None:
                continue
            value = params[field]
            if field == "FunctionName":
                doc["FunctionArn"], doc["_role"] = self._function(value)
            elif field == "Enabled":
                doc["State"] = "Enabled" if value else "Disabled"
            elif field in (
                "BatchSize",
                "MaximumBatchingWindowInSeconds",
                "MaximumRetryAttempts",
                "FunctionResponseTypes",
                "BisectBatchOnFunctionError",
                "ParallelizationFactor",
                "ScalingConfig",
            ):
                # Ranges and enums were checked against the model at the edge.
                doc[field] = value
            elif field == "MaximumRecordAgeInSeconds":
                if value != -1 and value < 60:
                    raise ESM_RECORD_AGE()
                doc[field] = value
            elif field == "FilterCriteria":
                filters = value.get("Filters") or []
                for f in filters:
                    try:
                        parse_pattern(f.get("Pattern") or "")
                    except InvalidEventPattern:
                        raise ESM_FILTER_INVALID() from None
                doc[field] = {"Filters": filters} if filters else {}
                if not filters:
                    doc.pop(field)
            elif field == "DestinationConfig":
                on_failure = (value.get("OnFailure") or {}).get("Destination")
                if on_failure and not _destination_ok(on_failure):
                    raise ESM_DESTINATION()
                doc[field] = (
                    {"OnFailure": {"Destination": on_failure}} if on_failure else {"OnFailure": {}}
                )
            elif field == "SourceAccessConfigurations":
                for item in value:
                    if item.get("Type") not in _ACCESS_TYPES:
                        raise ESM_ACCESS_TYPE(type=item.get("Type"))
                doc[field] = value
        kind = doc["_kind"]
        if kind == "sqs":
            if doc["EventSourceArn"].endswith(".fifo") and doc["BatchSize"] > 10:
                raise ESM_FIFO_BATCH()
            if doc["BatchSize"] > 10 and not doc.get("MaximumBatchingWindowInSeconds"):
                raise ESM_SQS_WINDOW()

    def create(self, params: Doc) -> Doc:
        arn = params.get("EventSourceArn") or ""
        kind, _ = parse_source(arn)
        mapping_id = str(uuid.uuid4())
        doc: Doc = {
            "UUID": mapping_id,
            "EventSourceArn": arn,
            **_defaults(kind),
            "State": "Enabled",
            "StateTransitionReason": "USER_INITIATED",
            "LastModified": time.time(),
            "LastProcessingResult": "No records processed",
            "EventSourceMappingArn": self._arn(mapping_id),
            "_kind": kind,
            "_created": time.time(),
        }
        if kind in ("redis", "rabbitmq", "nats", "postgres"):
            which, what = ("Queues", "queue") if kind == "rabbitmq" else ("Topics", "stream")
            if kind == "postgres":
                what = "table"
            names = params.get(which)
            if not names or len(names) != 1:
                raise ESM_SOURCE_NAMES(field=which, what=what)
            doc[which] = names
            if kind == "postgres" and not _TABLE_RE.match(names[0]):
                raise ESM_TABLE(table=names[0])
        if kind in ("redis", "nats"):
            group = (params.get("SelfManagedKafkaEventSourceConfig") or {}).get(
                "ConsumerGroupId"
            ) or mapping_id
            doc["_group"] = group
            doc["SelfManagedKafkaEventSourceConfig"] = {"ConsumerGroupId": group}
        if kind in ("redis", "rabbitmq", "nats"):
            doc["_group"] = doc.get("_group") or mapping_id
        position = params.get("StartingPosition")
        allowed = _STARTING.get(kind, ())
        if position is None and kind in ("kinesis", "dynamodb"):
            raise ESM_STARTING_POSITION_MISSING(arn=arn)
        if position is not None and position not in allowed:
            raise ESM_STARTING_POSITION(arn=arn)
        if allowed:
            doc["StartingPosition"] = position or "LATEST"
        if position == "AT_TIMESTAMP":
            stamp = params.get("StartingPositionTimestamp")
            if stamp is None:
                raise ESM_TIMESTAMP_MISSING()
            doc["StartingPositionTimestamp"] = (
                stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)
            )
        if kind in PUSHED:
            # The push endpoint's path carries it: only the source can post there.
            doc["_secret"] = secrets.token_urlsafe(32)
        with self.c.lock:
            self._validate(doc, {**params, "FunctionName": params.get("FunctionName")})
            if kind in PUSHED:
                # Stored first: a source confirms its subscription (SNS) as it is made.
                self.c.store.put(ESM, mapping_id, doc)
        if kind in SET_UP and self.setup is not None:
            try:
                self.setup(doc)
            except Exception as exc:
                if kind in PUSHED:
                    self.c.store.delete(ESM, mapping_id)
                if isinstance(exc, FireboxError):
                    raise
                raise ESM_SETUP_FAILED(arn=arn, error=f"{type(exc).__name__}: {exc}") from exc
        self.c.store.put(ESM, mapping_id, doc)
        self._changed(mapping_id)
        return self._public(doc, "Creating")

    def _doc(self, mapping_id: str) -> Doc:
        doc = self.c.store.get(ESM, mapping_id)
        if doc is None:
            raise RESOURCE_NOT_FOUND()
        return doc

    def get(self, mapping_id: str) -> Doc:
        return self._public(self._doc(mapping_id))

    def update(self, mapping_id: str, params: Doc) -> Doc:
        with self.c.lock:
            doc = self._doc(mapping_id)
            self._validate(doc, params)
            doc["LastModified"] = time.time()
            self.c.store.put(ESM, mapping_id, doc)
        self._changed(mapping_id)
        return self._public(doc, "Updating")

    def delete(self, mapping_id: str) -> Doc:
        with self.c.lock:
            doc = self._doc(mapping_id)
            writes: builtins.list[Put | Delete | DeletePrefix] = [
                Delete(ESM, mapping_id),
                DeletePrefix(ESM_CHECKPOINT, f"{mapping_id}/"),
            ]
            if doc["_kind"] in SET_UP:
                # Removed from the source by the pollers (triggers/esm), retried until done.
                writes.append(Put(ESM_TEARDOWN, mapping_id, doc))
            self.c.store.batch(writes)
        self._changed(mapping_id)
        self.status.pop(mapping_id, None)
        return self._public(doc, "Deleting")

    def list(
        self, source: str | None, function: str | None, marker: str | None, max_items: int | None
    ) -> Doc:
        docs = [d for _, d in self.c.store.list(ESM)]
        if source:
            docs = [d for d in docs if d["EventSourceArn"] == source]
        if function:
            ref = parse_function_ref(function)
            docs = [
                d
                for d in docs
                if parse_function_ref(d["FunctionArn"]).name == ref.name
                and (
                    ref.qualifier is None
                    or parse_function_ref(d["FunctionArn"]).qualifier == ref.qualifier
                )
            ]
        page, next_marker = paginate(docs, marker, max_items, lambda d: d["UUID"])
        out: Doc = {"EventSourceMappings": [self._public(d) for d in page]}
        if next_marker:
            out["NextMarker"] = next_marker
        return out

    def all(self) -> builtins.list[Doc]:
        return [d for _, d in self.c.store.list(ESM)]

    def teardowns(self) -> builtins.list[Doc]:
        """Deleted mappings whose set-up on their source is still to be removed."""
        return [d for _, d in self.c.store.list(ESM_TEARDOWN)]

    def torn_down(self, mapping_id: str) -> None:
        self.c.store.delete(ESM_TEARDOWN, mapping_id)


def _destination_ok(arn: str) -> bool:
    if lambda_target(arn) is not None:
        return True
    return any(_AWS_RE[k].match(arn) for k in ("sqs", "sns", "s3"))
