"""Which template (zygote) an environment forks from, with stand-in zygotes: a Python
function gets its own, claimed from spares started ahead; others share one per runtime."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from firebox.runtime.runtimes import RuntimeInfo
from firebox.sandbox import templates
from firebox.sandbox.templates import Templates


class FakeZygote:
    started: list[str] = []

    def __init__(self, key: str, rt: RuntimeInfo, variant: str = "") -> None:
        self.key = key
        self.variant = variant
        self.alive = False
        self.pool_size = 0
        self.prefilled = 0

    async def start(self) -> None:
        await asyncio.sleep(0.01)  # an interpreter starting, in miniature
        self.alive = True
        FakeZygote.started.append(self.key)

    def stop(self) -> None:
        self.alive = False

    def prefill(self) -> None:
        self.prefilled = self.pool_size


def runtime(name: str, kind: str) -> RuntimeInfo:
    return RuntimeInfo(name=name, kind=kind, executable=Path("/usr/bin/true"), prefix=None)


PY = runtime("python3.11", "python")
NODE = runtime("nodejs20.x", "node")


async def settle(t: Templates[FakeZygote], rt: RuntimeInfo, spares: int) -> None:
    for _ in range(200):
        if len([z for z in t._spares.get(rt.name, []) if z.alive]) >= spares:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("spares never came up")


async def test_each_python_function_gets_its_own_template_from_the_spares():
    t: Templates[FakeZygote] = Templates(FakeZygote, spares=2, pool_size=2)
    t.warm(PY)
    await settle(t, PY, 2)
    spares = list(t._spares[PY.name])
    assert all(z.prefilled == 2 for z in spares)
    a = await t.get(PY, "a")
    b = await t.get(PY, "b")
    assert a is spares[0] and b is spares[1] and a is not b
    assert a.pool_size == templates.FUNCTION_POOL
    assert await t.get(PY, "a") is a
    # The spares are replaced in the background.
    await settle(t, PY, 2)
    assert not {id(z) for z in t._spares[PY.name]} & {id(a), id(b)}
    t.close()


async def test_concurrent_cold_starts_of_a_new_function_share_one_template():
    t: Templates[FakeZygote] = Templates(FakeZygote, spares=0, pool_size=2)
    got = await asyncio.gather(*(t.get(PY, "burst") for _ in range(20)))
    assert len({id(z) for z in got}) == 1
    t.close()


async def test_runtimes_that_exec_share_one_template():
    t: Templates[FakeZygote] = Templates(FakeZygote, spares=2, pool_size=2)
    a, b = await asyncio.gather(t.get(NODE, "a"), t.get(NODE, "b"))
    assert a is b and a.pool_size == 2
    t.close()


async def test_an_unused_template_retires_and_a_dead_one_is_replaced(monkeypatch):
    monkeypatch.setattr(templates, "IDLE_RETIRE_S", 0.02)
    t: Templates[FakeZygote] = Templates(FakeZygote, spares=0, pool_size=2)
    a = await t.get(PY, "a")
    t.in_use(a)
    t.in_use(a)
    t.done_with(a)
    await asyncio.sleep(0.05)
    assert a.alive  # one environment still runs
    t.done_with(a)
    t.in_use(a)  # a new environment before the deadline keeps it
    await asyncio.sleep(0.05)
    assert a.alive
    t.done_with(a)
    await asyncio.sleep(0.05)
    assert not a.alive
    fresh = await t.get(PY, "a")
    assert fresh is not a and fresh.alive
    fresh.alive = False  # died (killed from outside)
    assert (await t.get(PY, "a")) is not fresh
    t.close()


@pytest.fixture(autouse=True)
def _reset() -> None:
    FakeZygote.started = []


async def test_templates_shared_per_runtime_when_the_operator_says_so():
    t: Templates[FakeZygote] = Templates(FakeZygote, spares=2, pool_size=2, per_function=False)
    t.warm(PY)
    a, b = await asyncio.gather(t.get(PY, "a"), t.get(PY, "b"))
    assert a is b and a.pool_size == 2
    assert t._spares.get(PY.name, []) == []
    t.close()


async def test_shared_templates_split_by_variant():
    # A JVM sizes its heap when it starts: Java's templates are kept per MemorySize.
    java = runtime("java17", "java")
    t: Templates[FakeZygote] = Templates(FakeZygote, spares=2, pool_size=2)
    small = await t.get(java, "a", "128")
    assert await t.get(java, "b", "128") is small
    big = await t.get(java, "a", "1024")
    assert big is not small and (small.variant, big.variant) == ("128", "1024")
    assert await t.get(runtime("ruby3.2", "ruby"), "a") is await t.get(
        runtime("ruby3.3", "ruby"), "b"
    )
    t.close()
