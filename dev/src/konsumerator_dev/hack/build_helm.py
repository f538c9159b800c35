"""Build (or reuse) the pinned ``helm`` binary the install tests run, cached outside the repo.

Usage: ``konsumerator-dev hack build-helm`` prints the binary's path. The first run compiles
``helm.sh/helm/v3/cmd/helm`` at ``HELM_VERSION`` from its Go module (a Go toolchain and the Go
module proxy are needed; about 2-5 minutes); later runs only check the cached binary. The cache
directory carries the version in its name, so a new pin never reuses an old binary:

    ${KONSUMERATOR_HELM_CACHE:-${XDG_CACHE_HOME:-~/.cache}/konsumerator/helm}/helm-<version>/helm

``KONSUMERATOR_HELM=/path/to/helm`` skips all of this and uses that binary instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from konsumerator_dev import clikit

HELM_VERSION = "v3.22.0"
MODULE = "helm.sh/helm/v3/cmd/helm"


def cache_dir() -> Path:
    root = os.environ.get("KONSUMERATOR_HELM_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "konsumerator" / "helm"


def binary_path(version: str = HELM_VERSION) -> Path:
    return cache_dir() / f"helm-{version}" / "helm"


def _reports(binary: Path, version: str) -> bool:
    """``binary`` runs and is ``version``'s minor release.

    A ``go install`` build carries no release ldflags, so it reports ``v3.22`` rather than
    ``v3.22.0``; the patch level is vouched for by the cache directory's name, which only a
    build of that exact module version is moved into.
    """
    try:
        out = subprocess.run(
            [str(binary), "version", "--template", "{{.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return False
    minor = ".".join(version.split(".")[:2])
    reported = out.stdout.strip()
    return out.returncode == 0 and reported in (version, minor)


def ensure(version: str = HELM_VERSION) -> Path:
    """The path of a working helm ``version``; builds it on the first call."""
    override = os.environ.get("KONSUMERATOR_HELM")
    if override:
        return Path(override)
    target = binary_path(version)
    if target.is_file() and _reports(target, version):
        return target
    go = shutil.which("go")
    if go is None:
        raise SystemExit("helm is not cached and there is no Go toolchain to build it")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as gobin:
        env = {**os.environ, "GOBIN": gobin, "CGO_ENABLED": "0"}
        print(f"building helm {version} from {MODULE} (once)", file=sys.stderr)
        subprocess.run([go, "install", f"{MODULE}@{version}"], env=env, check=True)
        built = Path(gobin) / "helm"
        if not _reports(built, version):
            raise SystemExit(f"the built helm does not report version {version}")
        os.replace(built, target)  # atomic: a concurrent reader sees the old or the new file
    return target


@click.command("build-helm", help="build (or reuse) the pinned helm binary; print its path")
def main() -> int:
    print(ensure())
    return 0


if __name__ == "__main__":
    clikit.run(main, prog_name="python -m konsumerator_dev.hack.build_helm")
