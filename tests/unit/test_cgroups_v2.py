"""cgroup v2, which this development host (cgroup v1) cannot run: the files Firebox writes
and reads, checked against a stand-in cgroup2 tree. The v1 path runs for real in the
sandbox integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from firebox.sandbox import cgroups


@pytest.fixture
def fake_v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma\n")
    monkeypatch.setattr(cgroups, "CGROUP_FS", tmp_path)
    return tmp_path


def test_unified_hierarchy_with_our_controllers_is_v2(fake_v2: Path) -> None:
    assert cgroups.detect_version() == 2
    (fake_v2 / "cgroup.controllers").write_text("cpu io\n")
    assert cgroups.detect_version() is None


def test_setup_delegates_controllers_and_create_limits_pids(fake_v2: Path) -> None:
    h = cgroups.Hierarchy("k1")
    assert h.roots == {"": fake_v2 / "firebox" / "k1"}
    h.setup()
    for d in (fake_v2 / "firebox", fake_v2 / "firebox" / "k1"):
        assert (d / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    group = h.create("env-1")
    d = fake_v2 / "firebox" / "k1" / "env-1"
    assert group.dirs == {"": d}
    assert (d / "pids.max").read_text() == str(cgroups.PIDS_MAX)
    assert group.procs_files == [str(d / "cgroup.procs")]


def test_limits_follow_memory_size_without_swap(fake_v2: Path) -> None:
    h = cgroups.Hierarchy("k2")
    h.setup()
    group = h.create("env")
    d = group.dirs[""]
    (d / "cpu.max.burst").write_text("0")
    group.set_limits(256)
    assert (d / "memory.max").read_text() == str(256 * 1024 * 1024)
    assert (d / "memory.swap.max").read_text() == "0"
    quota = cgroups.CPU_PERIOD_US * 256 // cgroups.MB_PER_VCPU
    assert (d / "cpu.max").read_text() == f"{quota} {cgroups.CPU_PERIOD_US}"
    assert (d / "cpu.max.burst").read_text() == str(quota)
    # 1,769 MB buys one whole vCPU.
    group.set_limits(1769)
    assert (d / "cpu.max").read_text() == f"{cgroups.CPU_PERIOD_US} {cgroups.CPU_PERIOD_US}"


def test_peak_memory_and_oom_are_read_from_v2_files(fake_v2: Path) -> None:
    h = cgroups.Hierarchy("k3")
    h.setup()
    group = h.create("env")
    d = group.dirs[""]
    (d / "memory.peak").write_text(str(37 * 1024 * 1024 + 1))
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    assert group.max_memory_mb() == 38
    assert group.oom_killed() is False
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\n")
    assert group.oom_killed() is True


def test_freeze_and_thaw_write_cgroup_freeze(fake_v2: Path) -> None:
    h = cgroups.Hierarchy("k4")
    h.setup()
    group = h.create("env")
    d = group.dirs[""]
    (d / "cgroup.freeze").write_text("0")  # as the kernel makes it
    assert group.can_freeze
    group.freeze()
    assert (d / "cgroup.freeze").read_text() == "1" and group.frozen
    group.freeze()  # already frozen: nothing written twice
    group.thaw()
    assert (d / "cgroup.freeze").read_text() == "0" and not group.frozen
    group.freeze()
    # Killing a group thaws it too (on v1 a frozen task cannot die until thawed).
    (d / "cgroup.procs").write_text("")
    group.kill_all()
    assert (d / "cgroup.freeze").read_text() == "0" and not group.frozen


def test_v2_needs_no_socket_buffer_limit(fake_v2: Path) -> None:
    # cgroup v2 charges socket buffers to memory.current, inside memory.max.
    h = cgroups.Hierarchy("k5")
    h.setup()
    group = h.create("env")
    group.set_limits(128)
    assert not (group.dirs[""] / "memory.kmem.tcp.limit_in_bytes").exists()
    assert (group.dirs[""] / "memory.max").read_text() == str(128 * 1024 * 1024)
