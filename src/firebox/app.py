"""App: builds the stores, the worker manager and the servers from Settings, and owns
their lifetimes. It wires parts together; it holds no business logic."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from aiohttp import web

from firebox.api import (
    async_routes,
    function_settings_routes,
    lambda_routes,
    logs_routes,
    metrics_route,
    provisioned_routes,
    streaming_routes,
    usage_routes,
)
from firebox.api.server import LINGERING_TIME_S, FrontDoor, build_api, presign_code_url
from firebox.arn import LATEST
from firebox.control.aliases import Aliases
from firebox.control.catalog import ALIAS, FUNCTION, VERSION, Catalog
from firebox.control.event_invoke import EventInvokeConfigs
from firebox.control.function_settings import FunctionSettings
from firebox.control.functions import Functions
from firebox.control.layers import Layers
from firebox.control.provisioned import PROVISIONED, ProvisionedConcurrency
from firebox.control.resolve import Resolver
from firebox.control.versions import Versions
from firebox.credentials import RootCredentials, load_credentials
from firebox.fleet.directory import RegistryDirectory
from firebox.fleet.gather import FleetGather
from firebox.fleet.leader import LeaseKeeper
from firebox.fleet.worker_role import WorkerRole, member_prefix
from firebox.invoke.enqueue import EventIntake, GroupCommitter
from firebox.invoke.pollers import Pollers
from firebox.invoke.sync import Invoker
from firebox.observe.live import LiveView
from firebox.observe.logs import LogWriter, sweep_retention_forever
from firebox.observe.metering import Meter, Prices
from firebox.observe.metrics import LiveState, Metrics
from firebox.sandbox.base import SandboxBackend, SandboxUnavailable
from firebox.settings import Settings
from firebox.store.code.base import CodeStore
from firebox.store.code.files import FileCodeStore
from firebox.store.fleet.base import Fleet
from firebox.store.logs.base import LogStore
from firebox.store.logs.sqlite import SqliteLogStore
from firebox.store.metadata.base import MetadataStore
from firebox.store.metadata.feed import Change
from firebox.store.metadata.sqlite import SqliteMetadataStore
from firebox.store.metering.base import UsageStore
from firebox.store.metering.sqlite import SqliteUsageStore
from firebox.store.postgres import PostgresDatabase
from firebox.store.private import private_dir
from firebox.store.queue.base import EventQueue
from firebox.store.queue.sqlite import SqliteEventQueue
from firebox.triggers import Triggers
from firebox.triggers.aws import AwsClients
from firebox.triggers.destinations import Destinations
from firebox.workers import wire
from firebox.workers.concurrency import Concurrency, ConcurrencyLimiter, SharedConcurrency
from firebox.workers.manager import WorkerManager
from firebox.workers.placement import MemberView, Placement
from firebox.workers.remote import RemoteWorker
from firebox.workers.service import WorkerService
from firebox.workers.wire_server import WireServer

log = logging.getLogger(__name__)

# What survives a change to a function: its (name, version, revision)s, and every
# function's reserved concurrency.
_Live = tuple[set[tuple[str, str, str]], dict[str, int]]


def make_backend(settings: Settings) -> SandboxBackend:
    """The isolation backend named in settings (the one place names become classes)."""
    work = settings.data_dir / "sandbox"
    if settings.process_index >= 0:
        # Each process of --processes has its own templates, roots and runtime caches.
        work = work / f"p{settings.process_index}"
    if settings.sandbox == "unsandboxed":
        if not settings.allow_unsandboxed:
            raise SandboxUnavailable(
                "the 'unsandboxed' backend runs functions without isolation: pass "
                "--allow-unsandboxed (FIREBOX_ALLOW_UNSANDBOXED=1) to use it for development"
            )
        from firebox.sandbox.unsandboxed import UnsandboxedBackend

        return UnsandboxedBackend(work)
    from firebox.sandbox.process import ProcessBackend

    return ProcessBackend(settings, work)


# --- stores: the one place where settings choose backends ------------------------------
#
# database_url set: every durable store but code in that PostgreSQL database, through one
# pool (a separate queue_url gets a pool of its own); unset: SQLite files in the data dir.
# code_store_url set: code in that bucket, cached in the data dir; unset: files there.


def make_databases(settings: Settings) -> dict[str, PostgresDatabase]:
    """One PostgreSQL database (pool, migrated schema) per distinct URL in settings."""
    urls = dict.fromkeys(u for u in (settings.database_url, settings.queue_url) if u)
    opened: dict[str, PostgresDatabase] = {}
    try:
        for url in urls:
            opened[url] = PostgresDatabase(url)
    except BaseException:
        for db in opened.values():
            db.close()
        raise
    return opened


def make_metadata(settings: Settings, dbs: dict[str, PostgresDatabase]) -> MetadataStore:
    if settings.database_url:
        from firebox.store.metadata.postgres import PostgresMetadataStore

        return PostgresMetadataStore(dbs[settings.database_url])
    return SqliteMetadataStore(
        settings.data_dir / "metadata.db", settings.test_commit_delay_s, shared=settings.fleet
    )


def make_log_store(settings: Settings, dbs: dict[str, PostgresDatabase]) -> LogStore:
    if settings.database_url:
        from firebox.store.logs.postgres import PostgresLogStore

        return PostgresLogStore(dbs[settings.database_url])
    return SqliteLogStore(settings.data_dir / "logs.db")


def make_usage_store(settings: Settings, dbs: dict[str, PostgresDatabase]) -> UsageStore:
    if settings.database_url:
        from firebox.store.metering.postgres import PostgresUsageStore

        return PostgresUsageStore(dbs[settings.database_url])
    return SqliteUsageStore(settings.data_dir / "metering.db")


def make_queue(settings: Settings, dbs: dict[str, PostgresDatabase]) -> EventQueue:
    """The async event queue backend named in settings."""
    if settings.queue_database_url:
        import socket

        from firebox.store.queue.postgres import PostgresEventQueue

        # A node's identity outlives restarts (host + data dir, and which of its processes):
        # it releases its own leases, and only its own.
        node = f"{socket.gethostname()}:{settings.data_dir}:{max(settings.process_index, 0)}"
        return PostgresEventQueue(dbs[settings.queue_database_url], node)
    # With --processes, each process is an owner of its own (its index survives restarts).
    owner = str(settings.process_index) if settings.process_index >= 0 else ""
    return SqliteEventQueue(settings.data_dir / "queue.db", owner)


def make_fleet(settings: Settings, dbs: dict[str, PostgresDatabase]) -> Fleet | None:
    """The store the fleet coordinates through (registry, leases, reservations); None for
    a lone process, which keeps all of that in memory."""
    if not settings.fleet:
        return None
    if settings.database_url:
        from firebox.store.fleet.postgres import PostgresFleet

        return PostgresFleet(dbs[settings.database_url])
    from firebox.store.fleet.sqlite import SqliteFleet

    return SqliteFleet(settings.data_dir / "fleet.db")


def make_code_store(settings: Settings) -> CodeStore:
    """Code packages: files in the data dir, or a bucket cached in the data dir."""
    local = FileCodeStore(settings.data_dir / "code")
    local.sweep_partial()
    if settings.code_store_url:
        from firebox.store.code.s3 import S3CodeStore

        return S3CodeStore(settings.code_store_url, local)
    return local


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        roles = settings.roles
        data = settings.data_dir
        # Only the server enters the data dir: sandboxes get their code and layers by
        # bind mounts made as root, never through this path.
        private_dir(data)
        creds = load_credentials(settings)
        assert creds is not None
        self.credentials: RootCredentials = creds
        # Presigned code URLs are keyed by a secret derived from, not equal to, the root one.
        self.url_secret = hashlib.sha256(
            b"firebox-code-url:" + creds.secret_access_key.encode()
        ).digest()
        self.member = member_prefix(settings)
        self.databases = make_databases(settings)
        self.metadata = make_metadata(settings, self.databases)
        self.code = make_code_store(settings)
        self.log_store = make_log_store(settings, self.databases)
        self.log_writer = LogWriter(self.log_store)
        self.fleet = make_fleet(settings, self.databases)
        self.catalog = Catalog(settings, self.metadata, self.code, self.code_url)
        self.functions = Functions(self.catalog)
        self.versions = Versions(self.catalog)
        self.aliases = Aliases(self.catalog)
        self.layers = Layers(self.catalog)
        self.function_settings = FunctionSettings(self.catalog)
        self.resolver = Resolver(self.catalog)
        self.limiter: Concurrency = (
            SharedConcurrency(self.fleet.reservations, self.member, settings.account_concurrency)
            if self.fleet is not None
            else ConcurrencyLimiter(settings.account_concurrency)
        )
        # In a fleet every process listens on the internal protocol: workers for
        # invocations, every member for the calls that gather fleet-wide views (metrics).
        self.wire: WireServer | None = None
        if self.fleet is not None:
            self.wire = WireServer(wire.fleet_key(creds.secret_access_key))
            self.wire.calls["metrics"] = self._metrics_call
        # The worker role: this process's environments, behind the internal protocol.
        self.backend: SandboxBackend | None = None
        self.workers: WorkerRole | None = None
        if "worker" in roles:
            backend = self.backend = make_backend(settings)
            self.workers = WorkerRole(
                settings,
                lambda: WorkerManager(settings, backend, self.code, self.log_writer.append),
                self._logs_durable,
                self.fleet,
                self.wire,
            )
            self.workers.on_generation.append(self._on_worker_generation)
        # Placement: the local worker alone, or the fleet's workers from the registry.
        self.directory: RegistryDirectory | None = None
        self._remotes: dict[str, RemoteWorker] = {}
        if self.fleet is not None:
            self.directory = RegistryDirectory(self.fleet.registry, settings.heartbeat_s)
        self.placement = Placement(
            self.workers.current if self.workers is not None else None,
            self.directory,
            self._remote,
        )
        self.invoker = Invoker(self.resolver, self.placement, self.limiter)
        self.provisioned = ProvisionedConcurrency(
            self.catalog,
            self.resolver,
            self.workers.current.manager if self.workers is not None else None,
            settings.account_concurrency,
            settings.min_unreserved_concurrency,
        )
        self.metrics = Metrics()
        self.meter = Meter(
            make_usage_store(settings, self.databases),
            Prices(settings.price_per_gb_s, settings.price_per_million_requests),
        )
        self.invoker.observers += [self.metrics.observe, self.meter.observe]
        self.catalog.listeners.append(self._on_function_changed)
        # Asynchronous invocation: configs, the durable queue, intake and pollers.
        self.event_configs = EventInvokeConfigs(self.catalog)
        self.event_queue = make_queue(settings, self.databases)
        self.committer = GroupCommitter(self.event_queue)
        self.intake = EventIntake(self.resolver, self.committer)
        # AWS's services as destinations (and, for the triggers, as event sources).
        self.aws = AwsClients(settings.region)
        self.destinations = Destinations(self.aws, self.intake.submit)
        self.pollers = Pollers(
            settings,
            self.event_queue,
            self.invoker,
            self.resolver,
            self.event_configs,
            self.catalog.arn,
            self.log_writer,
            lambda arn, body, attributes: self.destinations.send(arn, body, attributes=attributes),
        )
        self.committer.on_written.append(self.pollers.notify)
        # A deleted function's queued events go to the failure path (dead letters).
        self.catalog.on_delete.append(self.pollers.on_function_deleted)
        self.live = LiveView(self.metadata, self.limiter, lambda: self.manager, self.event_queue)
        self.gather = (
            FleetGather(
                self.directory, lambda: self.wire.advertised if self.wire else "", self.remote_at
            )
            if self.directory is not None
            else None
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        # Ordering of the reads behind _apply_change: a counter (next() on it is atomic),
        # and the last one applied.
        self._change_seq = itertools.count()
        self._retired_at: dict[str, int] = {}
        self._reserved_at = -1
        self._change_tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        # Function URLs, policies, EventBridge rules, event source mappings.
        self.triggers = Triggers(
            settings,
            self.catalog,
            self.invoker,
            self.intake.submit,
            self.log_writer,
            self.secret_for,
            self.aws,
            self.destinations,
        )

    async def _logs_durable(self) -> None:
        """Every log line appended so far is on disk (a short wait lets invocations that
        finish together share one commit)."""
        await self.log_writer.durable(within_s=0.005)

    @property
    def manager(self) -> WorkerManager | None:
        """This process's current worker's environments (None without the worker role)."""
        return self.workers.current.manager if self.workers is not None else None

    def _remote(self, member: MemberView) -> RemoteWorker:
        return self.remote_at(member.name, member.address)

    def remote_at(self, name: str, address: str) -> RemoteWorker:
        """A connection to another member's internal protocol (one per process: members
        that share an address share it)."""
        remote = self._remotes.get(address)
        if remote is None:
            remote = self._remotes[address] = RemoteWorker(
                name,
                address,
                wire.fleet_key(self.credentials.secret_access_key),
                self.member,
            )
        return remote

    async def _on_worker_generation(self, old: WorkerService, new: WorkerService) -> None:
        self.placement.local = new
        await self.provisioned.move_to(new.manager)

    # --- wiring helpers -------------------------------------------------------------

    def secret_for(self, access_key_id: str) -> str | None:
        if access_key_id == self.credentials.access_key_id:
            return self.credentials.secret_access_key
        return None

    def code_url(self, sha: str) -> str:
        return presign_code_url(self.url_secret, self.settings.endpoint_url, sha)

    def _on_function_changed(self, name: str) -> None:
        """catalog listener, called by the thread that made the write, right after it.

        What survives the change is read here, off the loop (a read can wait behind another
        write's fsync), and handed to the loop before the write's caller gets its reply: a
        client that changed a function sees the change in force on its next invoke."""
        loop = self._loop
        if loop is None:
            return
        seq = next(self._change_seq)
        if threading.get_ident() == self._loop_thread:
            # A write made on the loop itself: read in a worker thread instead.
            task = loop.create_task(self._apply_change_later(name, seq))
            self._change_tasks.add(task)
            task.add_done_callback(self._change_tasks.discard)
            return
        try:
            live = self._live_revisions(name)
        except Exception:
            log.exception("reading the state of function %s after a change failed", name)
            return
        loop.call_soon_threadsafe(self._apply_change, name, seq, live)

    def _on_store_change(self, change: Change) -> None:
        """A committed write anywhere in the fleet (the metadata store's change feed, in
        the store's thread): drop what caches hold of it, and let the data plane follow."""
        self.resolver.on_change(change)
        self.event_configs.on_change(change)
        self.triggers.on_store_change(change)
        kind, name = change.kind, change.key.split("/", 1)[0]
        if not kind:
            for env_name in (
                {e.fv.name for e in self.manager.environments()} if self.manager else ()
            ):
                self._on_function_changed(env_name)
            self._on_function_changed("")
        elif kind in (FUNCTION, VERSION, ALIAS):
            self._on_function_changed(name)
        elif kind == PROVISIONED and not change.prefix:
            self.provisioned.schedule_key(change.key)

    async def _apply_change_later(self, name: str, seq: int) -> None:
        try:
            live = await asyncio.to_thread(self._live_revisions, name)
        except Exception:
            log.exception("reading the state of function %s after a change failed", name)
            return
        self._apply_change(name, seq, live)

    def _apply_change(self, name: str, seq: int, live: _Live) -> None:
        """Retire environments of revisions that no longer exist; refresh reservations.

        Reads of concurrent changes can finish out of order: a result is applied only if
        none read later was applied already."""
        keep, reserved = live
        if seq > self._retired_at.get(name, -1):
            self._retired_at[name] = seq
            if name and self.manager is not None:
                self.manager.retire(name, keep)
        if seq > self._reserved_at:
            self._reserved_at = seq
            self.limiter.set_reserved(reserved)

    def _live_revisions(self, name: str) -> _Live:
        """The (function, version, revision)s of the function that exist, and every
        function's reserved concurrency."""
        doc = self.metadata.get(FUNCTION, name)
        keep: set[tuple[str, str, str]] = set()
        if doc is not None:
            keep.add((name, LATEST, doc["config"]["RevisionId"]))
            for _, v in self.metadata.list(VERSION, prefix=f"{name}/"):
                keep.add((name, v["config"]["Version"], v["config"]["RevisionId"]))
        return keep, self.functions.reserved_by_function()

    def _routes(self) -> list[Callable[[web.Application], None]]:
        """Each API's routes, given what they need (and nothing of App itself)."""
        s = self.settings
        return [
            partial(
                lambda_routes.register,
                api=lambda_routes.LambdaApi(
                    self.functions,
                    self.versions,
                    self.aliases,
                    self.layers,
                    self.invoker,
                    self.resolver,
                    self.intake,
                ),
            ),
            partial(function_settings_routes.register, settings=self.function_settings),
            partial(
                async_routes.register,
                api=async_routes.AsyncApi(self.event_configs, self.intake, self.event_queue),
            ),
            partial(
                logs_routes.register,
                api=logs_routes.LogsApi(self.log_store, s.region, s.account_id),
            ),
            partial(
                metrics_route.register,
                api=metrics_route.MetricsApi(self.metrics, self.live, self.gather, self.member),
            ),
            partial(usage_routes.register, meter=self.meter),
            partial(provisioned_routes.register, provisioned=self.provisioned),
            partial(streaming_routes.register, invoker=self.invoker),
            *self.triggers.registrars,
        ]

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        roles, s = self.settings.roles, self.settings
        spawn = self._tasks.append
        if self.backend is not None:
            await self.backend.start()
        self.limiter.set_reserved(self.functions.reserved_by_function())
        # Other processes' and nodes' writes reach this process's caches.
        self._unsubscribe = self.metadata.subscribe(self._on_store_change)
        spawn(asyncio.create_task(self.log_writer.run()))
        if self.wire is not None:
            await self.wire.start(s.internal_host, s.internal_port, advertise_host=s.advertise_host)
        if self.workers is not None:
            await self.workers.start()
            spawn(asyncio.create_task(self.workers.run()))
        elif self.fleet is not None:
            spawn(asyncio.create_task(self._presence(self.fleet)))
        if self.directory is not None:
            await self.directory.refresh()
            spawn(asyncio.create_task(self.directory.run()))
        if isinstance(self.limiter, SharedConcurrency):
            spawn(asyncio.create_task(self._maintain_reservations(self.limiter)))
        if self.workers is not None:
            if self.fleet is None:
                self.provisioned.start(self._loop)
            else:
                # Provisioned environments are kept by one worker of the fleet.
                spawn(asyncio.create_task(self._under_lease("provisioned", self._provision)))
        if "api" in roles:
            front = FrontDoor(
                self.secret_for, s.max_clock_skew_s, s.region, self.url_secret, self.code
            )
            web_app = build_api(front, self._routes())
            self._runner = web.AppRunner(
                web_app, access_log=None, handle_signals=False, lingering_time=LINGERING_TIME_S
            )
            await self._runner.setup()
            site = web.TCPSite(
                self._runner, s.host, s.port, reuse_address=True, reuse_port=s.processes > 1
            )
            await site.start()
        spawn(asyncio.create_task(sweep_retention_forever(self.log_store, s.log_retention_sweep_s)))
        spawn(asyncio.create_task(self.meter.run(s.metering_flush_s)))
        if "poller" in roles:
            spawn(asyncio.create_task(self.pollers.run()))
        await self.triggers.start(
            urls="api" in roles,
            pollers="poller" in roles,
            under_lease=self._under_lease if self.fleet is not None else None,
        )

    async def _presence(self, fleet: Fleet) -> None:
        """A member without the worker role is in the registry too (with no capacity, so
        placement never picks it), for fleet-wide views such as /metrics."""
        assert self.wire is not None
        name = f"{self.member}:0"
        try:
            while True:
                try:
                    state = await asyncio.to_thread(fleet.registry.heartbeat, name, 0, 0)
                    if state is None:
                        await asyncio.to_thread(
                            fleet.registry.register, name, self.wire.advertised, 0
                        )
                except Exception:
                    log.exception("heartbeat failed")
                await asyncio.sleep(self.settings.heartbeat_s)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(fleet.registry.remove, name)

    async def _metrics_call(self) -> dict[str, Any]:
        """Another member gathers the fleet's metrics: this process's own counters."""
        return {"node": self.member, "families": self.metrics.families(await self._live())}

    async def _live(self) -> LiveState:
        return await self.live.state()

    async def _maintain_reservations(self, limiter: SharedConcurrency) -> None:
        while True:
            try:
                await limiter.maintain()
            except Exception:
                log.exception("renewing concurrency reservations failed")
            await asyncio.sleep(self.settings.heartbeat_s)

    async def _under_lease(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` on one process of the fleet at a time (fleet/leader.py)."""
        assert self.fleet is not None
        await LeaseKeeper(self.fleet.leases, name, self.member, work).run()

    async def _provision(self) -> None:
        assert self._loop is not None
        self.provisioned.start(self._loop)
        try:
            await asyncio.Event().wait()
        finally:
            await self.provisioned.stop()

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self.triggers.stop()
        # In the reverse order of their start, each gone before the next stops: the pollers
        # record what already ran while the log writer still commits its lines.
        for task in reversed(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.provisioned.stop()
        if self.workers is not None:
            await self.workers.stop()
        if self.wire is not None:
            await self.wire.close()
        for remote in self._remotes.values():
            remote.close()
        if isinstance(self.limiter, SharedConcurrency):
            with contextlib.suppress(Exception):
                await self.limiter.close()
        self.aws.close()
        # Before the backend: its shutdown can fail, and these must reach the disk.
        await self.log_writer.flush()
        self.log_store.close()
        await self.meter.close()
        if self.backend is not None:
            await self.backend.close()
        self.event_queue.close()
        self.metadata.close()
        if self.fleet is not None:
            self.fleet.close()
        for db in self.databases.values():
            db.close()

    async def serve_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        await self.start()
        if on_ready:
            on_ready()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await self.stop()
