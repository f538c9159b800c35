"""Hostile review: a Consumer whose every pass raises what nobody classified.

A bug, or an input nobody foresaw, makes a pass raise. Before, the Consumer then kept
its last status (``Ready=True``) while nothing was reconciled: only the operator's log
knew. The fuzzers (tests/unit/controllers/test_pipeline_fuzzing.py,
tests/unit/api/test_spec_fuzzing.py) find no input that does it today, so the fault is
injected: the pipeline's pass raises for one of two Consumers, on the real apiserver,
in an in-process operator.

Aspects tested:

* the broken Consumer gets ``Ready=False, reason=InternalError``, its message naming the
  exception's type and nothing of its text (no stack in the status), and a Warning Event
  with that reason;
* it is retried with backoff (more than one pass, counted as failed reconciles in
  ``konsumerator_consumer_reconcile_errors_total`` and controller-runtime's
  ``controller_runtime_reconcile_errors_total``), not in a hot loop;
* the other Consumer converges and its status says nothing of the error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from operating import (
    InProcessOperator,
    condition,
    consumer,
    converged,
    events,
    eventually,
    get_consumer,
    in_process_operator,
    metric_sum,
)

from konsumerator.controllers.reconciling import Pipeline
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

BROKEN, HEALTHY = "broken", "healthy"
SECRET = "text that must not reach the status"


def _break_passes_of(op: InProcessOperator, name: str) -> None:
    """Every pass of the Consumer ``name`` raises a ``ZeroDivisionError``."""
    (controller,) = op.operator.manager._controllers
    pipeline: Pipeline = controller._reconcile.__self__._pipeline  # type: ignore[attr-defined]
    original: Callable[..., Awaitable[Any]] = pipeline.run

    async def run(*, key: str, **kw: Any) -> Any:
        if key.endswith(f"/{name}"):
            raise ZeroDivisionError(SECRET)
        return await original(key=key, **kw)

    op.call(lambda: setattr(pipeline, "run", run))


def test_a_pass_that_raises_is_reported_on_its_consumer_and_retried_with_backoff(
    cluster: Cluster, namespace: str
) -> None:
    broken = consumer(BROKEN, namespace, num_partitions=2, per_instance=1)
    healthy = consumer(HEALTHY, namespace, num_partitions=2, per_instance=1)
    for manifest in (broken, healthy):
        manifest["spec"]["deploymentTemplate"]["replicas"] = 0
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:
        _break_passes_of(op, BROKEN)
        cluster.apply(broken)
        cluster.apply(healthy)
        obj = eventually(
            lambda: get_consumer(cluster, namespace, BROKEN),
            lambda o: condition(o, "Ready").get("reason") == "InternalError",
            timeout=60,
            what="the broken Consumer to say InternalError",
        )
        eventually(
            lambda: get_consumer(cluster, namespace, HEALTHY),
            lambda o: converged(o, 2),
            timeout=60,
            what="the healthy Consumer to converge",
        )
        warnings = eventually(
            lambda: [
                e
                for e in events(cluster, namespace, involved=BROKEN)
                if e["reason"] == "InternalError"
            ],
            bool,
            timeout=30,
            what="the InternalError Event",
        )
        eventually(
            op.metrics,
            lambda text: (
                metric_sum(
                    text,
                    "konsumerator_consumer_reconcile_errors_total",
                    consumer=f"{namespace}/{BROKEN}",
                )
                >= 2
            ),
            timeout=60,
            what="the broken Consumer to be retried",
        )
        text = op.metrics()
    ready = condition(obj, "Ready")
    assert ready["status"] == "False"
    assert "ZeroDivisionError" in ready["message"]
    assert SECRET not in ready["message"]
    assert "Traceback" not in ready["message"]
    assert warnings[0]["type"] == "Warning"
    assert SECRET not in warnings[0]["message"]
    assert metric_sum(text, "controller_runtime_reconcile_errors_total", controller="consumer") >= 2
    # Backoff: a handful of retries in the test's seconds, not a hot loop's thousands.
    failed = metric_sum(
        text, "konsumerator_consumer_reconcile_errors_total", consumer=f"{namespace}/{BROKEN}"
    )
    assert failed < 30, failed
    assert (
        metric_sum(
            text, "konsumerator_consumer_reconcile_errors_total", consumer=f"{namespace}/{HEALTHY}"
        )
        == 0
    )
    healthy_ready = condition(get_consumer(cluster, namespace, HEALTHY), "Ready")
    assert healthy_ready["reason"] == "Reconciled"
