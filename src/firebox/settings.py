"""The one settings object: defaults < config file < FIREBOX_* environment < flags.

Nothing else in the server reads ``os.environ``; everything is passed down from here.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "FIREBOX_"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# S3's bucket naming rules, loosely: 3-63 of lowercase letters, digits, dots and hyphens.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
ROLES = ("api", "worker", "poller")


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


@dataclass(slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 9000
    data_dir: Path = Path(".firebox")
    region: str = "us-east-1"
    account_id: str = "000000000000"
    # Root credentials; generated into the data dir on first start when unset.
    access_key_id: str | None = None
    secret_access_key: str | None = None
    # Allowed clock skew for SigV4 (AWS allows 15 minutes).
    max_clock_skew_s: int = 900

    # Isolation backend: "process" (namespaces + cgroups) or "unsandboxed" (development only).
    sandbox: str = "process"
    allow_unsandboxed: bool = False
    # Outbound network for functions (can also be turned off per function by env var).
    network: bool = True
    # Outbound destinations functions may reach beyond the internet: CIDRs, comma
    # separated. Link-local (cloud metadata), loopback, private ranges and this host's own
    # addresses are refused unless listed here (sandbox/egress.py).
    egress_allow: str = ""
    # Freeze an environment between invokes (cgroup freezer), so that nothing of a
    # function runs while it is not billed; thawed when the next invoke arrives.
    freeze_idle: bool = True

    # Execution environments.
    keepalive_s: float = 300.0
    # Adapt the keep-alive per function to its rhythm (workers/keepalive.py).
    keepalive_adaptive: bool = True
    max_lifetime_s: float = 4 * 3600.0
    account_concurrency: int = 1000
    min_unreserved_concurrency: int = 100
    # Pre-forked sandboxes waiting to learn their function, per template.
    pool_size: int = 2
    # Each Python function forks its environments from a fresh interpreter (template) of
    # its own, so that no function shares another's hash secret or address layout
    # (sandbox/templates.py); off: one template per Python version, for hosts whose
    # functions all trust each other. Spares: templates started ahead for new functions.
    template_per_function: bool = True
    template_spares: int = 2
    # Memory (the sum of the MemorySize of its environments) a worker hosts before
    # placement sends cold starts elsewhere; 0: twice the host's physical memory, since
    # MemorySize is a limit, not what environments use.
    worker_memory_mb: int = 0

    # Asynchronous invocation.
    # Async invokes run at once; past 8 the sync path, not the queue, limits the drain
    # (bench/bench_async.py: 4 → 1,010/s, 8 → 1,300/s, 16 → 1,200/s).
    async_pollers: int = 8
    async_retry_delays_s: tuple[float, ...] = (60.0, 120.0)
    async_throttle_delay_s: float = 1.0
    # Throttled / system-error retries back off exponentially up to this (Lambda: 5 minutes).
    async_throttle_max_delay_s: float = 300.0
    # Floor of MaximumEventAgeInSeconds (AWS: 60); tests lower it to see expiry quickly.
    async_min_event_age_s: int = 60
    # Where the event queue lives when it is not in database_url: "" = with everything
    # else (SQLite in the data dir, queue.db, or database_url); a postgresql://… URL = a
    # PostgreSQL queue several nodes can share. Kept as an alias from before database_url.
    queue_url: str = ""

    # Schedules: how often the scheduler looks for due rules.
    schedule_tick_s: float = 1.0
    # Test-only: every rate() period is divided by this (60 makes rate(1 minute) fire each
    # second). cron() schedules are not scaled.
    schedule_time_scale: float = 1.0

    # Function URLs are served on their own port: -1 is the API port + 1 (9001 by
    # default), 0 turns the URL server off.
    url_port: int = -1

    # Event source mappings: how long a poller waits before reconnecting to a broker
    # that is down or refused it.
    esm_retry_delay_s: float = 2.0
    # The URL S3-compatible stores and SNS post notifications to (their push endpoints,
    # triggers/push.py); "" = the address the API listens on.
    public_url: str = ""

    # Metering prices (USD), AWS's public x86 prices by default.
    price_per_gb_s: float = 0.0000166667
    price_per_million_requests: float = 0.20
    # How often metered totals are written to the data dir, and expired logs deleted.
    metering_flush_s: float = 1.0
    log_retention_sweep_s: float = 600.0

    # What one invocation (or Init phase) of a function may write to its log, counted as
    # CloudWatch counts (message bytes + 26 per event): past it the rest is dropped and
    # one line in the log says so. Lines are cut into events of at most 256 KB.
    log_bytes_per_invoke: int = 10 * 1024 * 1024
    # A Runtime API request head that has not fully arrived after this long is cut off
    # (a runtime on loopback sends it in one write; a slowloris trickles it).
    runtime_api_head_timeout_s: float = 10.0
    # Durable state. "" = SQLite files in the data dir (one machine, zero setup); a
    # postgresql://… URL = metadata, queue, logs, metering and the fleet's registry,
    # leases and reservations in that database, shared by every node (the [postgres]
    # extra). Its schema is migrated at start (store/migrations/).
    database_url: str = ""
    # Code packages and layers. "" = files in the data dir; s3://BUCKET[/PREFIX] = an
    # S3-compatible bucket (endpoint and credentials the standard AWS way:
    # AWS_ENDPOINT_URL_S3, the credential chain), cached on each node's disk.
    code_store_url: str = ""

    log_level: str = "info"

    # Test-only: every metadata write sleeps this long before its commit, holding the
    # write lock, as a slow disk's fsync would (tests check nothing else waits on it).
    test_commit_delay_s: float = 0.0

    # The fleet (fleet/): which roles this process plays — a comma list of api (the APIs
    # and function URLs), worker (hosts execution environments), poller (the async queue,
    # schedules, event source mappings) — or all of them.
    role: str = "all"
    # Server processes on this machine sharing its ports (fleet/supervisor.py): one
    # process uses one core.
    processes: int = 1
    # Set by the supervisor in each of its processes (0 … processes-1); -1 otherwise.
    process_index: int = -1
    # Where this process's worker listens for front ends (the internal protocol), and
    # the host other nodes reach it at (default: the same).
    internal_host: str = "127.0.0.1"
    internal_port: int = 0
    advertise_host: str = ""
    # A worker's lease (Lambda's: 14 hours): then it takes nothing new, drains and leaves
    # (a fresh one takes its place in the same process).
    worker_max_lifetime_s: float = 14 * 3600.0
    # How often a member of the fleet says it is alive; one silent for heartbeat_s ×
    # HEARTBEAT_MISSES is taken for dead.
    heartbeat_s: float = 1.0

    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def queue_database_url(self) -> str:
        """The PostgreSQL URL of the event queue, or "" for SQLite in the data dir."""
        return self.queue_url or self.database_url

    @property
    def endpoint_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def roles(self) -> frozenset[str]:
        """The roles this process plays ("all" spelled out)."""
        named = {r.strip() for r in self.role.split(",") if r.strip()}
        return frozenset(ROLES) if "all" in named else frozenset(named)

    @property
    def fleet(self) -> bool:
        """Is this process one of several sharing state (so placement, counting and
        leases go through the shared store)? A lone process keeps them in memory."""
        return (
            self.processes > 1
            or self.process_index >= 0
            or self.roles != frozenset(ROLES)
            or bool(self.database_url)
        )

    def validate(self) -> Settings:
        if not 0 < self.port < 65536:
            raise SettingsError(f"port must be 1-65535, got {self.port}")
        if self.url_port == -1:
            self.url_port = self.port + 1 if self.port < 65535 else 0
        if not 0 <= self.url_port < 65536 or self.url_port == self.port:
            raise SettingsError(
                f"url_port must be 1-65535 (0: no function URLs) and differ from port, got "
                f"{self.url_port}"
            )
        if self.queue_url and not self.queue_url.startswith(_POSTGRES_SCHEMES):
            raise SettingsError("queue_url must be empty (SQLite) or a postgresql:// URL")
        if self.database_url and not self.database_url.startswith(_POSTGRES_SCHEMES):
            raise SettingsError(
                "database_url must be empty (SQLite in the data dir) or a postgresql:// URL"
            )
        if self.code_store_url:
            bucket, _, _ = self.code_store_url.removeprefix("s3://").partition("/")
            if not self.code_store_url.startswith("s3://") or not _BUCKET.fullmatch(bucket):
                raise SettingsError(
                    "code_store_url must be empty (files in the data dir) or "
                    f"s3://BUCKET[/PREFIX] with a valid bucket name, got {self.code_store_url!r}"
                )
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise SettingsError(f"public_url must be an http(s):// URL, got {self.public_url!r}")
        if self.sandbox not in ("process", "unsandboxed"):
            raise SettingsError(f"sandbox must be 'process' or 'unsandboxed', got {self.sandbox!r}")
        if not (len(self.account_id) == 12 and self.account_id.isdigit()):
            raise SettingsError("account_id must be 12 digits")
        if self.log_bytes_per_invoke < 64 * 1024:
            raise SettingsError("log_bytes_per_invoke must be at least 65536")
        if self.account_concurrency < 1:
            raise SettingsError("account_concurrency must be at least 1")
        if self.min_unreserved_concurrency > self.account_concurrency:
            raise SettingsError("min_unreserved_concurrency exceeds account_concurrency")
        try:
            for cidr in filter(None, (c.strip() for c in self.egress_allow.split(","))):
                ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise SettingsError(
                f"egress_allow must be CIDRs separated by commas (10.0.0.0/8,192.168.1.7): {exc}"
            ) from None
        if not 0 <= self.test_commit_delay_s <= 10:
            raise SettingsError("test_commit_delay_s must be 0-10 (a test-only setting)")
        self.data_dir = Path(self.data_dir).absolute()
        roles = {r.strip() for r in self.role.split(",") if r.strip()}
        if not roles or not roles <= set(ROLES) | {"all"}:
            raise SettingsError(
                f"role must be a comma list of {', '.join(ROLES)} or all, got {self.role!r}"
            )
        if not 1 <= self.processes <= 256:
            raise SettingsError(f"processes must be 1-256, got {self.processes}")
        if self.heartbeat_s <= 0 or self.worker_max_lifetime_s <= 0:
            raise SettingsError("heartbeat_s and worker_max_lifetime_s must be positive")
        if self.worker_memory_mb <= 0:
            pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
            self.worker_memory_mb = 2 * pages * page_size // (1024 * 1024)
        return self


def _coerce(name: str, raw: Any, default: Any) -> Any:
    """Turn a string (env var) or TOML value into the type of the field's default."""
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}: expected a boolean, got {raw!r}")
    if isinstance(default, tuple):
        items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
        try:
            return tuple(float(x) for x in items if str(x).strip())
        except ValueError as exc:
            raise SettingsError(f"{name}: expected numbers separated by commas") from exc
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from exc
    if isinstance(default, Path):
        return Path(str(raw)).expanduser()
    return raw if raw is None else str(raw)


def load_settings(
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Build Settings from a config file, FIREBOX_* variables and flags (highest wins)."""
    environ = dict(os.environ) if environ is None else environ
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    defaults = Settings()
    values: dict[str, Any] = {}
    known = {f.name for f in fields(Settings) if f.name != "extra"}

    path = config_file or (
        Path(environ[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in environ else None
    )
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config file {path}: {exc}") from exc
        for key, value in data.items():
            key = key.replace("-", "_")
            if key not in known:
                raise SettingsError(f"unknown setting {key!r} in {path}")
            values[key] = _coerce(key, value, getattr(defaults, key))

    for name in known:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            values[name] = _coerce(env_name, environ[env_name], getattr(defaults, name))

    for name, value in flags.items():
        if name not in known:
            raise SettingsError(f"unknown setting {name!r}")
        values[name] = _coerce(name, value, getattr(defaults, name))

    return dataclasses.replace(defaults, **values).validate()
