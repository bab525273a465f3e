"""EventBridge rules and targets on the default event bus, and PutEvents routing.

Keys in the metadata store:
  rule         {name}            the rule as DescribeRule returns it (+ private fields)
  rule-target  {name}/{id}       one target as ListTargetsByRule returns it
  schedule     {name}            the scheduler's state: anchor, next and last firing time

Targets are Lambda functions. Delivery is asynchronous (the durable async queue) and, as in
AWS, needs a resource policy on the function that lets events.amazonaws.com invoke it
(``aws lambda add-permission --principal events.amazonaws.com --source-arn <rule arn>``).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from firebox.arn import FunctionRef, parse_function_ref
from firebox.errors import FireboxError
from firebox.messages import (
    EVENT_BUS_NOT_FOUND,
    EVENT_INVALID,
    NEXT_TOKEN_INVALID,
    RULE_HAS_TARGETS,
    RULE_NEEDS_PATTERN_OR_SCHEDULE,
    RULE_NOT_FOUND,
    TARGET_INPUT_NOT_JSON,
    TARGET_INPUT_PATH,
    TARGET_ONE_INPUT,
    TARGETS_LIMIT,
)
from firebox.store.metadata.base import Delete, Doc, MetadataStore, Put
from firebox.triggers import schedule_expr
from firebox.triggers.patterns import matches, parse_pattern

if TYPE_CHECKING:
    from firebox.control.policies import Policies
    from firebox.triggers.submit import Submit

log = logging.getLogger(__name__)

RULE, RULE_TARGET, SCHEDULE = "rule", "rule-target", "schedule"
MAX_TARGETS = 5


def iso_z(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_path(doc: Any, path: str) -> Any:
    """The subset of JSONPath EventBridge's InputPath uses: ``$``, ``$.a.b``, ``$.a[0]``."""
    if path == "$":
        return doc
    if not path.startswith("$."):
        raise TARGET_INPUT_PATH(path=path)
    cur = doc
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path[2:]):
        if part.startswith("["):
            idx = int(part[1:-1])
            cur = cur[idx] if isinstance(cur, list) and idx < len(cur) else None
        else:
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is None:
            return None
    return cur


def target_input(target: Doc, event: Doc, rule_arn: str = "") -> bytes:
    """What a target receives: Input, InputPath, InputTransformer, or the whole event."""
    if target.get("Input") is not None:
        return str(target["Input"]).encode()
    if target.get("InputPath"):
        return json.dumps(json_path(event, target["InputPath"])).encode()
    transformer = target.get("InputTransformer")
    if transformer:
        text = str(transformer.get("InputTemplate", ""))
        for key, path in (transformer.get("InputPathsMap") or {}).items():
            value = json_path(event, path)
            # Strings go in as raw text (the template supplies any quotes), the rest as JSON.
            text = text.replace(f"<{key}>", value if isinstance(value, str) else json.dumps(value))
        text = text.replace("<aws.events.rule-arn>", rule_arn)
        text = text.replace("<aws.events.rule-name>", rule_arn.rsplit("/", 1)[-1])
        text = text.replace("<aws.events.event>", json.dumps(event))
        return text.encode()
    return json.dumps(event).encode()


class Rules:
    def __init__(
        self,
        store: MetadataStore,
        region: str,
        account_id: str,
        policies: Policies,
        submit: Submit,
    ) -> None:
        self.store = store
        self.region = region
        self.account = account_id
        self.policies = policies
        # Hands an event to the durable async queue (InvocationType Event).
        self.submit = submit
        self.lock = threading.RLock()

    def arn(self, name: str) -> str:
        return f"arn:aws:events:{self.region}:{self.account}:rule/{name}"

    def _bus(self, params: Doc) -> None:
        bus = params.get("EventBusName") or "default"
        if bus not in ("default", f"arn:aws:events:{self.region}:{self.account}:event-bus/default"):
            raise EVENT_BUS_NOT_FOUND(bus=bus)

    def _name(self, params: Doc, field: str = "Name") -> str:
        """A rule's name (required, and checked against the model's pattern, at the edge)."""
        name: str = params[field]
        return name

    def _rule(self, name: str) -> Doc:
        doc = self.store.get(RULE, name)
        if doc is None:
            raise RULE_NOT_FOUND(name=name, bus="default")
        return doc

    @staticmethod
    def _public(doc: Doc) -> Doc:
        return {k: v for k, v in doc.items() if not k.startswith("_")}

    # --- rules ---------------------------------------------------------------------------

    def put_rule(self, params: Doc) -> Doc:
        self._bus(params)
        name = self._name(params)
        schedule = params.get("ScheduleExpression")
        pattern = params.get("EventPattern")
        if not schedule and not pattern:
            raise RULE_NEEDS_PATTERN_OR_SCHEDULE()
        if schedule:
            schedule_expr.parse(schedule)
        if pattern:
            parse_pattern(pattern)
        state = params.get("State") or "ENABLED"
        with self.lock:
            old = self.store.get(RULE, name)
            doc: Doc = {
                "Name": name,
                "Arn": self.arn(name),
                "State": state,
                "EventBusName": "default",
                "CreatedBy": self.account,
                "_created": old["_created"] if old else time.time(),
            }
            if pattern:
                doc["EventPattern"] = pattern
            if schedule:
                doc["ScheduleExpression"] = schedule
            for field in ("Description", "RoleArn"):
                if params.get(field) is not None:
                    doc[field] = params[field]
            writes: list[Put | Delete] = [Put(RULE, name, doc)]
            if (
                old is None
                or old.get("ScheduleExpression") != schedule
                or (old["State"] == "DISABLED" and state != "DISABLED")
            ):
                writes.append(Delete(SCHEDULE, name))
            self.store.batch(writes)
        return {"RuleArn": doc["Arn"]}

    def describe_rule(self, params: Doc) -> Doc:
        self._bus(params)
        return self._public(self._rule(self._name(params)))

    def _set_state(self, params: Doc, state: str) -> Doc:
        self._bus(params)
        name = self._name(params)
        with self.lock:
            doc = self._rule(name)
            writes: list[Put | Delete] = [Put(RULE, name, {**doc, "State": state})]
            if doc["State"] == "DISABLED" and state == "ENABLED":
                # Ticks missed while disabled are not owed: start the schedule afresh.
                writes.append(Delete(SCHEDULE, name))
            self.store.batch(writes)
        return {}

    def enable_rule(self, params: Doc) -> Doc:
        return self._set_state(params, "ENABLED")

    def disable_rule(self, params: Doc) -> Doc:
        return self._set_state(params, "DISABLED")

    def delete_rule(self, params: Doc) -> Doc:
        self._bus(params)
        name = self._name(params)
        with self.lock:
            if self.store.get(RULE, name) is None:
                return {}  # AWS: deleting a missing rule succeeds
            if self.store.list(RULE_TARGET, prefix=f"{name}/", limit=1):
                raise RULE_HAS_TARGETS()
            self.store.batch([Delete(RULE, name), Delete(SCHEDULE, name)])
        return {}

    def _page(self, items: list[Any], params: Doc, key: str) -> Doc:
        token = params.get("NextToken") or "0"
        if not token.isdigit():
            raise NEXT_TOKEN_INVALID()
        start = int(token)
        limit = int(params.get("Limit") or 100)
        out: Doc = {key: items[start : start + limit]}
        if start + limit < len(items):
            out["NextToken"] = str(start + limit)
        return out

    def list_rules(self, params: Doc) -> Doc:
        self._bus(params)
        prefix = params.get("NamePrefix") or ""
        # ListRules' items (Rule) lack DescribeRule's CreatedBy.
        rules = [
            {k: v for k, v in self._public(d).items() if k != "CreatedBy"}
            for _, d in self.store.list(RULE, prefix=prefix)
        ]
        return self._page(rules, params, "Rules")

    def list_rule_names_by_target(self, params: Doc) -> Doc:
        self._bus(params)
        arn = params.get("TargetArn")
        names = sorted({d["_rule"] for _, d in self.store.list(RULE_TARGET) if d["Arn"] == arn})
        return self._page(names, params, "RuleNames")

    # --- targets -------------------------------------------------------------------------

    def put_targets(self, params: Doc) -> Doc:
        self._bus(params)
        name = self._name(params, "Rule")
        targets: list[Doc] = params["Targets"]
        failed: list[Doc] = []
        with self.lock:
            self._rule(name)
            existing = {d["Id"] for _, d in self.store.list(RULE_TARGET, prefix=f"{name}/")}
            new_ids = {t["Id"] for t in targets} - existing
            if len(existing) + len(new_ids) > MAX_TARGETS:
                raise TARGETS_LIMIT()
            writes: list[Put | Delete] = []
            for t in targets:
                tid, arn = t["Id"], t["Arn"]
                error = None
                if ":lambda:" not in arn:
                    error = (
                        "ValidationException",
                        f"Target {tid}: only Lambda function targets are supported.",
                    )
                elif (
                    sum(
                        1
                        for k in ("Input", "InputPath", "InputTransformer")
                        if t.get(k) is not None
                    )
                    > 1
                ):
                    raise TARGET_ONE_INPUT(target=tid)
                else:
                    try:
                        parse_function_ref(arn)
                    except FireboxError as exc:
                        error = ("ValidationException", exc.message)
                if error:
                    failed.append(
                        {"TargetId": tid, "ErrorCode": error[0], "ErrorMessage": error[1]}
                    )
                    continue
                if t.get("Input") is not None:
                    try:
                        json.loads(t["Input"])
                    except ValueError:
                        raise TARGET_INPUT_NOT_JSON() from None
                doc = {k: v for k, v in t.items() if v is not None}
                doc["_rule"] = name
                writes.append(Put(RULE_TARGET, f"{name}/{tid}", doc))
            self.store.batch(writes)
        return {"FailedEntryCount": len(failed), "FailedEntries": failed}

    def remove_targets(self, params: Doc) -> Doc:
        self._bus(params)
        name = self._name(params, "Rule")
        ids = params.get("Ids") or []
        failed: list[Doc] = []
        with self.lock:
            self._rule(name)
            writes: list[Put | Delete] = []
            for tid in ids:
                if self.store.get(RULE_TARGET, f"{name}/{tid}") is None:
                    failed.append(
                        {
                            "TargetId": tid,
                            "ErrorCode": "ResourceNotFoundException",
                            "ErrorMessage": f"Target {tid} does not exist.",
                        }
                    )
                else:
                    writes.append(Delete(RULE_TARGET, f"{name}/{tid}"))
            self.store.batch(writes)
        return {"FailedEntryCount": len(failed), "FailedEntries": failed}

    def targets(self, name: str) -> list[Doc]:
        return [self._public(d) for _, d in self.store.list(RULE_TARGET, prefix=f"{name}/")]

    def list_targets(self, params: Doc) -> Doc:
        self._bus(params)
        name = self._name(params, "Rule")
        self._rule(name)
        return self._page(self.targets(name), params, "Targets")

    # --- events --------------------------------------------------------------------------

    def test_event_pattern(self, params: Doc) -> Doc:
        pattern = parse_pattern(params.get("EventPattern") or "")
        try:
            event = json.loads(params.get("Event") or "")
        except ValueError:
            raise EVENT_INVALID() from None
        return {"Result": matches(pattern, event)}

    def build_events(self, params: Doc) -> tuple[list[Doc], list[Doc | None]]:
        """PutEvents' result entries, and the event to route for each (None if failed)."""
        entries: list[Doc] = params["Entries"]
        results: list[Doc] = []
        events: list[Doc | None] = []
        for entry in entries:
            problem = None
            bus = entry.get("EventBusName") or "default"
            detail: Any = None
            if bus not in (
                "default",
                f"arn:aws:events:{self.region}:{self.account}:event-bus/default",
            ):
                problem = ("NotAuthorizedForSourceException", f"Event bus {bus} does not exist.")
            elif not entry.get("Source"):
                problem = (
                    "InvalidArgument",
                    "Parameter Source is not valid. Reason: Source is a required argument.",
                )
            elif not entry.get("DetailType"):
                problem = (
                    "InvalidArgument",
                    "Parameter DetailType is not valid. Reason: DetailType is a required argument.",
                )
            else:
                try:
                    detail = json.loads(entry.get("Detail") or "")
                    if not isinstance(detail, dict):
                        raise ValueError
                except ValueError:
                    problem = ("MalformedDetail", "Detail is malformed.")
            if problem:
                results.append({"ErrorCode": problem[0], "ErrorMessage": problem[1]})
                events.append(None)
                continue
            when = entry.get("Time")
            stamp = iso_z(float(when)) if isinstance(when, int | float) else iso_z(time.time())
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": entry["DetailType"],
                "source": entry["Source"],
                "account": self.account,
                "time": stamp,
                "region": self.region,
                "resources": list(entry.get("Resources") or []),
                "detail": detail,
            }
            results.append({"EventId": event["id"]})
            events.append(event)
        return results, events

    def matching_targets(self, event: Doc) -> list[tuple[Doc, Doc]]:
        """(rule, target) pairs an event goes to."""
        out = []
        for _, rule in self.store.list(RULE):
            if rule["State"] == "DISABLED" or not rule.get("EventPattern"):
                continue
            try:
                pattern = json.loads(rule["EventPattern"])
            except ValueError:
                continue
            if matches(pattern, event):
                out += [(rule, t) for t in self.targets(rule["Name"])]
        return out

    async def deliver(self, rule: Doc, target: Doc, event: Doc) -> bool:
        """Hand one event to one target, asynchronously; False if it could not go."""
        try:
            ref: FunctionRef = parse_function_ref(target["Arn"])
        except FireboxError:
            return False
        if not await self.policies.allows(
            ref.name,
            ref.qualifier,
            "lambda:InvokeFunction",
            service="events.amazonaws.com",
            source_arn=rule["Arn"],
            source_account=self.account,
        ):
            log.warning(
                "rule %s: function %s has no policy allowing events.amazonaws.com to invoke it",
                rule["Name"],
                target["Arn"],
            )
            return False
        try:
            payload = target_input(target, event, rule["Arn"])
            await self.submit(ref, payload)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning(
                "rule %s: could not build the input for %s: %s", rule["Name"], target["Arn"], exc
            )
            return False
        except FireboxError as exc:
            log.warning(
                "rule %s: could not invoke %s: %s", rule["Name"], target["Arn"], exc.message
            )
            return False
        return True
