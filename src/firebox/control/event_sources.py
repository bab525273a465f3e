"""Event source mappings on self-hosted brokers: Create/Get/Update/Delete/List.

How a broker is named through the unchanged Lambda API (boto3, the CLI, IaC tools):

  EventSourceArn   arn:aws:<kind>:::<broker URL>     (``arn:firebox:…`` is accepted too)
                   kind: redis | rabbitmq | nats
                   e.g. arn:aws:redis:::redis://127.0.0.1:6379/0
                        arn:aws:rabbitmq:::amqp://127.0.0.1:5672/%2F
                        arn:aws:nats:::nats://127.0.0.1:4222
  Topics=[name]    Redis: the stream; NATS: the JetStream stream
  Queues=[name]    RabbitMQ: the queue (as for Amazon MQ)
  SourceAccessConfigurations=[{"Type": "BASIC_AUTH", "URI": "user:password"}]
                   credentials, when they are not in the URL (AWS would name a secret);
                   {"Type": "VIRTUAL_HOST", "URI": "/vhost"} for RabbitMQ
  SelfManagedKafkaEventSourceConfig={"ConsumerGroupId": "..."}
                   the Redis consumer group / NATS durable consumer (default: the UUID)

Keys in the metadata store:
  esm  {uuid}    the mapping as GetEventSourceMapping returns it (+ private fields)

The pollers (triggers/esm) follow the stored mappings; State shows Enabled/Disabled, and
LastProcessingResult what the poller last saw ("OK", "PROBLEM: Connection error. …").
"""

from __future__ import annotations

import builtins
import re
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

from firebox.arn import parse_function_ref
from firebox.control.catalog import ALIAS, FUNCTION, VERSION, Catalog, paginate, version_key
from firebox.control.event_invoke import lambda_target
from firebox.errors import InvalidEventPattern
from firebox.messages import (
    ESM_ACCESS_TYPE,
    ESM_DESTINATION,
    ESM_FILTER_INVALID,
    ESM_FUNCTION_MISSING,
    ESM_SOURCE_MISSING,
    ESM_SOURCE_NAMES,
    ESM_SOURCE_UNSUPPORTED,
    ESM_SOURCE_URL,
    ESM_STARTING_POSITION,
    RESOURCE_NOT_FOUND,
)
from firebox.store.metadata.base import Doc
from firebox.triggers.patterns import parse_pattern

ESM = "esm"
KINDS = {"redis": ("redis", "rediss"), "rabbitmq": ("amqp", "amqps"), "nats": ("nats", "tls")}
_SOURCE_RE = re.compile(r"^arn:(?:aws|firebox):(redis|rabbitmq|nats):[^:]*:[^:]*:(.+)$")
_UPDATABLE = (
    "Enabled",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "FilterCriteria",
    "FunctionResponseTypes",
    "MaximumRetryAttempts",
    "DestinationConfig",
    "SourceAccessConfigurations",
    "FunctionName",
)


def parse_source(arn: str) -> tuple[str, str]:
    """(kind, broker URL) of an EventSourceArn; InvalidParameterValue if it names none."""
    if not arn:
        raise ESM_SOURCE_MISSING()
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


class EventSourceMappings:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog
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

    def _function_arn(self, name: str) -> str:
        ref = parse_function_ref(name, region=self.c.settings.region)
        exists = self.c.store.get(FUNCTION, ref.name) is not None
        q = ref.qualifier
        if exists and q and q != "$LATEST":
            kind = VERSION if q.isdigit() else ALIAS
            key = version_key(ref.name, int(q)) if q.isdigit() else f"{ref.name}/{q}"
            exists = self.c.store.get(kind, key) is not None
        if not exists:
            raise ESM_FUNCTION_MISSING()
        return self.c.arn(ref.name, ref.qualifier)

    def _validate(self, doc: Doc, params: Doc, creating: bool) -> None:
        for field in _UPDATABLE:
            if field not in params or params[field] is None:
                continue
            value = params[field]
            if field == "FunctionName":
                doc["FunctionArn"] = self._function_arn(value)
            elif field == "Enabled":
                doc["State"] = "Enabled" if value else "Disabled"
            elif field in (
                "BatchSize",
                "MaximumBatchingWindowInSeconds",
                "MaximumRetryAttempts",
                "FunctionResponseTypes",
            ):
                # Ranges and enums were checked against the model at the edge.
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
                if on_failure:
                    if lambda_target(on_failure) is None:
                        raise ESM_DESTINATION()
                doc[field] = (
                    {"OnFailure": {"Destination": on_failure}} if on_failure else {"OnFailure": {}}
                )
            elif field == "SourceAccessConfigurations":
                for item in value:
                    if item.get("Type") not in ("BASIC_AUTH", "VIRTUAL_HOST"):
                        raise ESM_ACCESS_TYPE(type=item.get("Type"))
                doc[field] = value

    def create(self, params: Doc) -> Doc:
        kind, _ = parse_source(params.get("EventSourceArn") or "")
        names = params.get("Queues") if kind == "rabbitmq" else params.get("Topics")
        if not names or len(names) != 1:
            which = "Queues" if kind == "rabbitmq" else "Topics"
            raise ESM_SOURCE_NAMES(field=which, what="queue" if kind == "rabbitmq" else "stream")
        position = params.get("StartingPosition") or "LATEST"
        if position not in ("LATEST", "TRIM_HORIZON"):
            raise ESM_STARTING_POSITION(arn=params["EventSourceArn"])
        mapping_id = str(uuid.uuid4())
        group = (params.get("SelfManagedKafkaEventSourceConfig") or {}).get(
            "ConsumerGroupId"
        ) or mapping_id
        doc: Doc = {
            "UUID": mapping_id,
            "EventSourceArn": params["EventSourceArn"],
            "BatchSize": 100 if kind != "rabbitmq" else 100,
            "MaximumBatchingWindowInSeconds": 0,
            "MaximumRetryAttempts": -1,
            "State": "Enabled",
            "StateTransitionReason": "USER_INITIATED",
            "LastModified": time.time(),
            "LastProcessingResult": "No records processed",
            "FunctionResponseTypes": [],
            "DestinationConfig": {"OnFailure": {}},
            "EventSourceMappingArn": self._arn(mapping_id),
            "_kind": kind,
            "_group": group,
            "_created": time.time(),
        }
        if kind == "rabbitmq":
            doc["Queues"] = names
        else:
            doc["Topics"] = names
            doc["StartingPosition"] = position
            doc["SelfManagedKafkaEventSourceConfig"] = {"ConsumerGroupId": group}
        with self.c.lock:
            self._validate(doc, {**params, "FunctionName": params.get("FunctionName")}, True)
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
            self._validate(doc, params, False)
            doc["LastModified"] = time.time()
            self.c.store.put(ESM, mapping_id, doc)
        self._changed(mapping_id)
        return self._public(doc, "Updating")

    def delete(self, mapping_id: str) -> Doc:
        with self.c.lock:
            doc = self._doc(mapping_id)
            self.c.store.delete(ESM, mapping_id)
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
