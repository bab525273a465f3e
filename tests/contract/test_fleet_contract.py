"""The worker registry, leases and concurrency reservations, over every backend (SQLite
in a data dir; PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backends import opener as backend_opener

from firebox.store.fleet.base import Fleet, WorkerState

Opener = Callable[[], Fleet]


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    from firebox.store.fleet.postgres import PostgresFleet
    from firebox.store.fleet.sqlite import SqliteFleet

    with backend_opener(
        request.param, tmp_path, lambda d: SqliteFleet(d / "fleet.db"), PostgresFleet
    ) as open_fleet:
        yield open_fleet


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# --- worker registry --------------------------------------------------------------------


def test_workers_register_heartbeat_drain_and_leave(opener: Opener) -> None:
    a, b = opener(), opener()
    a.registry.register("w1", "10.0.0.1:9100", 4096)
    b.registry.register("w2", "10.0.0.2:9100", 2048)
    workers = a.registry.workers()
    assert [(w.node_id, w.address, w.capacity, w.state) for w in workers] == [
        ("w1", "10.0.0.1:9100", 4096, WorkerState.ACTIVE),
        ("w2", "10.0.0.2:9100", 2048, WorkerState.ACTIVE),
    ]
    assert all(0 <= w.age_s < 5 for w in workers)
    assert b.registry.heartbeat("w1", capacity=1024) == WorkerState.ACTIVE
    assert b.registry.set_state("w1", WorkerState.DRAINING) is True
    assert a.registry.heartbeat("w1") == WorkerState.DRAINING
    assert [w.capacity for w in a.registry.workers() if w.node_id == "w1"] == [1024]
    assert a.registry.heartbeat("nobody") is None
    assert a.registry.set_state("nobody", WorkerState.DRAINING) is False
    assert b.registry.remove("w1") is True and b.registry.remove("w1") is False
    assert [w.node_id for w in a.registry.workers()] == ["w2"]
    # Registering again (after a restart) makes a worker active again.
    a.registry.set_state("w2", WorkerState.DRAINING)
    a.registry.register("w2", "10.0.0.2:9200", 2048)
    (w2,) = b.registry.workers()
    assert (w2.address, w2.state) == ("10.0.0.2:9200", WorkerState.ACTIVE)


def test_silent_workers_drop_out_and_are_swept(opener: Opener) -> None:
    fleet = opener()
    fleet.registry.register("quiet", "a:1", 1)
    fleet.registry.register("alive", "b:1", 1)
    wait_until(lambda: [w.node_id for w in fleet.registry.workers(max_age_s=0.3)] == [])
    fleet.registry.heartbeat("alive")
    assert [w.node_id for w in fleet.registry.workers(max_age_s=0.3)] == ["alive"]
    assert [w.node_id for w in fleet.registry.workers()] == ["alive", "quiet"]
    assert fleet.registry.sweep(0.3) == ["quiet"]
    assert fleet.registry.heartbeat("quiet") is None  # it must register again


# --- leases -----------------------------------------------------------------------------


def test_a_lease_has_one_holder_until_it_expires(opener: Opener) -> None:
    a, b = opener(), opener()
    lease = a.leases.acquire("scheduler", "node-a", 0.5)
    assert lease is not None and lease.holder == "node-a"
    assert b.leases.acquire("scheduler", "node-b", 30) is None
    assert b.leases.get("scheduler") == lease
    # The holder extends it; acquiring again is extending too, with the same token.
    renewed = a.leases.renew("scheduler", "node-a", 0.5)
    assert renewed is not None and renewed.token == lease.token
    assert renewed.expires_at >= lease.expires_at
    again = a.leases.acquire("scheduler", "node-a", 0.5)
    assert again is not None and again.token == lease.token
    assert b.leases.renew("scheduler", "node-b", 30) is None
    # The holder dies (stops renewing): the lease expires and another takes it over.
    wait_until(lambda: b.leases.get("scheduler") is None)
    taken = b.leases.acquire("scheduler", "node-b", 30)
    assert taken is not None and taken.holder == "node-b" and taken.token == lease.token + 1
    # The old holder finds out when it tries to renew.
    assert a.leases.renew("scheduler", "node-a", 30) is None
    assert a.leases.release("scheduler", "node-a") is False
    assert b.leases.release("scheduler", "node-b") is True
    assert a.leases.get("scheduler") is None
    after = a.leases.acquire("scheduler", "node-a", 30)
    assert after is not None and after.token == taken.token + 1
    assert a.leases.acquire("other", "node-b", 30) is not None  # leases are independent


def test_concurrent_acquirers_get_one_winner(opener: Opener) -> None:
    fleets = [opener(), opener()]
    for round_ in range(5):
        name = f"tick-{round_}"
        winners: list[str] = []
        start = threading.Barrier(6)

        def contend(
            i: int, name: str = name, start: threading.Barrier = start, won: list[str] = winners
        ) -> None:
            start.wait()
            if fleets[i % 2].leases.acquire(name, f"node-{i}", 30) is not None:
                won.append(f"node-{i}")

        threads = [threading.Thread(target=contend, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(winners) == 1
        lease = fleets[0].leases.get(name)
        assert lease is not None and lease.holder == winners[0]


# --- concurrency reservations -----------------------------------------------------------


def test_reservations_count_across_stores_up_to_the_limit(opener: Opener) -> None:
    a, b = opener(), opener()
    r1 = a.reservations.reserve("f", "node-a", 30, limit=2)
    r2 = b.reservations.reserve("f", "node-b", 30, limit=2)
    assert r1 and r2 and r1 != r2
    assert a.reservations.reserve("f", "node-a", 30, limit=2) is None  # throttled
    assert b.reservations.count("f") == 2
    assert b.reservations.release(r1) is True and b.reservations.release(r1) is False
    assert a.reservations.reserve("f", "node-a", 30, limit=2) is not None
    # Functions without reserved concurrency share a pool.
    assert a.reservations.reserve("g", "node-a", 30, limit=2, pool="unreserved")
    assert b.reservations.reserve("h", "node-b", 30, limit=2, pool="unreserved")
    assert a.reservations.reserve("g", "node-a", 30, limit=2, pool="unreserved") is None
    assert a.reservations.count("unreserved") == 2
    assert b.reservations.by_function() == {"f": 2, "g": 1, "h": 1}
    assert a.reservations.release_holder("node-b") == 2
    assert a.reservations.by_function() == {"f": 1, "g": 1}


def test_a_dead_holders_reservations_expire_a_live_ones_do_not(opener: Opener) -> None:
    fleet = opener()
    assert fleet.reservations.reserve("f", "dies", 0.5, limit=2)
    assert fleet.reservations.reserve("f", "lives", 0.5, limit=2)
    assert fleet.reservations.reserve("f", "third", 30, limit=2) is None
    deadline = time.monotonic() + 10
    # "lives" keeps renewing (its heartbeat) while "dies" has stopped.
    while fleet.reservations.count("f") > 1:
        assert time.monotonic() < deadline, "the dead holder's reservation never expired"
        assert fleet.reservations.renew_holder("lives", 0.5) == 1
        time.sleep(0.05)
    assert fleet.reservations.by_function() == {"f": 1}
    assert fleet.reservations.renew_holder("dies", 30) == 0
    assert fleet.reservations.reserve("f", "third", 30, limit=2) is not None


def test_concurrent_reservers_never_pass_the_limit(opener: Opener) -> None:
    fleets = [opener(), opener()]
    got: list[str] = []
    start = threading.Barrier(8)

    def reserve(i: int) -> None:
        start.wait()
        for _ in range(5):
            rid = fleets[i % 2].reservations.reserve("f", f"node-{i}", 30, limit=7)
            if rid is not None:
                got.append(rid)

    threads = [threading.Thread(target=reserve, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 7 and len(set(got)) == 7
    assert fleets[1].reservations.count("f") == 7
