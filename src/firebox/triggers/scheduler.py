"""The scheduler: fires rules with a ScheduleExpression, once per period, across restarts.

Every ``settings.schedule_tick_s`` it looks at the enabled scheduled rules. Each has a
persisted state (``schedule`` kind: anchor, next, last); a rule whose ``next`` has passed
fires once — however many periods were missed while the server was down — and its next
time is computed from now. The state is written after the events were handed to the
durable async queue, so a crash in between fires that tick again rather than losing it.

``settings.schedule_time_scale`` divides every rate() period (test-only: 60 turns
``rate(1 minute)`` into one firing a second).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from firebox.errors import FireboxError
from firebox.store.metadata.base import Doc
from firebox.triggers import schedule_expr
from firebox.triggers.rules import RULE, SCHEDULE, Rules, iso_z

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, rules: Rules, tick_s: float, time_scale: float = 1.0) -> None:
        self.rules = rules
        self.tick_s = tick_s
        self.time_scale = time_scale
        self.fired = 0

    def scheduled_event(self, rule: Doc, when: float) -> Doc:
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.rules.account,
            "time": iso_z(when),
            "region": self.rules.region,
            "resources": [rule["Arn"]],
            "detail": {},
        }

    def _due(self, now: float) -> list[tuple[Doc, Doc, float | None]]:
        """(rule, state, next time after this firing) for every rule due now.

        Rules seen for the first time get their state written, without firing."""
        due = []
        scale = self.time_scale or 1.0
        for name, rule in self.rules.store.list(RULE):
            expr = rule.get("ScheduleExpression")
            if not expr or rule["State"] == "DISABLED":
                continue
            try:
                sched = schedule_expr.parse(expr)
            except FireboxError:
                continue
            state = self.rules.store.get(SCHEDULE, name)
            if state is None:
                anchor = float(rule.get("_created") or now)
                state = {
                    "anchor": anchor,
                    "next": sched.next_after(now, anchor, scale),
                    "last": None,
                }
                self.rules.store.put(SCHEDULE, name, state)
                continue
            if state["next"] is not None and state["next"] <= now:
                due.append((rule, state, sched.next_after(now, state["anchor"], scale)))
        return due

    async def tick(self) -> None:
        now = time.time()
        due = await asyncio.to_thread(self._due, now)
        for rule, state, next_time in due:
            event = self.scheduled_event(rule, state["next"])
            targets = await asyncio.to_thread(self.rules.targets, rule["Name"])
            for target in targets:
                await self.rules.deliver(rule, target, event)
            self.fired += 1
            new_state = {**state, "last": state["next"], "next": next_time}
            # The rule may have been changed or deleted meanwhile: only advance the state
            # if it still belongs to the same schedule.
            current = await asyncio.to_thread(self.rules.store.get, RULE, rule["Name"])
            if current is not None and current.get("ScheduleExpression") == rule.get(
                "ScheduleExpression"
            ):
                await asyncio.to_thread(self.rules.store.put, SCHEDULE, rule["Name"], new_state)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler tick failed")
            await asyncio.sleep(self.tick_s)
