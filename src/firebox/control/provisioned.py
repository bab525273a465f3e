"""Provisioned concurrency: N initialised environments kept ready for a version or alias.

Configs live in the metadata store (kind ``provisioned``, key ``{name}/{qualifier}``) and
are re-applied when the server starts. The control-plane calls (Put/Get/Delete/List) run
in worker threads like the rest of the control plane; allocation runs on the event loop,
where the worker manager lives: ``IN_PROGRESS`` until the environments have finished Init,
then ``READY`` (or ``FAILED`` with a reason when Init fails). A config follows its target:
an alias that moves to another version gets new environments, a deleted version, alias or
function takes its config with it, and an environment lost to a crash is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from firebox.arn import LATEST
from firebox.control.catalog import Catalog, now_iso, paginate
from firebox.control.resolve import Resolver
from firebox.errors import ResourceNotFound
from firebox.messages import (
    ALIAS_ARN_NOT_FOUND,
    PROVISIONED_ALIAS_ON_PROVISIONED_VERSION,
    PROVISIONED_NEEDS_QUALIFIER,
    PROVISIONED_NOT_FOUND,
    PROVISIONED_ON_LATEST,
    PROVISIONED_OVER_RESERVED,
    PROVISIONED_OVER_UNRESERVED,
    PROVISIONED_VERSION_UNDER_ALIAS,
    PROVISIONED_WEIGHTED_ALIAS,
)
from firebox.store.metadata.base import Doc

if TYPE_CHECKING:
    from firebox.workers.manager import WorkerManager

log = logging.getLogger(__name__)

PROVISIONED = "provisioned"
# How a config's environments are, as the member of the fleet that keeps them saw last.
PROVISIONED_STATUS = "provisioned_status"


def _key(name: str, qualifier: str) -> str:
    return f"{name}/{qualifier}"


class ProvisionedConcurrency:
    def __init__(
        self,
        catalog: Catalog,
        resolver: Resolver,
        manager: WorkerManager | None,
        account_limit: int,
        min_unreserved: int,
    ) -> None:
        self.c = catalog
        self.resolver = resolver
        self.manager = manager
        self.account_limit = account_limit
        self.min_unreserved = min_unreserved
        self._loop: asyncio.AbstractEventLoop | None = None
        # Live status per config key: (Status, StatusReason); the store keeps the request.
        self._status: dict[str, tuple[str, str | None]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        catalog.listeners.append(self._on_change)
        catalog.on_delete.append(self._on_delete)
        if manager is not None:
            manager.provisioned_lost = self._on_lost

    # --- control plane (worker threads) -------------------------------------------------

    def put(self, name: str, qualifier: str, requested: int) -> Doc:
        """PutProvisionedConcurrencyConfig (Qualifier and the count were checked against the
        model at the edge)."""
        if qualifier == LATEST:
            raise PROVISIONED_ON_LATEST()
        with self.c.lock:
            version = self._target_version(name, qualifier)
            function = self.c.function_doc(name)
            reserved = function.get("reserved")
            others = 0
            for _, doc in self.c.store.list(PROVISIONED, prefix=f"{name}/"):
                if doc["Qualifier"] == qualifier:
                    continue
                others += doc["Requested"]
                try:
                    other_version = self._target_version(name, doc["Qualifier"])
                except ResourceNotFound:
                    continue
                if other_version == version:
                    if qualifier.isdigit():
                        raise PROVISIONED_VERSION_UNDER_ALIAS()
                    raise PROVISIONED_ALIAS_ON_PROVISIONED_VERSION()
            if reserved is not None and requested + others > reserved:
                raise PROVISIONED_OVER_RESERVED()
            limit = self.account_limit - self.min_unreserved
            if reserved is None and requested + others > limit:
                raise PROVISIONED_OVER_UNRESERVED(unreserved=limit)
            doc = {
                "FunctionName": name,
                "Qualifier": qualifier,
                "Requested": requested,
                "LastModified": now_iso(),
            }
            self.c.store.put(PROVISIONED, _key(name, qualifier), doc)
        self._status[_key(name, qualifier)] = ("IN_PROGRESS", None)
        self._schedule(name, qualifier)
        return self._public(doc)

    def get(self, name: str, qualifier: str) -> Doc:
        self._check_qualifier(name, qualifier)
        doc = self.c.store.get(PROVISIONED, _key(name, qualifier))
        if doc is None:
            raise PROVISIONED_NOT_FOUND()
        return self._public(doc)

    def delete(self, name: str, qualifier: str) -> None:
        self._check_qualifier(name, qualifier)
        with self.c.lock:
            if not self.c.store.delete(PROVISIONED, _key(name, qualifier)):
                raise PROVISIONED_NOT_FOUND()
        self._schedule(name, qualifier)

    def list(self, name: str, marker: str | None, max_items: int | None) -> Doc:
        self.c.function_doc(name)
        docs = [d for _, d in self.c.store.list(PROVISIONED, prefix=f"{name}/")]
        page, next_marker = paginate(docs, marker, max_items, key=lambda d: d["Qualifier"])
        items = [{"FunctionArn": self.c.arn(name, d["Qualifier"]), **self._public(d)} for d in page]
        out: Doc = {"ProvisionedConcurrencyConfigs": items}
        if next_marker:
            out["NextMarker"] = next_marker
        return out

    def _check_qualifier(self, name: str, qualifier: str) -> None:
        """Get and Delete name a published version or an alias that exists."""
        if qualifier == LATEST:
            raise PROVISIONED_NEEDS_QUALIFIER()
        self._target_version(name, qualifier, check_weights=False)

    def _target_version(self, name: str, qualifier: str, check_weights: bool = True) -> str:
        """The version a qualifier points at (ResourceNotFound if it, or its function, does
        not exist: Lambda names the qualified ARN either way)."""
        if qualifier.isdigit():
            self.c.version_doc(name, qualifier)
            return qualifier
        alias = self.c.alias_doc(name, qualifier, ALIAS_ARN_NOT_FOUND)
        if check_weights and (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights"):
            raise PROVISIONED_WEIGHTED_ALIAS()
        return str(alias["FunctionVersion"])

    def _public(self, doc: Doc) -> Doc:
        key = _key(doc["FunctionName"], doc["Qualifier"])
        if self.manager is not None and self._loop is not None:
            # This process keeps the environments: its own view is the freshest.
            status, reason = self._status.get(key, ("IN_PROGRESS", None))
            ready = self.manager.provisioned_ready(key)
        else:
            # Another member of the fleet keeps them, and records how they are.
            seen = self.c.store.get(PROVISIONED_STATUS, key) or {}
            status, reason = seen.get("Status", "IN_PROGRESS"), seen.get("StatusReason")
            ready = int(seen.get("Ready", 0))
        ready = min(ready, doc["Requested"])
        out: Doc = {
            "RequestedProvisionedConcurrentExecutions": doc["Requested"],
            "AvailableProvisionedConcurrentExecutions": ready,
            "AllocatedProvisionedConcurrentExecutions": ready,
            "Status": status,
            "LastModified": doc["LastModified"],
        }
        if reason:
            out["StatusReason"] = reason
        return out

    # --- reacting to the rest of the control plane (any thread) -------------------------

    def _on_change(self, name: str) -> None:
        for _, doc in self.c.store.list(PROVISIONED, prefix=f"{name}/"):
            self._schedule(name, doc["Qualifier"])

    def _on_delete(self, name: str) -> None:
        for key, doc in self.c.store.list(PROVISIONED, prefix=f"{name}/"):
            self.c.store.delete(PROVISIONED, key)
            self._schedule(name, doc["Qualifier"])

    def _on_lost(self, owner: str) -> None:
        name, _, qualifier = owner.partition("/")
        self._schedule(name, qualifier)

    # --- allocation (event loop) --------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the server's loop and re-apply every stored config."""
        self._loop = loop
        for _, doc in self.c.store.list(PROVISIONED):
            self._schedule(doc["FunctionName"], doc["Qualifier"])

    async def stop(self) -> None:
        self._loop = None
        for task in list(self._tasks.values()):
            task.cancel()
        self._tasks.clear()

    async def move_to(self, manager: WorkerManager) -> None:
        """A new worker generation takes over: provision every config there (the old one
        keeps serving until then, and drains after)."""
        old, self.manager = self.manager, manager
        manager.provisioned_lost = self._on_lost
        if self._loop is None:
            return
        docs = await asyncio.to_thread(self.c.store.list, PROVISIONED)
        for _, doc in docs:
            self._start_task(doc["FunctionName"], doc["Qualifier"])
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if old is not None:
            for _, doc in docs:
                old.unprovision(_key(doc["FunctionName"], doc["Qualifier"]))

    def schedule_key(self, key: str) -> None:
        """A config changed elsewhere in the fleet (its store key): reconcile it here, if
        this process keeps the environments."""
        name, _, qualifier = key.partition("/")
        self._schedule(name, qualifier)

    def _schedule(self, name: str, qualifier: str) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._start_task(name, qualifier)
        else:
            loop.call_soon_threadsafe(self._start_task, name, qualifier)

    def _start_task(self, name: str, qualifier: str) -> None:
        key = _key(name, qualifier)
        previous = self._tasks.get(key)
        if previous is not None and not previous.done():
            previous.cancel()
        self._tasks[key] = asyncio.ensure_future(self._reconcile(name, qualifier, previous))

    async def _reconcile(
        self, name: str, qualifier: str, previous: asyncio.Task[None] | None
    ) -> None:
        """Make the environments match the stored config (or its absence)."""
        key = _key(name, qualifier)
        if previous is not None:
            try:
                await previous
            except (asyncio.CancelledError, Exception):
                pass
        doc = await asyncio.to_thread(self.c.store.get, PROVISIONED, key)
        if doc is not None:
            try:
                fv = await self.resolver.resolve(name, qualifier)
            except ResourceNotFound:
                # The version or alias went away: so does its config.
                await asyncio.to_thread(self.c.store.delete, PROVISIONED, key)
                doc = None
        manager = self.manager
        if manager is None:
            return
        if doc is None:
            manager.unprovision(key)
            self._status.pop(key, None)
            await asyncio.to_thread(self.c.store.delete, PROVISIONED_STATUS, key)
            return
        requested = int(doc["Requested"])
        if manager.provisioned_ready(key) < requested:
            self._status[key] = ("IN_PROGRESS", None)
        try:
            ready = await manager.provision(key, fv, requested)
        except Exception as exc:  # a backend failure must not kill the loop's task quietly
            log.exception("provisioning %s failed", key)
            self._status[key] = ("FAILED", f"FUNCTION_ERROR_INIT_FAILURE: {exc}")
            await self._record(key, 0)
            return
        if ready >= requested:
            self._status[key] = ("READY", None)
        else:
            self._status[key] = (
                "FAILED",
                "FUNCTION_ERROR_INIT_FAILURE: the function failed to initialize "
                f"({ready} of {requested} environments ready)",
            )
        await self._record(key, ready)

    async def _record(self, key: str, ready: int) -> None:
        """Write down how a config's environments are, for the rest of the fleet."""
        status, reason = self._status.get(key, ("IN_PROGRESS", None))
        seen = {"Status": status, "StatusReason": reason, "Ready": ready}
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.c.store.put, PROVISIONED_STATUS, key, seen)
