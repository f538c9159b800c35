"""The Go operator's developer commands keep their meaning: ``make run`` and ``make build``.

* ``make run`` installs the CRD with the operator's own client (server-side apply, field
  manager ``konsumerator``: no kubectl of the machine's is needed) and runs the operator
  against the current kubeconfig with its endpoints on loopback only.
* ``make build`` builds the wheel and, with no running container engine, says the image was
  not built instead of failing; it runs under CI's reduced PATH (``hack/reduced-path.sh``).
* The wheel holds the operator package only: no test environment, simulator, benchmark or
  generator code (those live in ``konsumerator_dev``, the ``dev/`` workspace member).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest
from operating import wait_until

from konsumerator.api import keys
from konsumerator_dev.testenv.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{keys.PLURAL}.{keys.GROUP}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def applied_by_konsumerator(cluster: Cluster) -> bool:
    crd: dict[str, Any] = cluster.api("GET", CRD_PATH)
    return any(
        entry.get("manager") == keys.FIELD_MANAGER and entry.get("operation") == "Apply"
        for entry in crd["metadata"].get("managedFields", [])
    )


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return int(response.status) == 200
    except OSError:
        return False


def test_make_run_installs_the_crd_and_serves_on_loopback(cluster: Cluster) -> None:
    metrics, health = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    args = (
        f"--metrics-bind-address 127.0.0.1:{metrics} --health-probe-bind-address 127.0.0.1:{health}"
    )
    log = ROOT / ".pytest_cache" / "make-run.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "-s", "run", f"RUN_ARGS={args}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: healthy(health), timeout=120, what=f"make run healthy ({log})")
        assert applied_by_konsumerator(cluster)
        assert listening_addresses(health) == {"127.0.0.1"}
        assert listening_addresses(metrics) == {"127.0.0.1"}
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    assert "serverside-applied" in log.read_text()


@pytest.fixture(scope="module")
def make_build(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``make build`` once under CI's reduced PATH: its output and the dist directory."""
    dist = tmp_path_factory.mktemp("dist")
    script = (
        f"source {ROOT / 'hack' / 'reduced-path.sh'}\n"
        "trap 'rm -rf \"$REDUCED_PATH_GUARD\"' EXIT\n"
        f"make -s -C {ROOT} build DIST={dist}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV"}}
    done = subprocess.run(
        ["/bin/bash", "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    return done, dist


def test_make_build_builds_the_wheel_under_the_reduced_path(
    make_build: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    done, tmp_path = make_build
    assert done.returncode == 0, done.stderr + done.stdout
    wheels = list(tmp_path.glob("konsumerator-*.whl"))
    assert len(wheels) == 1, done.stdout
    assert "image not built" in done.stdout


def test_the_wheel_holds_the_operator_and_no_dev_tooling(
    make_build: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    done, dist = make_build
    assert done.returncode == 0, done.stderr + done.stdout
    (wheel,) = dist.glob("konsumerator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    packages = {name.split("/")[0] for name in names if not name.endswith(".dist-info/RECORD")}
    assert {p for p in packages if not p.endswith(".dist-info")} == {"konsumerator"}
    assert "konsumerator/cli.py" in names
    assert "konsumerator/api/crd.yaml" in names  # package data the operator reads
    # No test environment, simulator, benchmark or generator code, under any name.
    dev_code = [
        name
        for name in names
        if re.search(r"(^|/)(konsumerator_dev|testenv|sim|bench|hack)(/|\.py$)", name)
    ]
    assert dev_code == []
