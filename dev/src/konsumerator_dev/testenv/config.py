"""Version pins and on-disk locations of the test environment.

Why this module exists: the control-plane binaries take 20-30 minutes to build cold, so they
are cached *outside* the repository, in a directory whose name carries every version pin. A
new pin therefore means a new directory (never a half-upgraded one), and a second build with
the cache present only checks that the binaries are there. Cluster state (PKI, etcd data,
logs, pids, ports) lives next to the binaries, one directory per named cluster, so the
developer's ``make cluster-up`` cluster and the pytest session's cluster never share state.

Overrides (environment):

* ``KONSUMERATOR_TESTENV_CACHE``: root of the cache (default
  ``$XDG_CACHE_HOME/konsumerator/testenv`` or ``~/.cache/konsumerator/testenv``).
* ``KONSUMERATOR_TESTENV_K8S_VERSION``, ``..._ETCD_VERSION``, ``..._KWOK_VERSION``: pins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "KONSUMERATOR_TESTENV_CACHE"

#: Kubernetes 1.36 is the release KWOK v0.8.0 is built against (client-go v0.36.x).
K8S_VERSION = "v1.36.3"
#: kubeadm pins etcd 3.6.x for Kubernetes 1.34-1.36; newest 3.6 patch on the module proxy.
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"

#: Component names, in start order. ``prometheus`` is Debian's, not built.
GO_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
)


@dataclass(frozen=True)
class Versions:
    """The pins that key the binary cache."""

    kubernetes: str = K8S_VERSION
    etcd: str = ETCD_VERSION
    kwok: str = KWOK_VERSION

    @classmethod
    def from_env(cls) -> Versions:
        return cls(
            kubernetes=os.environ.get("KONSUMERATOR_TESTENV_K8S_VERSION", K8S_VERSION),
            etcd=os.environ.get("KONSUMERATOR_TESTENV_ETCD_VERSION", ETCD_VERSION),
            kwok=os.environ.get("KONSUMERATOR_TESTENV_KWOK_VERSION", KWOK_VERSION),
        )

    @property
    def key(self) -> str:
        """Directory-name fragment, e.g. ``k8s-1.36.3_etcd-3.6.16_kwok-0.8.0``."""
        return (
            f"k8s-{self.kubernetes.lstrip('v')}_etcd-{self.etcd.lstrip('v')}"
            f"_kwok-{self.kwok.lstrip('v')}"
        )


def cache_root() -> Path:
    """Root of everything the test environment writes (binaries, logs, cluster state)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return (base / "konsumerator" / "testenv").resolve()


def bin_dir(versions: Versions | None = None) -> Path:
    """Where the built binaries of these versions live (complete only if ``build`` finished)."""
    return cache_root() / f"bin-{(versions or Versions.from_env()).key}"


def clusters_root() -> Path:
    return cache_root() / "clusters"


def cluster_dir(name: str) -> Path:
    return clusters_root() / name


def build_log_dir() -> Path:
    return cache_root() / "build-logs"
