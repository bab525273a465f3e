"""Resolver: a cache miss reads the metadata store in a worker thread, concurrent misses
share one read, and a read that raced with a write is neither joined nor cached."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from firebox.control.catalog import FUNCTION, Catalog
from firebox.control.resolve import Resolver
from firebox.errors import ResourceNotFound
from firebox.settings import Settings
from firebox.store.metadata.base import Doc
from firebox.store.metadata.sqlite import SqliteMetadataStore


class GatedStore(SqliteMetadataStore):
    """The real store; each get waits, after reading, for the next gate in line (if any)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gets = 0
        self.gates: list[threading.Event] = []
        self.read = threading.Semaphore(0)

    def get(self, kind: str, key: str) -> Doc | None:
        doc = super().get(kind, key)
        self.gets += 1
        gate = self.gates.pop(0) if self.gates else None
        self.read.release()
        if gate is not None:
            assert gate.wait(10)
        return doc


def function_doc(revision: str) -> Doc:
    arn = "arn:aws:lambda:us-east-1:000000000000:function:f"
    return {"config": {"RevisionId": revision, "FunctionArn": arn, "Runtime": "python3.11"}}


@pytest.fixture
def store(tmp_path: Path) -> GatedStore:
    s = GatedStore(tmp_path / "metadata.db")
    s.put(FUNCTION, "f", function_doc("r1"))
    return s


def resolver_for(store: GatedStore, tmp_path: Path) -> tuple[Resolver, Catalog]:
    # The resolver reads documents only: no code store.
    catalog = Catalog(Settings(data_dir=tmp_path), store, code=None, code_url=str)
    return Resolver(catalog), catalog


async def test_concurrent_misses_share_one_read_off_the_loop(
    store: GatedStore, tmp_path: Path
) -> None:
    resolver, _ = resolver_for(store, tmp_path)
    gate = threading.Event()
    store.gates = [gate]
    misses = [asyncio.create_task(resolver.resolve("f", None)) for _ in range(10)]
    assert await asyncio.to_thread(store.read.acquire, True, 10)  # the read is under way
    # The loop is free while the read is held: other work runs, the misses wait.
    ticks = 0
    for _ in range(100):
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 100 and not any(m.done() for m in misses)
    gate.set()
    versions = await asyncio.wait_for(asyncio.gather(*misses), 10)
    assert {v.revision for v in versions} == {"r1"}
    assert store.gets == 1
    # Now from memory: no further read.
    assert (await resolver.resolve("f", None)).revision == "r1"
    assert store.gets == 1


async def test_a_read_that_raced_a_write_is_not_joined_or_cached(
    store: GatedStore, tmp_path: Path
) -> None:
    resolver, catalog = resolver_for(store, tmp_path)
    old_read = threading.Event()
    store.gates = [old_read]
    before = asyncio.create_task(resolver.resolve("f", None))
    assert await asyncio.to_thread(store.read.acquire, True, 10)  # it read r1, not returned
    store.put(FUNCTION, "f", function_doc("r2"))
    catalog.changed("f")  # what a control-plane write does after its commit
    after = await asyncio.wait_for(resolver.resolve("f", None), 10)
    assert after.revision == "r2"  # its own read, not the one in flight
    old_read.set()
    assert (await asyncio.wait_for(before, 10)).revision == "r1"
    # The stale result did not overwrite the fresh one.
    assert (await resolver.resolve("f", None)).revision == "r2"
    assert store.gets == 2


async def test_an_unknown_function_is_not_found_and_not_cached(
    store: GatedStore, tmp_path: Path
) -> None:
    resolver, _ = resolver_for(store, tmp_path)
    for _ in range(2):
        with pytest.raises(ResourceNotFound):
            await resolver.resolve("missing", None)
    assert store.gets == 2
