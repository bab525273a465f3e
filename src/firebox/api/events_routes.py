"""The EventBridge API (JSON 1.1, ``X-Amz-Target: AWSEvents.*``) on the Lambda endpoint.

Every operation's parameters are checked against botocore's model first (operations.py);
the rule store's calls run in worker threads because the store is SQLite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from firebox.api.operations import json11_operation
from firebox.api.server import TARGETS_KEY
from firebox.triggers.rules import Rules

Params = dict[str, Any]


def register(web_app: web.Application, rules: Rules) -> None:

    def blocking(fn: Callable[[Params], Params]) -> Callable[[Params], Awaitable[Params]]:
        async def handler(params: Params) -> Params:
            return await asyncio.to_thread(fn, params)

        return handler

    async def put_events(params: Params) -> Params:
        results, events = rules.build_events(params)
        pairs = await asyncio.to_thread(
            lambda: [(e, rules.matching_targets(e)) for e in events if e is not None]
        )
        for event, targets in pairs:
            for rule, target in targets:
                await rules.deliver(rule, target, event)
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedEntryCount": failed, "Entries": results}

    targets = web_app[TARGETS_KEY]
    for op, fn in {
        "PutRule": rules.put_rule,
        "DescribeRule": rules.describe_rule,
        "ListRules": rules.list_rules,
        "EnableRule": rules.enable_rule,
        "DisableRule": rules.disable_rule,
        "DeleteRule": rules.delete_rule,
        "PutTargets": rules.put_targets,
        "RemoveTargets": rules.remove_targets,
        "ListTargetsByRule": rules.list_targets,
        "ListRuleNamesByTarget": rules.list_rule_names_by_target,
        "TestEventPattern": rules.test_event_pattern,
    }.items():
        targets[f"AWSEvents.{op}"] = json11_operation("events", op, blocking(fn))
    targets["AWSEvents.PutEvents"] = json11_operation("events", "PutEvents", put_events)
