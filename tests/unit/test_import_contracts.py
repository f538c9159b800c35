"""The import-linter contracts in ``pyproject.toml`` catch the imports they are meant to forbid.

A contract that names the wrong module (``httpx`` where the code imports ``httpx2``) or is
hidden by an ``ignore_imports`` keeps passing whatever the code does. So each case copies
the two packages it checks (``konsumerator`` and the dev tooling, ``konsumerator_dev``) to a
temporary directory, plants one forbidden import there (a new module in a package, a last
line in a plain module such as ``konsumerator.app``), runs ``lint-imports``
on the copy with the project's configuration, and checks that exactly the expected
contracts break.

Aspects tested:
- the unmodified copy keeps every contract (so a failure below is caused by the plant);
- each planted import breaks exactly the contracts named for it;
- every contract in ``pyproject.toml`` is broken by at least one case.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

LAYERS = "Layers: cli > app > controllers > obs > (prom | kube) > runtime > api > domain"
PURE = "The domain core is pure: no I/O, no asyncio, no clients, no logging, no clock"
GENERIC = "The runtime is generic: it knows nothing about Kafka or Consumers"
ONLY_KUBE = "Only the kube layer talks to the API server"
ONLY_HTTP = "Only kube and prom open HTTP connections (app builds the client)"
OBS = "Metrics exporters observe, never act: obs does not use kube"
NO_DEV = "The operator never imports dev tooling or test libraries (not in the wheel or image)"
DEV_ACYCLIC = (
    "The dev tooling has no import cycles (e.g. the demo never imports the CLI that starts it)"
)


@dataclass(frozen=True)
class Plant:
    """``line`` planted in ``module`` (dotted): a new ``planted.py`` in a package."""

    module: str
    line: str
    breaks: frozenset[str]

    def __str__(self) -> str:
        return f"{self.module}: {self.line}"


PLANTS = [
    # The holes issue 11 names: the client really imported is httpx2, and api <-> domain.
    Plant("konsumerator.domain", "import httpx2", frozenset({PURE})),
    Plant("konsumerator.domain", "from konsumerator.api import v1", frozenset({LAYERS})),
    Plant(
        "konsumerator.domain",
        "from konsumerator.controllers import reconciling",
        frozenset({LAYERS, PURE}),
    ),
    Plant("konsumerator.domain", "import lightkube", frozenset({PURE, ONLY_KUBE})),
    Plant("konsumerator.domain", "import structlog", frozenset({PURE})),
    Plant("konsumerator.api", "import asyncio", frozenset({PURE})),
    Plant("konsumerator.api", "import prometheus_client", frozenset({PURE})),
    Plant("konsumerator.runtime", "from konsumerator.api import v1", frozenset({GENERIC})),
    Plant("konsumerator.controllers", "import lightkube", frozenset({ONLY_KUBE})),
    Plant("konsumerator.controllers", "import httpx2", frozenset({ONLY_HTTP})),
    Plant("konsumerator.obs", "from konsumerator.kube import writing", frozenset({OBS})),
    Plant("konsumerator.obs", "import lightkube", frozenset({ONLY_KUBE})),
    # Also OBS: the actuator imports kube, and indirect imports count for that contract.
    Plant(
        "konsumerator.obs",
        "from konsumerator.controllers import acting",
        frozenset({LAYERS, OBS}),
    ),
    Plant("konsumerator.app", "from konsumerator_dev.testenv import cluster", frozenset({NO_DEV})),
    Plant("konsumerator.kube", "import pytest", frozenset({NO_DEV})),
    # testenv imports paths: paths importing testenv closes a cycle.
    Plant(
        "konsumerator_dev.paths", "from konsumerator_dev import testenv", frozenset({DEV_ACYCLIC})
    ),
]

_VERDICT = re.compile(r"^(?P<name>.+?) (?P<verdict>KEPT|BROKEN)(?: \(.*\))?$")


PACKAGES = {"konsumerator": ROOT / "src", "konsumerator_dev": ROOT / "dev" / "src"}


def _copy_packages(into: Path) -> Path:
    src = into / "src"
    for name, parent in PACKAGES.items():
        shutil.copytree(
            parent / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    return src


def _verdicts(src: Path) -> dict[str, str]:
    """Run lint-imports on the package under ``src``: contract name -> KEPT or BROKEN."""
    # PYTHONPATH comes before the editable installs' path entries, so the copies are the
    # packages analysed; the plants below prove it (they would pass on the real tree).
    env = {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "400"}
    done = subprocess.run(
        [str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=src.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    verdicts = {
        m["name"]: m["verdict"] for line in done.stdout.splitlines() if (m := _VERDICT.match(line))
    }
    assert verdicts, f"no contract verdicts in lint-imports output:\n{done.stdout}{done.stderr}"
    assert (done.returncode != 0) == ("BROKEN" in verdicts.values()), done.stdout
    return verdicts


def _contract_names() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["name"] for c in config["tool"]["importlinter"]["contracts"]}


def test_every_contract_has_a_case_that_breaks_it() -> None:
    assert _contract_names() == set().union(*(p.breaks for p in PLANTS))


def test_the_unmodified_copy_keeps_every_contract(tmp_path: Path) -> None:
    verdicts = _verdicts(_copy_packages(tmp_path))
    assert verdicts == dict.fromkeys(_contract_names(), "KEPT")


@pytest.mark.parametrize("plant", PLANTS, ids=str)
def test_a_planted_import_breaks_exactly_its_contracts(tmp_path: Path, plant: Plant) -> None:
    src = _copy_packages(tmp_path)
    target = src.joinpath(*plant.module.split("."))
    if target.is_dir():
        (target / "planted.py").write_text(f"{plant.line}\n")
    else:
        with target.with_suffix(".py").open("a") as module:
            module.write(f"\n{plant.line}\n")
    verdicts = _verdicts(src)
    broken = {name for name, verdict in verdicts.items() if verdict == "BROKEN"}
    assert broken == plant.breaks
