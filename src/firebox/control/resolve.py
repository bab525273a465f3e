"""Resolving (function, qualifier) to the exact version an invoke runs, from memory.

The invoke path must not touch the database: resolved versions are cached here and the
cache is dropped for a function whenever the control plane changes it. A miss reads the
metadata store in a worker thread, never on the event loop (a read can wait behind a
write's fsync), and concurrent misses for the same target share that one read.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from firebox.arn import LATEST
from firebox.control.catalog import ALIAS, FUNCTION, VERSION, Catalog
from firebox.store.metadata.base import Doc
from firebox.store.metadata.feed import Change


@dataclass(frozen=True, slots=True)
class FunctionVersion:
    """Everything needed to run one version of a function."""

    name: str
    version: str
    revision: str
    config: Doc = field(compare=False, hash=False)
    # Outbound network for its environments: off when the function carries the tag
    # firebox:network=off (read when an environment is created).
    network: bool = field(default=True, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity of an execution environment's code and configuration."""
        return (self.name, self.version, self.revision)

    @property
    def arn(self) -> str:
        return str(self.config["FunctionArn"])

    @property
    def unqualified_arn(self) -> str:
        return self.arn if self.version == LATEST else self.arn.rsplit(":", 1)[0]

    @property
    def runtime(self) -> str:
        return str(self.config["Runtime"])

    @property
    def handler(self) -> str:
        return str(self.config["Handler"])

    @property
    def memory_mb(self) -> int:
        return int(self.config["MemorySize"])

    @property
    def timeout_s(self) -> int:
        return int(self.config["Timeout"])

    @property
    def code_sha(self) -> str:
        return str(self.config["_sha"])

    @property
    def layer_shas(self) -> tuple[str, ...]:
        return tuple(layer["_sha"] for layer in self.config.get("Layers") or [])

    @property
    def env_vars(self) -> dict[str, str]:
        return dict((self.config.get("Environment") or {}).get("Variables") or {})

    @property
    def ephemeral_mb(self) -> int:
        return int((self.config.get("EphemeralStorage") or {}).get("Size", 512))

    @property
    def log_group(self) -> str:
        logging_config = self.config.get("LoggingConfig") or {}
        return str(logging_config.get("LogGroup") or f"/aws/lambda/{self.name}")


@dataclass(frozen=True, slots=True)
class _Target:
    """What a qualifier points at: one version, or an alias's weighted pair."""

    primary: FunctionVersion
    secondary: FunctionVersion | None = None
    weight: float = 0.0

    def pick(self, rng: random.Random) -> FunctionVersion:
        if self.secondary is not None and rng.random() < self.weight:
            return self.secondary
        return self.primary


NETWORK_TAG = "firebox:network"


class Resolver:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog
        self._cache: dict[tuple[str, str], _Target] = {}
        # Bumped on every change to a function, so that a load that raced with a write
        # (control-plane writes run in worker threads) is never cached.
        self._generation: dict[str, int] = {}
        # Loads in flight, with the generation they started at: a caller joins one only if
        # no write came since, so it never sees a version older than its own last write.
        self._loading: dict[tuple[str, str], tuple[int, asyncio.Future[_Target]]] = {}
        self._rng = random.Random()
        catalog.listeners.append(self.invalidate)

    def on_change(self, change: Change) -> None:
        """A write anywhere in the fleet (the metadata store's change feed)."""
        if not change.kind:
            for name in {k[0] for k in list(self._cache)}:
                self.invalidate(name)
        elif change.kind in (FUNCTION, VERSION, ALIAS):
            self.invalidate(change.key.split("/", 1)[0])

    def invalidate(self, name: str) -> None:
        self._generation[name] = self._generation.get(name, 0) + 1
        for key in [k for k in list(self._cache) if k[0] == name]:
            self._cache.pop(key, None)

    async def resolve(self, name: str, qualifier: str | None) -> FunctionVersion:
        """The version to run; raises ResourceNotFound for unknown names and qualifiers."""
        q = qualifier or LATEST
        target = self._cache.get((name, q))
        if target is None:
            target = await self._load_shared(name, q)
        return target.pick(self._rng)

    async def _load_shared(self, name: str, qualifier: str) -> _Target:
        key = (name, qualifier)
        generation = self._generation.get(name, 0)
        loading = self._loading.get(key)
        if loading is None or loading[0] != generation:
            future = asyncio.ensure_future(asyncio.to_thread(self._load, name, qualifier))
            loading = (generation, future)
            self._loading[key] = loading
            future.add_done_callback(lambda f: self._loaded(key, generation, f))
        # Shielded: one caller giving up does not cancel the read the others wait on.
        return await asyncio.shield(loading[1])

    def _loaded(
        self, key: tuple[str, str], generation: int, future: asyncio.Future[_Target]
    ) -> None:
        if self._loading.get(key, (None, None))[1] is future:
            del self._loading[key]
        if future.cancelled() or future.exception() is not None:
            return
        if self._generation.get(key[0], 0) == generation:
            self._cache[key] = future.result()

    def _version(self, name: str, function: Doc, version: str) -> FunctionVersion:
        if version == LATEST:
            config = function["config"]
        else:
            config = self.c.version_doc(name, version)["config"]
        tag = str((function.get("tags") or {}).get(NETWORK_TAG, "on")).strip().lower()
        network = tag not in ("off", "false", "0", "none", "no")
        return FunctionVersion(name, version, config["RevisionId"], config, network)

    def _load(self, name: str, qualifier: str) -> _Target:
        # An invoke names the qualifier it was asked for, $LATEST when none (as Lambda).
        function = self.c.function_doc(name, qualifier)
        if qualifier == LATEST or qualifier.isdigit():
            return _Target(self._version(name, function, qualifier))
        alias = self.c.alias_doc(name, qualifier)
        primary = self._version(name, function, alias["FunctionVersion"])
        weights: dict[str, Any] = (alias.get("RoutingConfig") or {}).get(
            "AdditionalVersionWeights"
        ) or {}
        for version, weight in weights.items():
            return _Target(primary, self._version(name, function, version), float(weight))
        return _Target(primary)
