"""Commands the docs tell users to type, run with the cluster's kubectl against a real operator.

Aspects tested:

* docs/operations.md, "Day to day": the ``kubectl get deploy ... -o custom-columns`` line
  prints, for each instance, its name, its partition list, its scaling status, its CPU
  request and its ready replicas (a ``-L`` next to ``-o custom-columns`` would be ignored
  by kubectl without a word);
* ``kubectl get consumers`` with ``replicas: 0`` in the template (a stopped Consumer) shows
  every instance RUNNING, as docs/operations.md and the README explain: RUNNING counts
  Deployments, not pods.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from operating import (
    consumer,
    converged,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
)

from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

ROOT = Path(__file__).resolve().parents[2]


def documented(section: str, starts: str) -> list[str]:
    """The arguments of the command in ``section`` of docs/operations.md starting so."""
    text = (ROOT / "docs" / "operations.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"^```sh\n(.*?)^```", body, re.M | re.S)
    commands = block.replace("\\\n", " ").splitlines()
    (command,) = [c for c in commands if c.startswith(starts)]
    words = shlex.split(command, comments=True)
    assert words[0] == "kubectl"
    return words[1:]


def table(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def test_day_to_day_deployment_listing_shows_partitions_and_status(
    cluster: Cluster, namespace: str
) -> None:
    args = documented("Day to day", "kubectl get deploy")
    with in_process_operator(cluster):
        cluster.apply(consumer("listed", namespace, num_partitions=6, per_instance=2))
        eventually(
            lambda: get_consumer(cluster, namespace, "listed"),
            lambda obj: converged(obj, 3),
            timeout=60,
            what="the Consumer to converge",
        )
        rows = table(cluster.kubectl(*args, "-n", namespace).stdout)

    assert rows[0] == ["NAME", "PARTITIONS", "STATUS", "CPU", "READY"]
    listed = {row[0]: row[1:4] for row in rows[1:]}
    assert listed == {
        "listed-consumer-0": ["0,1", "RUNNING", "100m"],
        "listed-consumer-1": ["2,3", "RUNNING", "100m"],
        "listed-consumer-2": ["4,5", "RUNNING", "100m"],
    }


def test_a_stopped_consumer_shows_its_instances_running(cluster: Cluster, namespace: str) -> None:
    manifest = consumer("stopped", namespace, num_partitions=4, per_instance=2)
    manifest["spec"]["deploymentTemplate"]["replicas"] = 0
    with in_process_operator(cluster):
        cluster.apply(manifest)
        eventually(
            lambda: get_consumer(cluster, namespace, "stopped"),
            lambda obj: converged(obj, 2),
            timeout=60,
            what="the Consumer to converge",
        )
        found = managed(cluster, namespace)
        rows = table(cluster.kubectl("get", "consumers", "-n", namespace, "stopped").stdout)

    assert {name: d["spec"]["replicas"] for name, d in found.items()} == {
        "stopped-consumer-0": 0,
        "stopped-consumer-1": 0,
    }
    header, values = rows
    columns = dict(zip(header, values, strict=False))
    assert (columns["EXPECTED"], columns["RUNNING"]) == ("2", "2")
