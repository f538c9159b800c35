"""Starting, watching and stopping the processes of the test environment, by pid only.

Why: the environment must stop *exactly* what it started, also from another process
(``down`` runs long after ``up`` exited) and never by name. Each component therefore runs
in its own session (pid == process-group id), and we record its pid together with its start
time from ``/proc/<pid>/stat``: a recycled pid has a different start time, so a stale state
file can never make us signal someone else's process.

Processes started from the main thread of a long-lived owner (the pytest session) can also be
tied to it with ``PR_SET_PDEATHSIG``, so a killed test run does not leave a control plane
behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from konsumerator_dev.testenv.errors import ComponentDied, NotReady, PortInUse

_PR_SET_PDEATHSIG = 1
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Proc:
    """A process we started: enough to find it again, prove it is ours, and read its log."""

    name: str
    pid: int
    start_ticks: int
    log: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "start_ticks": self.start_ticks,
            "log": self.log,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Proc:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            start_ticks=int(data["start_ticks"]),
            log=str(data["log"]),
        )

    def alive(self) -> bool:
        """True if the pid still runs *and* is the very process we started."""
        stat = _stat(self.pid)
        return stat is not None and stat[1] == self.start_ticks and stat[0] not in "ZX"

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(Path(self.log), lines)

    def rss_kib(self) -> tuple[int, int]:
        """(current RSS, peak RSS) in KiB from /proc/<pid>/status; (0, 0) if gone."""
        if not self.alive():
            return (0, 0)
        values = {"VmRSS": 0, "VmHWM": 0}
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return (0, 0)
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0])
        return (values["VmRSS"], values["VmHWM"])


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a pid, or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (None if it does not exist)."""
    stat = _stat(pid)
    return None if stat is None else stat[1]


def _die_with_parent_hook(parent_pid: int) -> Callable[[], None]:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def spawn(
    name: str,
    argv: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    tie_to_parent: bool = False,
) -> Proc:
    """Start ``argv`` in a new session with stdout+stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    hook = None
    # PDEATHSIG fires when the *thread* that forked exits, so only tie to the main thread.
    if tie_to_parent and threading.current_thread() is threading.main_thread():
        hook = _die_with_parent_hook(os.getpid())
    with log.open("ab") as out:
        out.write(f"=== {time.strftime('%H:%M:%S')} start: {' '.join(argv)}\n".encode())
        out.flush()
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=hook,  # only prctl/getppid/kill: safe between fork and exec
        )
    _children[popen.pid] = popen
    stat = _stat(popen.pid)
    if stat is None:  # exited and reaped already: cannot happen before wait(), but be exact
        raise ComponentDied(f"{name} exited immediately\n{log_tail(log)}")
    return Proc(name=name, pid=popen.pid, start_ticks=stat[1], log=str(log))


def _reap(pid: int) -> None:
    popen = _children.get(pid)
    if popen is not None:
        if popen.poll() is not None:
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _wait_gone(proc: Proc, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        _reap(proc.pid)
        if not proc.alive():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop(proc: Proc, timeout: float = 10.0) -> None:
    """SIGTERM the process group we created, then SIGKILL it after ``timeout`` seconds."""
    if not proc.alive():
        _reap(proc.pid)
        return
    # start_new_session=True made the process a group leader; never signal another group.
    target_group = os.getpgid(proc.pid) == proc.pid
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            if target_group:
                os.killpg(proc.pid, sig)
            else:
                os.kill(proc.pid, sig)
        if _wait_gone(proc, wait):
            return


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"    | {line}" for line in tail) or "    | (empty log)"


def port_free(port: int) -> bool:
    """True if nobody listens on 127.0.0.1:``port``.

    SO_REUSEADDR, as Go's listeners set it: connections in TIME_WAIT after a component stopped
    must not count as "in use", or a restarted Prometheus could never get its port back.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ensure_port_free(port: int, component: str) -> None:
    if not port_free(port):
        raise PortInUse(
            f"cannot start {component}: 127.0.0.1:{port} is already in use "
            f"(see `ss -ltnp 'sport = :{port}'` for the owner)"
        )


# Where the kernel picks ports for outgoing connections (and for bind(port 0)).
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 10000


def _ephemeral_range(path: Path = _EPHEMERAL_RANGE) -> tuple[int, int]:
    try:
        low, high = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def free_ports(
    names: Sequence[str],
    *,
    rng: random.Random | None = None,
    span: tuple[int, int] | None = None,
) -> dict[str, int]:
    """Distinct free loopback ports, one per name (held open together so none repeats).

    Why not ``bind(port 0)``: the kernel picks those from the ephemeral range, the same
    range every outgoing connection on the machine takes its local port from. A component
    starts seconds after its port is picked (the Kafka broker ~10 s), and on a busy machine
    a connection (a Prometheus scrape, a client of another test run) took that port in
    between ("Address already in use"). Ports below the ephemeral range are never taken
    that way; they are picked at random from ``span`` (default: from 10000 up to the
    ephemeral range) and checked by binding them.
    """
    rng = rng or random.Random()
    bottom, top = span or (_LOWEST_PORT, _ephemeral_range()[0] - 1)
    socks: list[socket.socket] = []
    ports: dict[str, int] = {}
    try:
        for name in names:
            for _ in range(200):
                port = rng.randint(bottom, top)
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    sock.close()
                    continue
                socks.append(sock)
                ports[name] = port
                break
            else:
                raise PortInUse(f"no free loopback port in {bottom}-{top} for {name}")
        return ports
    finally:
        for sock in socks:
            sock.close()


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    watch: Sequence[Proc] = (),
    interval: float = 0.2,
) -> None:
    """Poll ``predicate`` until true; fail early, with its log, if a watched process exits."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        for proc in watch:
            if not proc.alive():
                _reap(proc.pid)
                raise ComponentDied(
                    f"{proc.name} (pid {proc.pid}) exited while waiting for {what}; "
                    f"last lines of {proc.log}:\n{proc.log_tail()}"
                )
        try:
            if predicate():
                return
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            logs = "".join(f"\nlast lines of {p.log}:\n{p.log_tail(25)}" for p in watch[-1:])
            raise NotReady(f"timed out after {timeout:.0f}s waiting for {what}{detail}{logs}")
        time.sleep(interval)
