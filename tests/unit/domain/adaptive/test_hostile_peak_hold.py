"""Whole replays with and without the peak's certificate (``certificate.Hold``) are the same.

``test_certificate`` compares each call of the rule with the rule in full; this compares
what an operator would see: every pass's plan (writes, deletions, resizes) and status, and
the Deployments at the end, of a replay with the certificates and one where none is ever
recalled (the rule in full everywhere, the planner's holds included), on random
timelines where the user edits the spec and the Deployments' annotations by hand, the
clock jumps both ways, and partitions of an instance move apart.
"""

import copy
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from support.consumers import ConsumerBuilder

from konsumerator import simulating
from konsumerator.api import manifests
from konsumerator.domain import keys
from konsumerator.domain.adaptive import certificate
from konsumerator.domain.metrics import MetricsSnapshot

PARTITIONS = 4

CONSUMER = ConsumerBuilder(
    partitions=4, update_mode="InPlaceOrRecreate", max_cpu="4", max_memory="1Gi"
).manifest()


def _variant(name: str) -> tuple[manifests.Source, Any]:
    doc = copy.deepcopy(CONSUMER)
    spec = doc["spec"]
    auto = spec["autoscaler"]
    prom = auto["prometheus"]
    if name == "recovery":
        prom["recoveryTime"] = "1m"
    elif name == "tolerable":
        prom["tolerableLag"] = "5s"
    elif name == "recreate":
        auto["updateMode"] = "Recreate"
    elif name == "pending0":
        auto["pendingScaleUpDuration"] = "0s"
        auto["pendingScaleDownDuration"] = "0s"
    elif name == "rate":
        prom["ratePerCore"] = 1500
    elif name == "pairs":
        spec["numPartitionsPerInstance"] = 2
    elif name == "max":
        spec["resourcePolicy"]["containerPolicies"][0]["maxAllowed"]["cpu"] = "700m"
    elif name == "global":
        spec["resourcePolicy"]["globalPolicy"] = {"maxAllowed": {"cpu": "3"}}
    return manifests.read(doc)


VARIANTS = [
    "base",
    "recovery",
    "tolerable",
    "recreate",
    "pending0",
    "rate",
    "pairs",
    "max",
    "global",
]
SPECS = {name: _variant(name) for name in VARIANTS}


def _snapshot(rates: list[float], *, behind: list[float], consumed: list[float]) -> MetricsSnapshot:
    return MetricsSnapshot(
        production=dict(enumerate(rates)),
        consumption=dict(enumerate(consumed)),
        offset=dict(enumerate(behind)),
    )


@contextmanager
def _no_certificates() -> Iterator[None]:
    """Certificates are still made, never recalled: the rule in full everywhere."""
    with (
        mock.patch.object(certificate, "recall", return_value=None),
        mock.patch.object(certificate, "held", return_value=None, create=True),
    ):
        yield


EDITS = ["memory-gone", "memory-garbled", "decision-gone", "peak-edited"]


def _edit(r: simulating.Replay, *, index: int, edit: str) -> None:
    names = sorted(d.name for d in r.cluster.observed())
    if not names:
        return
    body = copy.deepcopy(r.cluster._bodies[names[index % len(names)]])
    annotations = body["metadata"].setdefault("annotations", {})
    if edit == "memory-gone":
        annotations.pop(keys.SCALING_MEMORY, None)
    elif edit == "memory-garbled":
        annotations[keys.SCALING_MEMORY] = "peakRate=banana"
    elif edit == "status-gone":
        annotations.pop(keys.SCALING_STATUS, None)
    elif edit == "decision-gone":
        annotations.pop(keys.SCALING_DECISION, None)
    elif edit == "peak-edited":
        memory = annotations.get(keys.SCALING_MEMORY, "")
        annotations[keys.SCALING_MEMORY] = memory.replace("peakRate=", "peakRate=9")
    r.cluster.apply(body)


@st.composite
def timelines(draw: st.DrawFn) -> list[tuple[str, Any, float, list[float], list[float]]]:
    steps = []
    level = draw(st.sampled_from([300.0, 1000.0, 1900.0]))
    for _ in range(draw(st.integers(10, 30))):
        kind = draw(st.sampled_from(["metrics"] * 8 + ["spec", "edit", "split"]))
        value: Any = None
        if kind == "spec":
            value = draw(st.sampled_from(VARIANTS))
        elif kind == "edit":
            value = (draw(st.integers(0, PARTITIONS - 1)), draw(st.sampled_from(EDITS)))
        elif kind == "split":
            level = draw(st.sampled_from([100.0, 300.0, 1000.0, 1900.0, 3000.0]))
        advance = draw(
            st.sampled_from([31.0] * 8 + [0.0, 1.0, 59.0, 61.0, 150.0, -31.0, -700.0, 86400.0])
        )
        noise = [draw(st.floats(-20, 20)) for _ in range(PARTITIONS)]
        behind = [draw(st.sampled_from([0.0] * 6 + [1e3, 1e5, 2e6])) for _ in range(PARTITIONS)]
        steps.append((kind, value, advance, [level + n for n in noise], behind))
    return steps


def _replay(
    steps: list[tuple[str, Any, float, list[float], list[float]]], *, certified: bool
) -> list[Any]:
    certificate.forget_all()
    seen: list[Any] = []
    source, spec = SPECS["base"]
    with nullcontext() if certified else _no_certificates():
        r = simulating.Replay(source=source, spec=spec)
        try:
            for kind, value, advance, rates, behind in steps:
                if kind == "spec":
                    r.spec = SPECS[value][1]
                elif kind == "edit":
                    _edit(r, index=value[0], edit=value[1])
                consumed = [
                    rate if b == 0 else rate * 1.5 for rate, b in zip(rates, behind, strict=True)
                ]
                done = r.step(
                    advance_s=advance,
                    metrics=_snapshot(rates, behind=behind, consumed=consumed),
                )
                seen.append(
                    (
                        kind,
                        [(a.name, a.action, a.body) for a in done.plan.applies],
                        [d.name for d in done.plan.deletes],
                        list(done.plan.resizes),
                        done.status,
                    )
                )
            seen.append(r.cluster.deployments_json())
        finally:
            r.close()
            certificate.forget_all()
    return seen


@settings(max_examples=60, deadline=None)
@given(steps=timelines())
def test_a_replay_with_certificates_writes_and_reports_what_the_rule_in_full_does(
    steps: list[tuple[str, Any, float, list[float], list[float]]],
) -> None:
    full = _replay(steps, certified=False)
    got = _replay(steps, certified=True)
    for i, (a, b) in enumerate(zip(got, full, strict=True)):
        assert a == b, f"pass {i} differs"
