"""A local cluster's record on disk: its state file, its lock, and who owns it.

One directory per named cluster (:func:`~konsumerator_dev.testenv.config.cluster_dir`) holds
``state.json``: name, ports, binaries, the owner (a pytest session, or none for a developer's
cluster) and every started process with its start time, so ``down`` stops exactly those.
Writes are atomic (temporary file, then rename); a file lock per name serialises
``up``/``down``/restarts across processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from konsumerator_dev.testenv.config import cluster_dir, clusters_root
from konsumerator_dev.testenv.process import Proc


def read(directory: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return data


def write(directory: Path, state: Mapping[str, Any]) -> None:
    tmp = directory / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(directory / "state.json")


def lock_file(name: str) -> Path:
    return clusters_root() / f".{name}.lock"


@contextlib.contextmanager
def lock(name: str) -> Iterator[None]:
    """Serialise up/down/prometheus restarts of one cluster across processes."""
    path = lock_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def owner_alive(owner: Mapping[str, Any] | None) -> bool:
    if not owner:
        return True  # a dev cluster has no owner process: it lives until `down`
    return Proc("owner", int(owner["pid"]), int(owner["start_ticks"]), "").alive()


def is_owner(state: Mapping[str, Any]) -> bool:
    """Processes are tied to the owner (pytest) only when the owner itself starts them."""
    owner = state.get("owner")
    return owner is not None and int(owner["pid"]) == os.getpid()


def list_clusters() -> list[str]:
    root = clusters_root()
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if (d / "state.json").is_file())


def running_owner(name: str) -> int | None:
    """Pid of the live process that owns cluster ``name`` (a pytest session), else None."""
    state = read(cluster_dir(name))
    owner = state.get("owner") if state else None
    if owner and owner_alive(owner):
        return int(owner["pid"])
    return None
