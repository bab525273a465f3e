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
from typing import Any
from urllib.parse import urlsplit

from firebox.arn import parse_function_ref
from firebox.control.catalog import Catalog, paginate
from firebox.errors import InvalidParameterValue, ResourceNotFound
from firebox.store.metadata.base import Doc
from firebox.triggers.patterns import InvalidEventPattern, parse_pattern

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
    m = _SOURCE_RE.match(arn or "")
    if m is None:
        raise InvalidParameterValue(
            f"Unsupported EventSourceArn {arn!r}: use arn:aws:<redis|rabbitmq|nats>:::<url>, "
            "e.g. arn:aws:redis:::redis://127.0.0.1:6379/0"
        )
    kind, url = m[1], m[2]
    parts = urlsplit(url)
    if parts.scheme not in KINDS[kind] or not parts.hostname:
        raise InvalidParameterValue(
            f"EventSourceArn for {kind} needs a {KINDS[kind][0]}:// URL with a host, got {url!r}"
        )
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

    def _function_arn(self, name: Any) -> str:
        if not isinstance(name, str) or not name:
            raise InvalidParameterValue("FunctionName is required")
        ref = parse_function_ref(name)
        self.c.function_doc(ref.name)
        if ref.qualifier and not ref.qualifier.isdigit() and ref.qualifier != "$LATEST":
            self.c.alias_doc(ref.name, ref.qualifier)
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
            elif field == "BatchSize":
                if not isinstance(value, int) or not 1 <= value <= 10000:
                    raise InvalidParameterValue("BatchSize must be between 1 and 10000")
                doc["BatchSize"] = value
            elif field == "MaximumBatchingWindowInSeconds":
                if not isinstance(value, int) or not 0 <= value <= 300:
                    raise InvalidParameterValue(
                        "MaximumBatchingWindowInSeconds must be between 0 and 300"
                    )
                doc[field] = value
            elif field == "MaximumRetryAttempts":
                if not isinstance(value, int) or not -1 <= value <= 10000:
                    raise InvalidParameterValue("MaximumRetryAttempts must be between -1 and 10000")
                doc[field] = value
            elif field == "FunctionResponseTypes":
                if not isinstance(value, list) or any(
                    v != "ReportBatchItemFailures" for v in value
                ):
                    raise InvalidParameterValue(
                        "FunctionResponseTypes may only contain ReportBatchItemFailures"
                    )
                doc[field] = value
            elif field == "FilterCriteria":
                filters = (value or {}).get("Filters") or []
                for f in filters:
                    try:
                        parse_pattern(str(f.get("Pattern", "")))
                    except InvalidEventPattern as exc:
                        raise InvalidParameterValue(
                            f"Invalid filter pattern definition. {exc.message}"
                        ) from None
                doc[field] = {"Filters": filters} if filters else {}
                if not filters:
                    doc.pop(field)
            elif field == "DestinationConfig":
                on_failure = (value.get("OnFailure") or {}).get("Destination")
                if on_failure:
                    if ":lambda:" not in on_failure:
                        raise InvalidParameterValue(
                            "OnFailure destination must be a Lambda function ARN on Firebox"
                        )
                    parse_function_ref(on_failure)
                doc[field] = (
                    {"OnFailure": {"Destination": on_failure}} if on_failure else {"OnFailure": {}}
                )
            elif field == "SourceAccessConfigurations":
                for item in value:
                    if item.get("Type") not in ("BASIC_AUTH", "VIRTUAL_HOST"):
                        raise InvalidParameterValue(
                            f"Unsupported SourceAccessConfiguration type {item.get('Type')}"
                        )
                doc[field] = value

    def create(self, params: Doc) -> Doc:
        kind, _ = parse_source(params.get("EventSourceArn") or "")
        names = params.get("Queues") if kind == "rabbitmq" else params.get("Topics")
        if not isinstance(names, list) or len(names) != 1 or not names[0]:
            which = "Queues" if kind == "rabbitmq" else "Topics"
            raise InvalidParameterValue(
                f"{which} must name exactly one {'queue' if kind == 'rabbitmq' else 'stream'}"
            )
        position = params.get("StartingPosition") or "LATEST"
        if position not in ("LATEST", "TRIM_HORIZON"):
            raise InvalidParameterValue("StartingPosition must be LATEST or TRIM_HORIZON")
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
            raise ResourceNotFound(
                f"The resource you requested does not exist. (Service: Lambda, Status Code: "
                f"404, Request ID: {mapping_id})"
            )
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
