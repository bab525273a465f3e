"""Neighbours are not predictable: what one function can learn about itself (its hash
secret, where its heap and libraries are) says nothing about another function's."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sandbox_attack import make_victim, serves_while

from conftest import (
    Server,
    invoke_json,
    needs_process_sandbox,
    python_function,
    unique,
)

pytestmark = needs_process_sandbox

SELF = r"""
import os, sys, time

ENV = os.urandom(8).hex()


def mapping(pred):
    with open("/proc/self/maps") as fh:
        for line in fh:
            if pred(line):
                return line.split("-")[0]
    return None


def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {
        "env": ENV,
        "hash": hash("x"),
        "seed_set": "PYTHONHASHSEED" in os.environ,
        "randomized": sys.flags.hash_randomization,
        "heap": mapping(lambda l: l.rstrip().endswith("[heap]")),
        "libc": mapping(lambda l: "libc.so" in l or "libc-" in l),
        "object": hex(id(object())),
    }
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("neighbours") / "data", sandbox="process").start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def lam(srv: Server) -> Any:
    return srv.client("lambda")


def inspect(lam: Any, name: str, sleep: float = 0) -> dict[str, Any]:
    out, resp = invoke_json(lam, name, {"sleep": sleep})
    assert "FunctionError" not in resp, out
    return out


def test_functions_do_not_share_hash_secret_or_address_layout(lam):
    victim = make_victim(lam)
    names = [unique("self") for _ in range(3)]

    def create_and_look() -> list[dict[str, Any]]:
        for name in names:
            python_function(lam, name, SELF)
        return [inspect(lam, name) for name in names]

    seen = serves_while(lam, victim, create_and_look)
    assert not any(s["seed_set"] for s in seen) and all(s["randomized"] for s in seen)
    for field in ("hash", "heap", "libc"):
        values = [s[field] for s in seen]
        assert None not in values and len(set(values)) == len(values), (field, values)


def test_a_functions_own_environments_share_its_template(lam):
    name = unique("self")
    python_function(lam, name, SELF, Timeout=10)
    # Two concurrent invokes: two environments of the one function.
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda _i: inspect(lam, name, sleep=1.0), range(2))
    assert a["env"] != b["env"]
    # Forked from the same template: a function is one tenant, its environments alike.
    assert a["hash"] == b["hash"] and a["libc"] == b["libc"]
