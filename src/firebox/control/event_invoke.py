"""Event invoke configs: retries, maximum event age and destinations of async invokes.

One config per (function, qualifier); an unqualified call means $LATEST. Keys in the
metadata store: ``event_invoke_config {name}/{qualifier}``. They go when the function goes
(Catalog.on_delete).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from firebox.arn import LATEST, FunctionRef, parse_function_ref
from firebox.control.catalog import ALIAS, FUNCTION, VERSION, Catalog, paginate, version_key
from firebox.control.config_checks import int_in
from firebox.messages import (
    EIC_DESTINATION_INVALID,
    EIC_DESTINATION_MISSING,
    EIC_DESTINATION_SELF,
    EIC_FUNCTION_MISSING,
    EIC_NOT_FOUND,
    EIC_NOTHING_SET,
    Message,
)
from firebox.store.metadata.base import DeletePrefix, Doc
from firebox.store.metadata.feed import Change

EVENT_INVOKE_CONFIG = "event_invoke_config"
DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_AGE_S = 21600

_DEST_RE = re.compile(
    r"^arn:aws[a-zA-Z0-9-]*:(?P<service>[a-zA-Z0-9-]+):(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-\d)?:"
    r"(?P<account>\d{12})?:(?P<rest>.+)$"
)
# Services a destination may name. Lambda functions, SQS queues and SNS topics are
# delivered to (invoke/pollers.py); EventBridge buses are kept so that configs copied from
# AWS load, and their records are dead-lettered.
_ON_SUCCESS_SERVICES = {"lambda", "sqs", "sns", "events"}
_ON_FAILURE_SERVICES = _ON_SUCCESS_SERVICES | {"s3"}
_SETTINGS = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")


def _java_destination(dest_config: Doc, which: str) -> str:
    """One half of a DestinationConfig as Lambda prints it: OnSuccess(destination=arn)."""
    value = dest_config.get(which)
    if value is None:
        return "null"
    return f"{which}(destination={value.get('Destination') or 'null'})"


@dataclass(frozen=True, slots=True)
class AsyncConfig:
    """What the pollers need to know about one (function, qualifier)."""

    max_retries: int = DEFAULT_MAX_RETRIES
    max_age_s: int = DEFAULT_MAX_AGE_S
    on_success: str = ""
    on_failure: str = ""


def lambda_target(arn: str) -> FunctionRef | None:
    """The function a Lambda destination/DLQ ARN names, or None for other services."""
    m = _DEST_RE.match(arn)
    if m is None or m["service"] != "lambda" or not m["rest"].startswith("function:"):
        return None
    return parse_function_ref(arn)


class EventInvokeConfigs:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog
        # The pollers read configs per event: keep them in memory, dropped on every write.
        self._cache: dict[tuple[str, str], AsyncConfig] = {}
        # Bumped on every write, so that a load racing a write (writes run in worker
        # threads, loads on the loop) is never cached.
        self._generation = 0
        catalog.on_delete.append(self.on_function_deleted)

    # --- helpers --------------------------------------------------------------------

    def _check_target(self, ref: FunctionRef, missing: Message | None = None) -> tuple[str, str]:
        """(name, qualifier) after checking the function and qualifier exist. Lambda words
        a miss per operation: ``missing`` if given, else "no EventInvokeConfig"."""
        name, q = ref.name, ref.qualifier or LATEST
        exists = self.c.store.get(FUNCTION, name) is not None
        if exists and q != LATEST:
            if q.isdigit():
                exists = self.c.store.get(VERSION, version_key(name, int(q))) is not None
            else:
                exists = self.c.store.get(ALIAS, f"{name}/{q}") is not None
        if not exists:
            raise (missing or EIC_NOT_FOUND)(arn=self.c.arn(name, q))
        return name, q

    def _destination(self, name: str, dest_config: Doc, which: str) -> str | None:
        dest = (dest_config.get(which) or {}).get("Destination")
        if not dest:
            return None
        m = _DEST_RE.match(dest)
        allowed = _ON_SUCCESS_SERVICES if which == "OnSuccess" else _ON_FAILURE_SERVICES
        target = lambda_target(dest) if m is not None and m["service"] == "lambda" else None
        if m is None or m["service"] not in allowed or (m["service"] == "lambda" and not target):
            raise EIC_DESTINATION_INVALID(
                on_success=_java_destination(dest_config, "OnSuccess"),
                on_failure=_java_destination(dest_config, "OnFailure"),
            )
        if target is not None:
            if target.name == name:
                raise EIC_DESTINATION_SELF()
            if self.c.store.get(FUNCTION, target.name) is None:
                raise EIC_DESTINATION_MISSING(arn=dest)
        return dest

    def _shape(self, name: str, qualifier: str, doc: Doc) -> Doc:
        out: Doc = {"LastModified": doc["LastModified"], "FunctionArn": self.c.arn(name, qualifier)}
        for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
            if doc.get(key) is not None:
                out[key] = doc[key]
        out["DestinationConfig"] = {
            which: ({"Destination": doc[which]} if doc.get(which) else {})
            for which in ("OnSuccess", "OnFailure")
        }
        return out

    # --- API ------------------------------------------------------------------------

    def put(self, ref: FunctionRef, params: Doc, merge: bool = False) -> Doc:
        """PutFunctionEventInvokeConfig (replace) or, with merge, Update (change given fields)."""
        with self.c.lock:
            name, q = self._check_target(ref, EIC_FUNCTION_MISSING)
            if all(params.get(k) is None for k in _SETTINGS):
                raise EIC_NOTHING_SET()
            key = f"{name}/{q}"
            old = self.c.store.get(EVENT_INVOKE_CONFIG, key)
            if merge and old is None:
                raise EIC_NOT_FOUND(arn=self.c.arn(name, q))
            doc: Doc = dict(old or {}) if merge else {}
            retries = int_in(params, "MaximumRetryAttempts", "maximumRetryAttempts", 0, 2)
            # The floor is AWS's 60 s unless an operator lowered it (tests do).
            age = int_in(
                params,
                "MaximumEventAgeInSeconds",
                "maximumEventAgeInSeconds",
                min(60, self.c.settings.async_min_event_age_s),
                21600,
            )
            if retries is not None or not merge:
                doc["MaximumRetryAttempts"] = retries
            if age is not None or not merge:
                doc["MaximumEventAgeInSeconds"] = age
            dest_config = params.get("DestinationConfig") or {}
            for which in ("OnSuccess", "OnFailure"):
                if not merge or which in dest_config:
                    doc[which] = self._destination(name, dest_config, which)
            doc["LastModified"] = time.time()
            self.c.store.put(EVENT_INVOKE_CONFIG, key, doc)
            self._invalidate(name, q)
            return self._shape(name, q, doc)

    def get(self, ref: FunctionRef) -> Doc:
        name, q = self._check_target(ref)
        doc = self.c.store.get(EVENT_INVOKE_CONFIG, f"{name}/{q}")
        if doc is None:
            raise EIC_NOT_FOUND(arn=self.c.arn(name, q))
        return self._shape(name, q, doc)

    def delete(self, ref: FunctionRef) -> None:
        with self.c.lock:
            name, q = self._check_target(ref)
            if not self.c.store.delete(EVENT_INVOKE_CONFIG, f"{name}/{q}"):
                raise EIC_NOT_FOUND(arn=self.c.arn(name, q))
            self._invalidate(name, q)

    def list(self, name: str, marker: str | None, max_items: int | None) -> Doc:
        if self.c.store.get(FUNCTION, name) is None:
            raise EIC_FUNCTION_MISSING()
        items = [
            (k.split("/", 1)[1], d)
            for k, d in self.c.store.list(EVENT_INVOKE_CONFIG, prefix=f"{name}/")
        ]
        page, next_marker = paginate(items, marker, max_items or 50, key=lambda i: i[0])
        out: dict[str, Any] = {
            "FunctionEventInvokeConfigs": [self._shape(name, q, d) for q, d in page]
        }
        if next_marker:
            out["NextMarker"] = next_marker
        return out

    # --- for the pollers and the catalog ----------------------------------------------

    def on_change(self, change: Change) -> None:
        """A write anywhere in the fleet (the metadata store's change feed)."""
        if not change.kind:
            self._generation += 1
            self._cache.clear()
        elif change.kind == EVENT_INVOKE_CONFIG:
            name, _, qualifier = change.key.partition("/")
            self._invalidate(name, None if change.prefix else qualifier or None)

    def _invalidate(self, name: str, qualifier: str | None) -> None:
        self._generation += 1
        for key in [
            k
            for k in list(self._cache)
            if k[0] == name and (qualifier is None or k[1] == qualifier)
        ]:
            self._cache.pop(key, None)

    async def effective(self, name: str, qualifier: str | None) -> AsyncConfig:
        """The config an event runs with: from memory, else read in a worker thread (the
        pollers run on the event loop, and a read can wait behind a write's fsync)."""
        cached = self._cache.get((name, qualifier or LATEST))
        if cached is not None:
            return cached
        return await asyncio.to_thread(self._load, name, qualifier)

    def _load(self, name: str, qualifier: str | None) -> AsyncConfig:
        q = qualifier or LATEST
        generation = self._generation
        doc = self.c.store.get(EVENT_INVOKE_CONFIG, f"{name}/{q}") or {}
        retries = doc.get("MaximumRetryAttempts")
        age = doc.get("MaximumEventAgeInSeconds")
        config = AsyncConfig(
            DEFAULT_MAX_RETRIES if retries is None else int(retries),
            DEFAULT_MAX_AGE_S if age is None else int(age),
            doc.get("OnSuccess") or "",
            doc.get("OnFailure") or "",
        )
        if generation == self._generation:
            self._cache[(name, q)] = config
        return config

    def on_function_deleted(self, name: str) -> None:
        self.c.store.batch([DeletePrefix(EVENT_INVOKE_CONFIG, f"{name}/")])
        self._invalidate(name, None)
