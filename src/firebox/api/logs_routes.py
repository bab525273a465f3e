"""The CloudWatch Logs API (JSON 1.1, X-Amz-Target: Logs_20140328.*) over the log store.

Shapes, error codes and limits follow botocore's ``logs`` model; every store call runs in
a worker thread because the store is SQLite.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from firebox import messages as m
from firebox.api.operations import json11_operation
from firebox.api.server import TARGETS_KEY, body_limit
from firebox.errors import FireboxError, LogsInvalidParameter
from firebox.observe.patterns import compile_pattern, required_terms
from firebox.store.logs.base import Cursor, GroupInfo, LogStore, StoredEvent, StreamInfo

PREFIX = "Logs_20140328."
RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
_GROUP_NAME = re.compile(r"[.\-_/#A-Za-z0-9]{1,512}")
DAY_MS = 86_400_000
MAX_EVENTS = 10_000
MAX_RESPONSE_BYTES = 1_048_576
# How many stored events one FilterLogEvents call reads before it returns a nextToken.
FILTER_SCAN_LIMIT = 100_000
# Seconds one FilterLogEvents call searches before it answers with what it found and a
# nextToken: a costly pattern over many large events costs only its own request.
FILTER_BUDGET_S = 1.0

MAX_TAGS = 50


# --- parameters (their JSON types, lengths, patterns and ranges were checked against the
# model at the edge: api/operations.py) ---------------------------------------------------


def _group_name(name: str) -> str:
    if len(name) > 512:
        raise m.LOG_NAME_TOO_LONG()
    return name


def _stream_name(name: str) -> str:
    if len(name) > 512:
        raise m.LOG_NAME_TOO_LONG()
    return name


def _group_param(params: dict[str, Any]) -> str:
    """logGroupName, or logGroupIdentifier (a name or an ARN), exactly one of them."""
    name: str | None = params.get("logGroupName")
    ident: str | None = params.get("logGroupIdentifier")
    if name is not None and ident is not None:
        raise m.LOG_NAME_AND_ARN()
    if ident is not None:
        if ident.startswith("arn:"):
            parts = ident.split(":")
            if len(parts) < 7 or parts[5] != "log-group":
                raise m.LOG_GROUP_ARN_INVALID(arn=ident)
            name = parts[6]
        else:
            name = ident
    if name is None:
        raise m.LOG_GROUP_REQUIRED()
    return _group_name(name)


def _tags(raw: dict[str, str] | None) -> dict[str, str]:
    tags = dict(raw or {})
    if len(tags) > MAX_TAGS:
        raise m.LOG_TOO_MANY_TAGS(limit=MAX_TAGS)
    return tags


def _missing(exc: KeyError, group: str, stream: str | None = None) -> FireboxError:
    """The store's KeyError(name) for a missing group or stream, as CloudWatch words it;
    any other KeyError is a bug, re-raised as it is."""
    if exc.args == (group,):
        return m.LOG_GROUP_NOT_FOUND()
    if stream is not None and exc.args == (stream,):
        return m.LOG_STREAM_NOT_FOUND()
    raise exc


def _encode_token(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise m.LOG_NEXT_TOKEN_INVALID() from None


def _offset(params: dict[str, Any]) -> int:
    token: str | None = params.get("nextToken")
    if token is None:
        return 0
    value = _decode_token(token)
    if not isinstance(value, dict) or not isinstance(value.get("offset"), int):
        raise m.LOG_NEXT_TOKEN_INVALID()
    return int(value["offset"])


def _page(items: list[Any], offset: int, limit: int) -> tuple[list[Any], str | None]:
    page = items[offset : offset + limit]
    more = offset + limit < len(items)
    return page, _encode_token({"offset": offset + limit}) if more else None


# --- shapes ---------------------------------------------------------------------------


class LogsApi:
    def __init__(self, store: LogStore, region: str, account_id: str) -> None:
        self.store = store
        self.arn_prefix = f"arn:aws:logs:{region}:{account_id}:log-group:"

    async def _run(self, fn: Callable[..., Any], group: str, *args: Any) -> Any:
        """Run a store call on ``group`` off the loop; the store's KeyError for a missing
        group is ResourceNotFound."""
        try:
            return await asyncio.to_thread(fn, group, *args)
        except KeyError as exc:
            raise _missing(exc, group) from None

    def _group_shape(self, g: GroupInfo) -> dict[str, Any]:
        out: dict[str, Any] = {
            "logGroupName": g.name,
            "creationTime": g.created_ms,
            "metricFilterCount": 0,
            "arn": f"{self.arn_prefix}{g.name}:*",
            "logGroupArn": f"{self.arn_prefix}{g.name}",
            "storedBytes": g.stored_bytes,
            "logGroupClass": "STANDARD",
        }
        if g.retention_days is not None:
            out["retentionInDays"] = g.retention_days
        return out

    def _stream_shape(self, group: str, s: StreamInfo) -> dict[str, Any]:
        out: dict[str, Any] = {
            "logStreamName": s.name,
            "creationTime": s.created_ms,
            "arn": f"{self.arn_prefix}{group}:log-stream:{s.name}",
            "storedBytes": s.stored_bytes,
        }
        if s.first_ts is not None:
            out["firstEventTimestamp"] = s.first_ts
            out["lastEventTimestamp"] = s.last_ts
        if s.last_ingest_ms is not None:
            out["lastIngestionTime"] = s.last_ingest_ms
        return out

    # --- groups and streams -----------------------------------------------------------

    async def create_log_group(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _group_name(params["logGroupName"])
        tags = _tags(params.get("tags"))
        if not await self._run(self.store.create_group, name):
            raise m.LOG_GROUP_EXISTS()
        if tags:
            await self._run(self.store.set_tags, name, tags)
        return {}

    async def delete_log_group(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _group_name(params["logGroupName"])
        if not await self._run(self.store.delete_group, name):
            raise m.LOG_GROUP_NOT_FOUND()
        return {}

    async def describe_log_groups(self, params: dict[str, Any]) -> dict[str, Any]:
        prefix = params.get("logGroupNamePrefix")
        pattern = params.get("logGroupNamePattern")
        if prefix is not None and pattern is not None:
            raise m.LOG_PREFIX_AND_PATTERN()
        limit = params.get("limit") or 50
        groups: list[GroupInfo] = await asyncio.to_thread(self.store.groups, prefix or "")
        if pattern:
            groups = [g for g in groups if pattern.lower() in g.name.lower()]
        idents: list[str] | None = params.get("logGroupIdentifiers")
        if idents:
            names = {i.split(":")[6] if i.count(":") >= 6 else i for i in idents}
            groups = [g for g in groups if g.name in names]
        page, token = _page(groups, _offset(params), limit)
        out: dict[str, Any] = {"logGroups": [self._group_shape(g) for g in page]}
        if token:
            out["nextToken"] = token
        return out

    async def put_retention_policy(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _group_name(params["logGroupName"])
        days = params["retentionInDays"]
        if days not in RETENTION_DAYS:
            raise LogsInvalidParameter(
                f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to "
                f"satisfy constraint: Member must satisfy enum value set: "
                f"[{', '.join(str(d) for d in RETENTION_DAYS)}]"
            )
        if not await self._run(self.store.set_retention, name, days):
            raise m.LOG_GROUP_NOT_FOUND()
        return {}

    async def delete_retention_policy(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _group_name(params["logGroupName"])
        if not await self._run(self.store.set_retention, name, None):
            raise m.LOG_GROUP_NOT_FOUND()
        return {}

    async def create_log_stream(self, params: dict[str, Any]) -> dict[str, Any]:
        group = _group_name(params["logGroupName"])
        stream = _stream_name(params["logStreamName"])
        created = await self._run(self.store.create_stream, group, stream)
        if not created:
            raise m.LOG_STREAM_EXISTS()
        return {}

    async def delete_log_stream(self, params: dict[str, Any]) -> dict[str, Any]:
        group = _group_name(params["logGroupName"])
        stream = _stream_name(params["logStreamName"])
        deleted = await self._run(self.store.delete_stream, group, stream)
        if not deleted:
            raise m.LOG_STREAM_NOT_FOUND()
        return {}

    async def describe_log_streams(self, params: dict[str, Any]) -> dict[str, Any]:
        group = _group_param(params)
        prefix = params.get("logStreamNamePrefix")
        order = params.get("orderBy") or "LogStreamName"
        if prefix is not None and order == "LastEventTime":
            raise m.LOG_ORDER_WITH_PREFIX()
        limit = params.get("limit") or 50
        streams: list[StreamInfo] = await self._run(self.store.streams, group)
        if prefix:
            streams = [s for s in streams if s.name.startswith(prefix)]
        if order == "LastEventTime":
            streams.sort(key=lambda s: (s.last_ts or 0, s.name))
        if params.get("descending") is True:
            streams.reverse()
        page, token = _page(streams, _offset(params), limit)
        out: dict[str, Any] = {"logStreams": [self._stream_shape(group, s) for s in page]}
        if token:
            out["nextToken"] = token
        return out

    # --- tags -----------------------------------------------------------------------

    def _arn_group(self, params: dict[str, Any]) -> str:
        arn: str = params["resourceArn"]
        parts = arn.split(":")
        if len(parts) < 7 or parts[0] != "arn" or parts[5] != "log-group":
            raise m.LOG_RESOURCE_ARN_INVALID(arn=arn)
        return _group_name(parts[6])

    async def _tag(self, group: str, add: dict[str, str], remove: list[str]) -> None:
        current: dict[str, str] = await self._run(self.store.tags, group)
        if len(set(current) - set(remove) | set(add)) > MAX_TAGS:
            raise m.LOG_TOO_MANY_TAGS({"resourceName": group}, limit=MAX_TAGS)
        await self._run(self.store.set_tags, group, add, remove)

    async def tag_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        await self._tag(self._arn_group(params), _tags(params["tags"]), [])
        return {}

    async def untag_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        await self._tag(self._arn_group(params), {}, list(params["tagKeys"]))
        return {}

    async def list_tags_for_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"tags": await self._run(self.store.tags, self._arn_group(params))}

    async def tag_log_group(self, params: dict[str, Any]) -> dict[str, Any]:
        group = _group_name(params["logGroupName"])
        await self._tag(group, _tags(params["tags"]), [])
        return {}

    async def untag_log_group(self, params: dict[str, Any]) -> dict[str, Any]:
        group = _group_name(params["logGroupName"])
        await self._tag(group, {}, list(params["tags"]))
        return {}

    async def list_tags_log_group(self, params: dict[str, Any]) -> dict[str, Any]:
        group = _group_name(params["logGroupName"])
        return {"tags": await self._run(self.store.tags, group)}

    # --- events -----------------------------------------------------------------------

    # A batch is 1 MiB of messages; its JSON adds escapes and the fields of each event.
    @body_limit(4 * 1024 * 1024)
    async def put_log_events(self, params: dict[str, Any]) -> dict[str, Any]:
        group = _group_name(params["logGroupName"])
        stream = _stream_name(params["logStreamName"])
        events = [(int(e["timestamp"]), e["message"]) for e in params["logEvents"]]
        if any(b[0] < a[0] for a, b in zip(events, events[1:], strict=False)):
            raise m.LOG_EVENTS_ORDER()
        if events[-1][0] - events[0][0] > DAY_MS:
            raise m.LOG_EVENTS_SPAN()
        groups = await asyncio.to_thread(self.store.groups, group)
        info = next((g for g in groups if g.name == group), None)
        if info is None:
            raise m.LOG_GROUP_NOT_FOUND()
        streams: list[StreamInfo] = await self._run(self.store.streams, group)
        if not any(s.name == stream for s in streams):
            raise m.LOG_STREAM_NOT_FOUND()
        now = int(time.time() * 1000)
        too_old = now - 14 * DAY_MS
        expired = now - info.retention_days * DAY_MS if info.retention_days else None
        too_new = now + 2 * 3600 * 1000
        rejected: dict[str, int] = {}
        first_ok = 0
        while first_ok < len(events) and events[first_ok][0] < too_old:
            first_ok += 1
        if first_ok:
            rejected["tooOldLogEventEndIndex"] = first_ok
        if expired is not None:
            end = first_ok
            while end < len(events) and events[end][0] < expired:
                end += 1
            if end > first_ok:
                rejected["expiredLogEventEndIndex"] = end
                first_ok = end
        last_ok = first_ok
        while last_ok < len(events) and events[last_ok][0] <= too_new:
            last_ok += 1
        if last_ok < len(events):
            rejected["tooNewLogEventStartIndex"] = last_ok
        accepted = events[first_ok:last_ok]
        if accepted:
            await asyncio.to_thread(self.store.append, group, stream, accepted)
        out: dict[str, Any] = {}
        if rejected:
            out["rejectedLogEventsInfo"] = rejected
        return out

    async def get_log_events(self, params: dict[str, Any]) -> dict[str, Any]:
        group = _group_param(params)
        stream = _stream_name(params["logStreamName"])
        start = params.get("startTime")
        end = params.get("endTime")
        limit = params.get("limit") or MAX_EVENTS
        token = params.get("nextToken")
        cursor: Cursor | None = None
        if token is not None:
            direction, cursor = _parse_event_token(token)
            forward = direction == "f"
        else:
            forward = params.get("startFromHead") is True
        read_forward = forward
        try:
            if token is None and not forward:
                # The newest events first: read backward from the end, keep time order.
                events = await asyncio.to_thread(
                    self.store.read, group, stream, start, end, None, False, limit
                )
            else:
                events = await asyncio.to_thread(
                    self.store.read, group, stream, start, end, cursor, read_forward, limit
                )
        except KeyError as exc:
            raise _missing(exc, group, stream) from None
        events = _cap_bytes(events, keep_newest=not forward)
        if events:
            fwd, back = events[-1].cursor, events[0].cursor
        else:
            fwd = back = cursor or (0, 0)
        return {
            "events": [
                {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingest_ms}
                for e in events
            ],
            "nextForwardToken": f"f/{fwd[0]:013d}/{fwd[1]:020d}",
            "nextBackwardToken": f"b/{back[0]:013d}/{back[1]:020d}",
        }

    async def filter_log_events(self, params: dict[str, Any]) -> dict[str, Any]:
        group = _group_param(params)
        names = params.get("logStreamNames")
        prefix = params.get("logStreamNamePrefix")
        if names is not None and prefix is not None:
            raise m.LOG_STREAMS_NAMES_AND_PREFIX()
        start = params.get("startTime")
        end = params.get("endTime")
        limit = params.get("limit") or MAX_EVENTS
        pattern = params.get("filterPattern")
        match = compile_pattern(pattern)
        after: Cursor | None = None
        token = params.get("nextToken")
        if token is not None:
            value = _decode_token(token)
            if not (
                isinstance(value, list)
                and len(value) == 2
                and all(isinstance(v, int) for v in value)
            ):
                raise m.LOG_NEXT_TOKEN_INVALID()
            after = (value[0], value[1])
        try:
            events, resume = await asyncio.to_thread(
                self.store.filter,
                group,
                names,
                prefix,
                start,
                end,
                after,
                match,
                limit,
                FILTER_SCAN_LIMIT,
                required_terms(pattern),
                FILTER_BUDGET_S,
            )
        except KeyError as exc:
            raise _missing(exc, group) from None
        capped = _cap_bytes(events, keep_newest=False)
        if len(capped) < len(events):
            resume = capped[-1].cursor
        searched = sorted({e.stream for e in capped} | set(names or []))
        out: dict[str, Any] = {
            "events": [
                {
                    "logStreamName": e.stream,
                    "timestamp": e.timestamp,
                    "message": e.message,
                    "ingestionTime": e.ingest_ms,
                    "eventId": str(e.event_id),
                }
                for e in capped
            ],
            "searchedLogStreams": [
                {"logStreamName": n, "searchedCompletely": resume is None} for n in searched
            ],
        }
        if resume is not None:
            out["nextToken"] = _encode_token(list(resume))
        return out


def _parse_event_token(token: str) -> tuple[str, Cursor]:
    parts = token.split("/")
    if (
        len(parts) != 3
        or parts[0] not in ("f", "b")
        or not (parts[1].isdigit() and parts[2].isdigit())
    ):
        raise m.LOG_NEXT_TOKEN_INVALID()
    return parts[0], (int(parts[1]), int(parts[2]))


def _cap_bytes(events: list[StoredEvent], keep_newest: bool) -> list[StoredEvent]:
    """A response holds at most 1 MB of messages, as CloudWatch's does."""
    total = 0
    order = reversed(range(len(events))) if keep_newest else range(len(events))
    kept = 0
    for i in order:
        total += len(events[i].message) + 26
        if total > MAX_RESPONSE_BYTES and kept:
            break
        kept += 1
    return events[len(events) - kept :] if keep_newest else events[:kept]


def register(web_app: web.Application, api: LogsApi) -> None:
    handlers: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
        "CreateLogGroup": api.create_log_group,
        "DeleteLogGroup": api.delete_log_group,
        "DescribeLogGroups": api.describe_log_groups,
        "PutRetentionPolicy": api.put_retention_policy,
        "DeleteRetentionPolicy": api.delete_retention_policy,
        "CreateLogStream": api.create_log_stream,
        "DeleteLogStream": api.delete_log_stream,
        "DescribeLogStreams": api.describe_log_streams,
        "PutLogEvents": api.put_log_events,
        "GetLogEvents": api.get_log_events,
        "FilterLogEvents": api.filter_log_events,
        "TagResource": api.tag_resource,
        "UntagResource": api.untag_resource,
        "ListTagsForResource": api.list_tags_for_resource,
        "TagLogGroup": api.tag_log_group,
        "UntagLogGroup": api.untag_log_group,
        "ListTagsLogGroup": api.list_tags_log_group,
    }
    for op, handler in handlers.items():
        web_app[TARGETS_KEY][PREFIX + op] = json11_operation("logs", op, handler)
