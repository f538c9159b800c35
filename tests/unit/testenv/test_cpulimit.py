"""kubelet's CPU arithmetic, and which limiter a machine gets (on a fake /sys/fs/cgroup)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator_dev.testenv import cpulimit

millicores = st.integers(min_value=1, max_value=256_000)


@pytest.mark.parametrize(
    ("limit", "quota"),
    [
        (None, -1),
        (0, -1),
        (1, 1_000),  # the kernel's minimum quota is 1 ms
        (100, 10_000),
        (250, 25_000),
        (1000, 100_000),
        (2500, 250_000),
    ],
)
def test_cfs_quota_of_a_limit(limit: int | None, quota: int) -> None:
    assert cpulimit.cfs_quota_us(limit) == quota


@pytest.mark.parametrize(
    ("request_m", "shares"), [(None, 2), (0, 2), (1, 2), (100, 102), (1000, 1024), (10**6, 262_144)]
)
def test_shares_of_a_request(request_m: int | None, shares: int) -> None:
    assert cpulimit.cpu_shares(request_m) == shares


def test_cpu_max_of_a_limit() -> None:
    assert cpulimit.cpu_max(None) == "max 100000"
    assert cpulimit.cpu_max(500) == "50000 100000"


@given(millicores)
def test_quota_grants_the_limit_per_period(limit: int) -> None:
    quota = cpulimit.cfs_quota_us(limit)
    assert quota >= cpulimit.MIN_QUOTA_US
    if limit >= 10:
        assert quota * 1000 == limit * cpulimit.PERIOD_US


@given(st.integers(min_value=2, max_value=262_144), st.integers(min_value=2, max_value=262_144))
def test_weight_is_in_range_and_monotonic(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert 1 <= cpulimit.cpu_weight(low) <= cpulimit.cpu_weight(high) <= 10_000


def _fake_v1(base: Path) -> None:
    cpu = base / "cpu"
    cpu.mkdir(parents=True)
    for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"):
        (cpu / name).write_text("0\n")


def test_writable_v1_hierarchy_gets_cfs_quota_and_shares(tmp_path: Path) -> None:
    _fake_v1(tmp_path)
    said: list[str] = []
    limiter = cpulimit.detect("scope", base=tmp_path, out=said.append)
    assert isinstance(limiter, cpulimit.CgroupV1)
    limiter.set("pod-a", limit_millicores=300, request_millicores=200)
    group = tmp_path / "cpu" / cpulimit.GROUP / "scope" / "pod-a"
    assert (group / "cpu.cfs_quota_us").read_text().strip() == "30000"
    assert (group / "cpu.cfs_period_us").read_text().strip() == "100000"
    assert (group / "cpu.shares").read_text().strip() == "204"
    # an in-place resize rewrites the quota of the same group
    limiter.set("pod-a", limit_millicores=800, request_millicores=200)
    assert (group / "cpu.cfs_quota_us").read_text().strip() == "80000"
    assert "cgroup v1" in said[0]


def test_v2_with_the_cpu_controller_gets_cpu_max_and_weight(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    limiter = cpulimit.detect("scope", base=tmp_path, out=lambda _: None)
    assert isinstance(limiter, cpulimit.CgroupV2)
    # a real cgroupfs creates these files with the directory; the fake needs them
    for sub in (tmp_path / cpulimit.GROUP, tmp_path / cpulimit.GROUP / "scope"):
        assert "+cpu" in (sub / "cgroup.subtree_control").read_text()
    limiter.set("pod-a", limit_millicores=250, request_millicores=None)
    group = tmp_path / cpulimit.GROUP / "scope" / "pod-a"
    assert (group / "cpu.max").read_text().strip() == "25000 100000"
    assert (group / "cpu.weight").read_text().strip() == "1"


def test_no_cgroup_falls_back_to_user_space_and_says_so(tmp_path: Path) -> None:
    said: list[str] = []
    limiter = cpulimit.detect("scope", base=tmp_path, out=said.append)
    assert isinstance(limiter, cpulimit.UserSpaceLimiter)
    assert "NO writable CPU cgroup" in said[0]


def test_v2_without_the_cpu_controller_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")
    limiter = cpulimit.detect("scope", base=tmp_path, out=lambda _: None)
    assert isinstance(limiter, cpulimit.UserSpaceLimiter)


def test_reap_kills_what_a_dead_runner_left_in_its_groups(tmp_path: Path) -> None:
    # a pod runner killed with its test run leaves consumers in its groups: down() reaps them
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        group = tmp_path / "cpu" / cpulimit.GROUP / "scope" / "pod-uid"
        group.mkdir(parents=True)
        (group / "cgroup.procs").write_text(f"{child.pid}\n")
        assert cpulimit.reap("scope", base=tmp_path) == [child.pid]
        assert child.wait(timeout=10) == -signal.SIGKILL
        # another scope's groups are not touched
        assert cpulimit.reap("other", base=tmp_path) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
