"""Hostile review: a long plan of one tenant's Consumer does not hold the others' plans.

Plans are computed in a thread, off the event loop (``reconciling.Offload``), one at a
time: a plan of the CRD's largest Consumer (100,000 instances) takes 10-30 s of CPU, and
every other Consumer's pass, however small, waited for it in that thread's queue (its
plan was next only once the big one was done), so one tenant made every other tenant's
passes as slow as its largest Consumer.

Aspects tested (an in-process operator, a real apiserver; the large Consumer's plan is
held by the test until it is released, so the test spends no CPU on it and does not
depend on how long it would take):

* while a plan of a Consumer of 5,000 instances runs, a Consumer of 2 instances in
  another namespace converges (before, its plan waited for the held one);
* once released, the large Consumer's plan completes (its status is written).

The large Consumer lives in a namespace whose ResourceQuota allows no Deployment, so
nothing of it is left behind.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from operating import (
    consumer,
    consumer_path,
    converged,
    eventually,
    get_consumer,
    in_process_operator,
)
from test_hostile_huge_consumer import no_deployments_allowed

from konsumerator.domain import planning
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

LARGE = 5_000


class Held:
    """Holds every plan of the Consumers named ``name`` until ``release`` is set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = threading.Event()
        self.release = threading.Event()

    def wrap(self, plan: Callable[..., planning.Plan]) -> Callable[..., planning.Plan]:
        @functools.wraps(plan)
        def wrapped(**kwargs: Any) -> planning.Plan:
            if kwargs["config"].name.startswith(self.name):
                self.started.set()
                self.release.wait(300)
            return plan(**kwargs)

        return wrapped


def test_a_long_plan_of_a_large_consumer_does_not_hold_a_small_ones(
    cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = Held("large")
    monkeypatch.setattr(planning, "plan", held.wrap(planning.plan))
    with (
        no_deployments_allowed(cluster, f"{namespace}-large") as crowded,
        in_process_operator(cluster) as op,
    ):
        large = consumer("large", crowded, num_partitions=LARGE, per_instance=1)
        large["spec"]["deploymentTemplate"]["replicas"] = 0
        small = consumer("small", namespace, num_partitions=2, per_instance=1)
        small["spec"]["deploymentTemplate"]["replicas"] = 0
        try:
            cluster.apply(large)
            assert held.started.wait(120), "the large Consumer's plan did not start"
            cluster.apply(small)
            try:
                eventually(
                    lambda: get_consumer(cluster, namespace, "small"),
                    lambda o: converged(o, 2),
                    timeout=60,
                    what="the small Consumer to converge while the large one plans",
                )
            finally:
                held.release.set()
            eventually(
                lambda: get_consumer(cluster, crowded, "large"),
                lambda o: (o.get("status") or {}).get("expected") == LARGE,
                timeout=300,
                what="the large Consumer's plan to complete",
            )
            assert op.alive
        finally:
            held.release.set()
            cluster.request("DELETE", consumer_path(crowded, "large"))
