"""Bringing local clusters up and down: create or reuse, start and stop tiers, tear down.

``up`` is idempotent (it reuses a healthy cluster of the same binaries and restarts a
stopped Prometheus or Kafka tier); ``down`` stops exactly the recorded processes and deletes
the directory; ``reap_orphans`` removes the clusters of pytest sessions that were killed.
``start_kafka``/``stop_kafka``/``start_prometheus``/``stop_prometheus`` change one tier of a
running cluster (tests stop Prometheus to see the operator without metrics).
"""

from __future__ import annotations

import os
import shutil
import ssl
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from konsumerator_dev.testenv import cpulimit, pki, process
from konsumerator_dev.testenv import state as disk
from konsumerator_dev.testenv.build import built_bin_dir, prometheus_binary
from konsumerator_dev.testenv.cluster import (
    COMPONENTS,
    CORE,
    DEFAULT_NAME,
    KAFKA_COMPONENTS,
    PORTS,
    Cluster,
    Printer,
)
from konsumerator_dev.testenv.config import Versions, cluster_dir
from konsumerator_dev.testenv.errors import TestenvError
from konsumerator_dev.testenv.launcher import Launcher, http_ok
from konsumerator_dev.testenv.process import Proc
from konsumerator_dev.testenv.state import list_clusters


def _silent(_: str) -> None:
    pass


def _say(line: str) -> None:
    print(line, flush=True)


def up(
    name: str = DEFAULT_NAME,
    *,
    owned: bool = False,
    with_kafka: bool = False,
    out: Printer = _say,
) -> Cluster:
    """Start cluster ``name``, or reuse it if it is already running and healthy.

    ``owned=True`` (the pytest session) ties every process to the calling process: they die
    with it, and a later ``reap_orphans`` removes what is left of its state. ``with_kafka``
    also starts (or, on reuse, restarts if needed) the Kafka broker and the lag exporter.
    """
    bins = built_bin_dir(Versions.from_env())
    prometheus_binary()
    directory = cluster_dir(name)
    with disk.lock(name):
        state = disk.read(directory)
        if state is not None:
            reused = _try_reuse(state, bins, out)
            if reused is not None:
                if with_kafka and not reused.kafka_running():
                    out("starting kafka in the running cluster")
                    _stop_kafka(state)
                    Launcher(reused, state, out, tie_to_parent=disk.is_owner(state)).kafka()
                return reused
            _stop_all(state)
        if directory.exists():
            shutil.rmtree(directory)
        (directory / "logs").mkdir(parents=True)
        cluster = Cluster(
            name=name,
            state_dir=directory,
            bin_dir=bins,
            ports=process.free_ports(PORTS),
        )
        owner = None
        if owned:
            owner = {"pid": os.getpid(), "start_ticks": process.start_ticks(os.getpid()) or 0}
        state = {
            "name": name,
            "state_dir": str(directory),
            "bin_dir": str(bins),
            "ports": dict(cluster.ports),
            "owner": owner,
            "processes": {},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        disk.write(directory, state)
        out(f"starting cluster {name!r} in {directory}")
        pki.generate(cluster.pki_dir)
        pki.write_kubeconfig(
            cluster.kubeconfig,
            server=cluster.api_url,
            pki=cluster.pki_dir,
            cluster=f"testenv-{name}",
        )
        starter = Launcher(cluster, state, out, tie_to_parent=owned)
        try:
            starter.all(with_kafka=with_kafka)
        except BaseException:
            _stop_all(state)
            state["failed"] = True
            disk.write(directory, state)
            out(f"cluster {name!r} failed to start; its logs are in {cluster.logs_dir}")
            raise
        state["start_seconds"]["total"] = round(time.monotonic() - starter.started, 1)
        disk.write(directory, state)
        return cluster


def _try_reuse(state: dict[str, Any], bins: Path, out: Printer) -> Cluster | None:
    cluster = Cluster._from_state(state)
    procs = cluster.processes()
    core = CORE
    if not set(PORTS) <= set(cluster.ports):
        out(f"cluster {cluster.name!r} was started by an older version; recreating it")
        return None
    if Path(state["bin_dir"]) != bins:
        out(f"cluster {cluster.name!r} was started with other binaries; recreating it")
        return None
    if state.get("failed") or not all(n in procs and procs[n].alive() for n in core):
        dead = [n for n in core if n not in procs or not procs[n].alive()]
        if dead:
            out(f"cluster {cluster.name!r} is broken ({', '.join(dead)} not running); recreating")
        return None
    try:
        healthy = http_ok(f"{cluster.api_url}/readyz", cluster.admin_ssl)
    except (OSError, ssl.SSLError) as exc:
        healthy = False
        out(f"cluster {cluster.name!r}: apiserver does not answer ({exc})")
    if not healthy:
        out(f"cluster {cluster.name!r} apiserver is not ready; recreating")
        return None
    if "prometheus" not in procs or not procs["prometheus"].alive():
        out("prometheus was stopped; starting it again")
        Launcher(cluster, state, out, tie_to_parent=disk.is_owner(state)).prometheus()
    out(f"cluster {cluster.name!r} is already running; reusing it")
    return cluster


def down(name: str = DEFAULT_NAME, *, out: Printer = _say) -> bool:
    """Stop exactly the processes recorded for ``name`` and delete its state. False if none."""
    directory = cluster_dir(name)
    with disk.lock(name):
        state = disk.read(directory)
        if state is None and not directory.exists():
            out(f"no cluster {name!r}")
            return False
        if state is not None:
            procs = {n: Proc.from_json(p) for n, p in state.get("processes", {}).items()}
            for component in reversed(COMPONENTS):
                proc = procs.get(component)
                if proc is not None and proc.alive():
                    out(f"  stopping {component} (pid {proc.pid})")
                    process.stop(proc)
        # consumer processes a pod runner of this cluster left behind (it was killed)
        for pid in cpulimit.reap(name):
            out(f"  stopped a pod runner's consumer (pid {pid})")
        shutil.rmtree(directory, ignore_errors=True)
        if state is not None and state.get("owner"):
            # A per-run (pytest-<pid>) name is never used again: drop its lock file too.
            disk.lock_file(name).unlink(missing_ok=True)
        out(f"cluster {name!r} stopped and its state removed")
        return True


def reap_orphans(out: Printer = _silent) -> list[str]:
    """Tear down clusters whose owning process (a killed pytest run) no longer exists."""
    reaped = []
    for name in list_clusters():
        state = disk.read(cluster_dir(name))
        if state is not None and not disk.owner_alive(state.get("owner")):
            down(name, out=out)
            reaped.append(name)
    return reaped


def _stop_kafka(state: dict[str, Any]) -> None:
    for name in reversed(KAFKA_COMPONENTS):
        record = state["processes"].pop(name, None)
        if record is not None:
            process.stop(Proc.from_json(record))


def _stop_all(state: Mapping[str, Any]) -> None:
    procs = {n: Proc.from_json(p) for n, p in state.get("processes", {}).items()}
    for name in reversed(COMPONENTS):
        if name in procs:
            process.stop(procs[name])


def start_kafka(cluster: Cluster, *, timeout: float = 120.0) -> None:
    """Start the broker (fresh storage) and the lag exporter; no-op if both run."""
    with disk.lock(cluster.name):
        state = disk.read(cluster.state_dir)
        if state is None:
            raise TestenvError(f"cluster {cluster.name} has no state")
        if cluster.kafka_running():
            return
        _stop_kafka(state)
        disk.write(cluster.state_dir, state)
        Launcher(cluster, state, _silent, tie_to_parent=disk.is_owner(state)).kafka(timeout)


def stop_kafka(cluster: Cluster) -> None:
    """Stop the lag exporter and the broker (its data is formatted anew at the next start)."""
    with disk.lock(cluster.name):
        state = disk.read(cluster.state_dir)
        if state is None:
            raise TestenvError(f"cluster {cluster.name} has no state")
        _stop_kafka(state)
        disk.write(cluster.state_dir, state)


def stop_prometheus(cluster: Cluster) -> None:
    """Stop Prometheus (to test the operator without metrics); data and port are kept."""
    with disk.lock(cluster.name):
        state = disk.read(cluster.state_dir)
        if state is None:
            raise TestenvError(f"cluster {cluster.name} has no state")
        record = state["processes"].pop("prometheus", None)
        if record is not None:
            process.stop(Proc.from_json(record))
        disk.write(cluster.state_dir, state)


def start_prometheus(cluster: Cluster, *, timeout: float = 60.0) -> None:
    """Start Prometheus again on the same port with the same data; no-op if running."""
    with disk.lock(cluster.name):
        state = disk.read(cluster.state_dir)
        if state is None:
            raise TestenvError(f"cluster {cluster.name} has no state")
        record = state["processes"].get("prometheus")
        if record is not None and Proc.from_json(record).alive():
            return
        Launcher(cluster, state, _silent, tie_to_parent=disk.is_owner(state)).prometheus(timeout)
