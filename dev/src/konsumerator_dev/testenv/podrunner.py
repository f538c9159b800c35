"""The pod runner: a stand-in for kubelet's container runtime on the KWOK node.

Why: KWOK marks pods Running without running anything, so a Deployment the operator sizes
would never consume a message. For every Running pod of a Konsumerator-managed Deployment on
the KWOK node, the runner starts a real process (the example consumer,
``examples/consumer-app/consumer.py``) with the pod's environment, under the pod's CPU limit and
request (:mod:`~konsumerator_dev.testenv.cpulimit`), and stops it when the pod goes away or starts
terminating. A pod resized in place keeps its process; only the limit changes.

* The CPU applied is what the pod's status says the node actuated
  (``status.containerStatuses[].resources``), as a container runtime applies what kubelet
  allocated, not the spec: KWOK's stages (:mod:`~konsumerator_dev.testenv.kwokstages`) play
  kubelet, reporting those resources when the pod starts and acknowledging, after a short
  delay, a resize the node can take, and marking ``Infeasible`` one it cannot. The runner
  never writes pod status, so it and the stages never fight over it; a resize the node
  refused leaves the process's limit as it was. Before the status reports any resources
  (never, with the project's stages) the spec's are used.

* "Managed" means the pod's container carries the partition variable the operator renders
  (``KONSUMERATOR_PARTITION``): the operator sets it on every container of its Deployments, and
  nothing else does.
* Only literal ``env`` values are passed (``valueFrom`` needs a kubelet); ``overrides`` (the
  local broker's address, for example) replace the pod's values.
* Each process serves ``/metrics`` on a free loopback port (``METRICS_PORT``); the runner keeps
  Prometheus' ``pods`` job pointed at them, labelled with the pod's namespace and name.
* The runner polls the apiserver (every ``interval`` seconds): simple, and a missed watch
  event can never leave a consumer behind.

The decision of what a pod needs (:func:`desired`) is pure and unit-tested; the rest in the
cluster tier.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from konsumerator.domain.quantities import QuantityError, cpu_millis
from konsumerator_dev.paths import EXAMPLES
from konsumerator_dev.testenv import cpulimit, process
from konsumerator_dev.testenv.cluster import NODE_NAME, Cluster
from konsumerator_dev.testenv.process import Proc

Printer = Callable[[str], None]

PARTITION_ENV = "KONSUMERATOR_PARTITION"
#: The example consumer, as the runner starts it (with the project's virtualenv Python).
CONSUMER_APP = EXAMPLES / "consumer-app" / "consumer.py"


@dataclass(frozen=True)
class PodProcess:
    """What a pod needs from the runner: its identity, env and CPU."""

    uid: str
    namespace: str
    name: str
    container: str
    env: Mapping[str, str]
    cpu_limit_m: int | None
    cpu_request_m: int | None


def _cpu(resources: Mapping[str, Any], kind: str) -> int | None:
    value = (resources.get(kind) or {}).get("cpu")
    if value is None:
        return None
    try:
        return cpu_millis(value)
    except QuantityError:
        return None  # the apiserver validated it; unreachable but never fatal


def desired(
    pod: Mapping[str, Any], *, partition_env: str = PARTITION_ENV, node: str = NODE_NAME
) -> PodProcess | None:
    """The process pod ``pod`` should have, or None (not ours, not Running, terminating)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    if meta.get("deletionTimestamp") or spec.get("nodeName") != node:
        return None
    if (pod.get("status") or {}).get("phase") != "Running":
        return None
    for container in spec.get("containers") or []:
        env = {
            str(e["name"]): str(e["value"])
            for e in container.get("env") or []
            if "value" in e and e.get("name")
        }
        if partition_env not in env:
            continue
        resources = (
            _actuated(pod, str(container.get("name", ""))) or container.get("resources") or {}
        )
        return PodProcess(
            uid=str(meta["uid"]),
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            container=str(container.get("name", "")),
            env=env,
            cpu_limit_m=_cpu(resources, "limits"),
            cpu_request_m=_cpu(resources, "requests"),
        )
    return None


def _actuated(pod: Mapping[str, Any], container: str) -> Mapping[str, Any] | None:
    """The resources the status reports as applied to ``container``, or None if none yet."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container and status.get("resources") is not None:
            resources: Mapping[str, Any] = status["resources"]
            return resources
    return None


@dataclass
class _Running:
    pod: PodProcess
    proc: Proc
    port: int
    stalled: bool = False


class PodRunner:
    """Keeps one consumer process per Running managed pod; see the module docstring."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        overrides: Mapping[str, str],
        namespace: str | None = None,
        argv: Sequence[str] = (sys.executable, str(CONSUMER_APP)),
        limiter: cpulimit.Limiter | None = None,
        interval: float = 0.5,
        out: Printer = print,
    ) -> None:
        self.cluster = cluster
        self.overrides = dict(overrides)
        self.namespace = namespace
        self.argv = list(argv)
        self.interval = interval
        self.out = out
        self.limiter = limiter or cpulimit.detect(cluster.name, out=out)
        self.logs = cluster.logs_dir / "pods"
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stall_until: float | None = None
        self._closed = False
        self.errors: list[str] = []
        #: Completed passes of :meth:`sync`: "the runner has seen this pod state" is a
        #: count to wait for, never a sleep.
        self.passes = 0

    # -- one pass -------------------------------------------------------------------------

    def _pods(self) -> list[Mapping[str, Any]]:
        selector = urllib.parse.urlencode({"fieldSelector": f"spec.nodeName={NODE_NAME}"})
        base = f"/api/v1/namespaces/{self.namespace}/pods" if self.namespace else "/api/v1/pods"
        items: list[Mapping[str, Any]] = self.cluster.api("GET", f"{base}?{selector}")["items"]
        return items

    def sync(self) -> None:
        """Make the processes match the pods, once."""
        pods = self._pods()
        wanted = {p.uid: p for p in (desired(pod) for pod in pods) if p is not None}
        with self._lock:
            if self._closed:  # close() ran while we listed: start nothing after it
                return
            for uid in [uid for uid in self._running if uid not in wanted]:
                self._stop_one(uid, why="pod gone")
            for uid, pod in wanted.items():
                current = self._running.get(uid)
                if current is not None and not current.proc.alive():
                    self._note(f"{pod.namespace}/{pod.name}: consumer exited; restarting it")
                    self._stop_one(uid, why="exited")
                    current = None
                if current is None:
                    self._start_one(pod)
                elif (current.pod.cpu_limit_m, current.pod.cpu_request_m) != (
                    pod.cpu_limit_m,
                    pod.cpu_request_m,
                ):
                    self._resize(current, pod)
            self._apply_stall()
            self._publish_targets()
            self.passes += 1

    def _start_one(self, pod: PodProcess) -> None:
        port = process.free_ports(["metrics"])["metrics"]
        env = {
            **pod.env,
            **self.overrides,
            "METRICS_PORT": str(port),
            "METRICS_ADDRESS": "127.0.0.1",
            "POD_NAME": pod.name,
            "POD_NAMESPACE": pod.namespace,
        }
        self.limiter.set(
            pod.uid, limit_millicores=pod.cpu_limit_m, request_millicores=pod.cpu_request_m
        )
        log = self.logs / f"{pod.namespace}_{pod.name}.log"
        proc = process.spawn(f"pod {pod.namespace}/{pod.name}", self.argv, log, env=env)
        try:
            self.limiter.attach(pod.uid, proc.pid)
        except OSError as exc:
            process.stop(proc)
            raise RuntimeError(f"cannot put {pod.name} under its CPU limit: {exc}") from exc
        self._running[pod.uid] = _Running(pod=pod, proc=proc, port=port)
        self.out(
            f"pod runner: started {pod.namespace}/{pod.name} (pid {proc.pid}, "
            f"cpu limit {_m(pod.cpu_limit_m)}, partitions {pod.env.get(PARTITION_ENV)})"
        )

    def _resize(self, current: _Running, pod: PodProcess) -> None:
        self.limiter.set(
            pod.uid, limit_millicores=pod.cpu_limit_m, request_millicores=pod.cpu_request_m
        )
        self.out(
            f"pod runner: resized {pod.namespace}/{pod.name} in place (pid {current.proc.pid}): "
            f"cpu limit {_m(current.pod.cpu_limit_m)} -> {_m(pod.cpu_limit_m)}"
        )
        current.pod = pod

    def _stop_one(self, uid: str, *, why: str) -> None:
        entry = self._running.pop(uid)
        _signal(entry.proc, signal.SIGCONT)  # a paused process would not see SIGTERM
        process.stop(entry.proc, timeout=5.0)
        self.limiter.release(uid)
        self.out(f"pod runner: stopped {entry.pod.namespace}/{entry.pod.name} ({why})")

    def _note(self, line: str) -> None:
        self.errors.append(line)
        self.out(f"pod runner: {line}")

    def _publish_targets(self) -> None:
        self.cluster.set_pod_targets(
            {
                f"127.0.0.1:{r.port}": {"namespace": r.pod.namespace, "pod": r.pod.name}
                for r in self._running.values()
            }
        )

    # -- stalls ---------------------------------------------------------------------------

    def stall(self, seconds: float) -> None:
        """A downstream outage of ``seconds``: every consumer, also one started meanwhile,
        is frozen (SIGSTOP) until it ends, then continued.

        SIGSTOP takes effect when the process next runs: a process waiting for its CPU quota
        (or for a core, on a busy machine) shows as stopped in /proc a moment later."""
        with self._lock:
            self._stall_until = time.monotonic() + seconds
            self._apply_stall()

    def end_stall(self) -> None:
        """End the current stall now: every frozen consumer is continued."""
        self.stall(0.0)

    def _apply_stall(self) -> None:
        stalled = self._stall_until is not None and time.monotonic() < self._stall_until
        for entry in self._running.values():
            if entry.stalled != stalled:
                _signal(entry.proc, signal.SIGSTOP if stalled else signal.SIGCONT)
                entry.stalled = stalled
                self.out(
                    f"pod runner: {'stalled' if stalled else 'continued'} "
                    f"{entry.pod.namespace}/{entry.pod.name} (pid {entry.proc.pid})"
                )

    # -- views ----------------------------------------------------------------------------

    def processes(self) -> dict[str, tuple[PodProcess, Proc]]:
        """Pod name -> (what it was started with, its process), for the running ones."""
        with self._lock:
            return {r.pod.name: (r.pod, r.proc) for r in self._running.values()}

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> PodRunner:
        self._thread = threading.Thread(target=self._loop, name="pod-runner", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # the apiserver may be busy: report, go on
                self._note(f"sync failed: {exc!r}")
            self._stop.wait(self.interval)

    def close(self) -> None:
        """Stop the loop and every process it started."""
        self._stop.set()
        with self._lock:
            self._closed = True
            for uid in list(self._running):
                self._stop_one(uid, why="runner closed")
            with contextlib.suppress(OSError):
                self._publish_targets()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.limiter.close()

    def __enter__(self) -> PodRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _signal(proc: Proc, sig: signal.Signals) -> None:
    if proc.alive():  # proves the pid is still the process we started
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def _m(millicores: int | None) -> str:
    return "none" if millicores is None else f"{millicores}m"


def wait_for_pods(runner: PodRunner, count: int, *, timeout: float) -> None:
    """Until the runner has exactly ``count`` live processes."""
    process.wait_until(
        lambda: sum(p.alive() for _, p in runner.processes().values()) == count,
        timeout=timeout,
        what=f"{count} consumer processes",
    )
