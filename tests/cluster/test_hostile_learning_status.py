"""``status.learning`` written by someone else, on a real apiserver and a real Prometheus.

Anyone with access to the status subresource (a user, a restored backup) can write
``status.learning``, and the operator reads it back every pass to resume learning. The
test writes one the operator could never have written (``ratePerCore`` 10^15 for a
``configuredRatePerCore`` of 1000: outside the 0.3-3x bounds) before the operator starts:

* the apiserver itself refuses a non-integer ``ratePerCore`` (``"NaN"``): the CRD's
  schema types it;
* the operator does not size with it (on the old code it clamped it to 3x, 3000 msg/s per
  core, a third of the CPU, and the explanation said ``(learned; configured 1000)``): every
  scaling explanation names the configured rate until a real sample is learned, and
  ``status.learning.message`` says the value was dropped.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from operating import eventually, get_consumer, in_process_operator, managed
from test_operator_learning import (
    CORES,
    POD,
    Group,
    SaturatedFeed,
    _cpu_query,
    _learning,
    _learning_consumer,
    feeds,  # noqa: F401  (the fixture)
)

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster, MetricsExporter

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

FOREIGN = 10**15


def _write_learning(cluster: Cluster, namespace: str, name: str, rate: object) -> Any:
    learning = {
        "state": "Learning",
        "reason": "Learned",
        "message": "restored from a backup",
        "ratePerCore": rate,
        "configuredRatePerCore": 1000,
        "samples": 7,
        "lastLearnedTime": "2026-01-01T00:00:00Z",
    }
    return cluster.kubectl(
        "patch",
        "consumers.konsumerator.lwolf.org",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"learning": learning}}),
        check=False,
    )


def _decisions(cluster: Cluster, namespace: str) -> list[str]:
    return [
        (d["metadata"].get("annotations") or {}).get(keys.SCALING_DECISION, "")
        for d in managed(cluster, namespace).values()
    ]


def test_a_foreign_learned_rate_is_dropped_not_sized_with_and_the_status_says_so(
    cluster: Cluster,
    namespace: str,
    exporter: MetricsExporter,
    feeds: list[SaturatedFeed],  # noqa: F811
) -> None:
    name = "fl"
    topic = f"{namespace}-{name}"
    pods = {f"{name}-consumer-{i}{POD}": CORES for i in range(2)}
    feeds.append(SaturatedFeed(exporter, [Group(topic=topic, partitions=2, cpu=pods)]))
    cluster.apply(_learning_consumer(name, namespace, cluster, cpu_query=_cpu_query(topic)))

    refused = _write_learning(cluster, namespace, name, "NaN")
    assert refused.returncode != 0
    assert "ratePerCore" in refused.stderr
    written = _write_learning(cluster, namespace, name, FOREIGN)
    assert written.returncode == 0, written.stderr
    assert _learning(get_consumer(cluster, namespace, name))["ratePerCore"] == FOREIGN

    with in_process_operator(cluster):
        dropped = eventually(
            lambda: get_consumer(cluster, namespace, name),
            lambda o: (
                f"status.learning.ratePerCore={FOREIGN} was outside"
                in _learning(o).get("message", "")
            ),
            timeout=150,
            what="status.learning to say the foreign rate was dropped",
        )
        explained = eventually(
            lambda: _decisions(cluster, namespace),
            lambda found: len(found) == 2 and all(found),
            timeout=90,
            what="both instances' scaling explanations",
        )
    learning = _learning(dropped)
    assert learning["configuredRatePerCore"] == 1000
    assert learning["ratePerCore"] <= 1000
    assert learning["samples"] <= 1
    assert not any("ratePerCore=3000" in d for d in explained), explained
