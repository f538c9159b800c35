"""A pod's CPU limit and request, enforced on a local process the way kubelet does.

Why: KWOK runs no containers, so the local environment starts a real process per pod
(:mod:`~konsumerator_dev.testenv.podrunner`). For the operator's sizing to mean anything, that
process must get the CPU the pod was given: kubelet puts a container's CPU limit in its
cgroup's CFS quota (``cpu.cfs_quota_us`` per ``cpu.cfs_period_us``, or ``cpu.max`` on cgroup
v2) and its request in ``cpu.shares`` (``cpu.weight``). Changing the quota of a running group is
exactly what an in-place CPU resize does, so no restart is needed.

Three ways, picked by :func:`detect` in this order:

* :class:`CgroupV1`: ``/sys/fs/cgroup/cpu`` is a writable cgroup v1 ``cpu`` hierarchy;
* :class:`CgroupV2`: the unified hierarchy has the ``cpu`` controller and we may enable it;
* :class:`UserSpaceLimiter`: neither is writable (not root, a read-only ``/sys``): the process
  is stopped and continued (SIGSTOP/SIGCONT) for the fraction of every period above its limit.
  Coarser than the kernel (it cannot share a core between threads), and said so when chosen.

The arithmetic (quota, shares, weight) is kubelet's and unit-tested; the kernel side in the
cluster tier.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

#: kubelet's CFS period (100 ms) and the kernel's smallest quota (1 ms).
PERIOD_US = 100_000
MIN_QUOTA_US = 1_000
#: kubelet's shares for a container without a request, and the kernel's bounds.
MIN_SHARES = 2
MAX_SHARES = 262_144
GROUP = "konsumerator-testenv"

Printer = Callable[[str], None]


def cfs_quota_us(limit_millicores: int | None, period_us: int = PERIOD_US) -> int:
    """The CFS quota of a CPU limit: -1 (unlimited) without one, else at least 1 ms."""
    if limit_millicores is None or limit_millicores <= 0:
        return -1
    return max(MIN_QUOTA_US, limit_millicores * period_us // 1000)


def cpu_shares(request_millicores: int | None) -> int:
    """kubelet's ``cpu.shares`` of a CPU request (1024 per core, 2 without a request)."""
    if not request_millicores or request_millicores <= 0:
        return MIN_SHARES
    return min(MAX_SHARES, max(MIN_SHARES, request_millicores * 1024 // 1000))


def cpu_weight(shares: int) -> int:
    """cgroup v2 ``cpu.weight`` of v1 shares, as the OCI runtimes convert it (1..10000)."""
    return 1 + ((shares - MIN_SHARES) * 9999) // (MAX_SHARES - MIN_SHARES)


def cpu_max(limit_millicores: int | None, period_us: int = PERIOD_US) -> str:
    """cgroup v2 ``cpu.max``: ``"<quota> <period>"`` or ``"max <period>"``."""
    quota = cfs_quota_us(limit_millicores, period_us)
    return f"{'max' if quota < 0 else quota} {period_us}"


class Limiter(ABC):
    """Puts processes under a CPU limit and request, changeable while they run."""

    #: One line for the logs and the report: how limits are enforced here.
    description: str

    @abstractmethod
    def attach(self, key: str, pid: int) -> None:
        """Put process ``pid`` (all its threads) under the limits of ``key``."""

    @abstractmethod
    def set(
        self, key: str, *, limit_millicores: int | None, request_millicores: int | None
    ) -> None:
        """Set (or change, in place) the limits of ``key``."""

    @abstractmethod
    def release(self, key: str) -> None:
        """Forget ``key`` once its process has exited."""

    def throttled_periods(self, key: str) -> int | None:
        """How many periods the kernel throttled ``key`` (None where not known)."""
        return None

    def close(self) -> None:
        """Remove what this limiter created once every process is gone (best effort)."""
        root = getattr(self, "root", None)
        if isinstance(root, Path):
            _remove_groups(root)


def _remove_groups(root: Path) -> None:
    """rmdir the (empty) groups under ``root`` and ``root`` itself; busy ones stay."""
    for group in sorted(root.glob("*/"), reverse=True):
        with contextlib.suppress(OSError):
            group.rmdir()
    with contextlib.suppress(OSError):
        root.rmdir()


class CgroupV1(Limiter):
    """One cgroup per pod under ``<cpu hierarchy>/konsumerator-testenv/<scope>/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"cgroup v1 CFS quota and shares under {root}"

    def _dir(self, key: str) -> Path:
        return self.root / key

    def set(
        self, key: str, *, limit_millicores: int | None, request_millicores: int | None
    ) -> None:
        group = self._dir(key)
        group.mkdir(parents=True, exist_ok=True)
        (group / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
        (group / "cpu.cfs_quota_us").write_text(f"{cfs_quota_us(limit_millicores)}\n")
        (group / "cpu.shares").write_text(f"{cpu_shares(request_millicores)}\n")

    def attach(self, key: str, pid: int) -> None:
        (self._dir(key) / "cgroup.procs").write_text(f"{pid}\n")

    def release(self, key: str) -> None:
        with contextlib.suppress(OSError):  # busy until the last task has gone; reaped later
            self._dir(key).rmdir()

    def quota_us(self, key: str) -> int:
        return int((self._dir(key) / "cpu.cfs_quota_us").read_text())

    def throttled_periods(self, key: str) -> int | None:
        for line in (self._dir(key) / "cpu.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "nr_throttled":
                return int(value)
        return None


class CgroupV2(Limiter):
    """One cgroup per pod under ``<unified>/konsumerator-testenv/<scope>/`` (cpu.max, weight)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"cgroup v2 cpu.max and cpu.weight under {root}"

    def _dir(self, key: str) -> Path:
        return self.root / key

    def set(
        self, key: str, *, limit_millicores: int | None, request_millicores: int | None
    ) -> None:
        # detect() enabled the cpu controller in every ancestor's subtree_control.
        group = self._dir(key)
        group.mkdir(exist_ok=True)
        (group / "cpu.max").write_text(cpu_max(limit_millicores) + "\n")
        (group / "cpu.weight").write_text(f"{cpu_weight(cpu_shares(request_millicores))}\n")

    def attach(self, key: str, pid: int) -> None:
        (self._dir(key) / "cgroup.procs").write_text(f"{pid}\n")

    def release(self, key: str) -> None:
        with contextlib.suppress(OSError):
            self._dir(key).rmdir()

    def throttled_periods(self, key: str) -> int | None:
        for line in (self._dir(key) / "cpu.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "nr_throttled":
                return int(value)
        return None


def _enable_cpu(group: Path) -> None:
    control = group / "cgroup.subtree_control"
    current = control.read_text() if control.exists() else ""  # cgroupfs always has it
    if "cpu" not in current.split():
        control.write_text("+cpu\n")


class UserSpaceLimiter(Limiter):
    """SIGSTOP/SIGCONT duty cycle: runs a process for ``limit`` of every period, at most."""

    description = (
        "NO writable CPU cgroup (cgroup v1 cpu or v2 with the cpu controller): CPU limits are "
        "approximated in user space by stopping each process (SIGSTOP/SIGCONT) for the part "
        "of every 100 ms above its limit"
    )

    def __init__(self, period_seconds: float = PERIOD_US / 1e6) -> None:
        self.period = period_seconds
        self._limits: dict[str, int | None] = {}
        self._threads: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._lock = threading.Lock()

    def set(
        self, key: str, *, limit_millicores: int | None, request_millicores: int | None
    ) -> None:
        with self._lock:
            self._limits[key] = limit_millicores

    def attach(self, key: str, pid: int) -> None:
        stop = threading.Event()
        thread = threading.Thread(
            target=self._cycle, args=(key, pid, stop), name=f"cpu-limit-{pid}", daemon=True
        )
        with self._lock:
            self._threads[key] = (thread, stop)
        thread.start()

    def _cycle(self, key: str, pid: int, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._lock:
                limit = self._limits.get(key)
            share = 1.0 if limit is None else min(1.0, limit / 1000)
            try:
                if share < 1.0:
                    os.kill(pid, signal.SIGSTOP)
                    stop.wait(self.period * (1.0 - share))
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                return
            stop.wait(self.period * share)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # never leave a process stopped

    def release(self, key: str) -> None:
        with self._lock:
            entry = self._threads.pop(key, None)
            self._limits.pop(key, None)
        if entry is not None:
            entry[1].set()
            entry[0].join(timeout=2)


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def _v1_root(base: Path, scope: str) -> Path | None:
    cpu = base / "cpu"
    if not (cpu / "cpu.cfs_quota_us").is_file() or not _writable_dir(cpu):
        return None
    root = cpu / GROUP / scope
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return root


def _v2_root(base: Path, scope: str) -> Path | None:
    for unified in (base, base / "unified"):
        controllers = unified / "cgroup.controllers"
        if not controllers.is_file() or "cpu" not in controllers.read_text().split():
            continue
        if not _writable_dir(unified):
            continue
        root = unified / GROUP
        try:
            root.mkdir(exist_ok=True)
            _enable_cpu(unified)
            _enable_cpu(root)
            (root / scope).mkdir(exist_ok=True)
            _enable_cpu(root / scope)
        except OSError:
            continue
        return root / scope
    return None


def detect(scope: str, *, base: Path = Path("/sys/fs/cgroup"), out: Printer = print) -> Limiter:
    """The best CPU limiter this machine allows, for groups under ``scope``; says which."""
    limiter: Limiter
    v1 = _v1_root(base, scope)
    if v1 is not None:
        limiter = CgroupV1(v1)
    else:
        v2 = _v2_root(base, scope)
        limiter = CgroupV2(v2) if v2 is not None else UserSpaceLimiter()
    out(f"pod runner: CPU limits: {limiter.description}")
    return limiter


def reap(scope: str, *, base: Path = Path("/sys/fs/cgroup")) -> list[int]:
    """Kill the processes left in the groups of ``scope`` and remove the groups.

    Every process there was put there by a pod runner of this scope, so this stops exactly
    what it started, also after the runner itself was killed (a killed test run). Returns
    the pids signalled.
    """
    killed: list[int] = []
    for root in (
        base / "cpu" / GROUP / scope,
        base / GROUP / scope,
        base / "unified" / GROUP / scope,
    ):
        if not root.is_dir():
            continue
        for group in [p for p in root.iterdir() if p.is_dir()]:
            with contextlib.suppress(OSError):
                for pid in map(int, (group / "cgroup.procs").read_text().split()):
                    for sig in (signal.SIGCONT, signal.SIGKILL):  # a stalled one too
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, sig)
                    killed.append(pid)
        if killed:
            time.sleep(0.2)  # a killed task leaves its group when it exits
        _remove_groups(root)
    return killed
