"""``simulate`` skips the passes that would change nothing: it may, because they would not.

``Replay.quiet`` says a step's pass would repeat the last one (a fixed point that did
not ask Prometheus, or a refresh that wrote nothing, and the step would not ask either);
``simulating.run`` then skips it.

Aspects tested (hypothesis, random timelines and Consumers):

* replaying with skipping gives, after every step, exactly the status (conditions and
  their transition times included) and the Deployments of replaying every pass;
* and ``run``'s output is byte-identical either way;
* skipping happens at all on a steady timeline (so the fast path is the one that runs),
  and on a noisy one between refreshes that write nothing.
"""

import copy
import io
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator import simulating
from konsumerator.api import manifests
from konsumerator.domain.metrics import MetricsSnapshot

EXAMPLE = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "examples" / "consumer.yaml").read_text()
)
# The naive predictor's passes (the adaptive one writes its memory on a refresh).
EXAMPLE["spec"]["autoscaler"]["predictor"] = "naive"
PARTITIONS = 6

ADVANCES = st.sampled_from([0.0, 1.0, 5.0, 10.0, 29.0, 30.0, 31.0, 60.0, 300.0, 1200.0])


@st.composite
def snapshots(draw: st.DrawFn) -> MetricsSnapshot | None:
    if draw(st.integers(0, 9)) == 0:
        return None  # Prometheus down
    chosen = draw(st.lists(st.integers(0, PARTITIONS - 1), unique=True, max_size=PARTITIONS))
    level = draw(st.sampled_from([0.0, 100.0, 1500.0, 6000.0, 20000.0]))
    production = {p: level + draw(st.sampled_from([0.0, 1.0, 50.0])) for p in chosen}
    offset = {p: draw(st.sampled_from([0.0, 10.0, 1e5, 1e7])) for p in chosen}
    return MetricsSnapshot(
        production=MappingProxyType(production),
        consumption=MappingProxyType(dict(production)),
        offset=MappingProxyType(offset),
    )


@st.composite
def steady_runs(draw: st.DrawFn) -> list[simulating.Step]:
    """Stretches that repeat one answer (where skipping can happen), then change."""
    steps: list[simulating.Step] = []
    for _ in range(draw(st.integers(1, 5))):
        answer = draw(snapshots())
        steps.extend(
            simulating.Step(advance_s=draw(ADVANCES), metrics=answer)
            for _ in range(draw(st.integers(1, 12)))
        )
    return steps


@st.composite
def consumers(draw: st.DrawFn) -> tuple[manifests.Source, Any]:
    doc = copy.deepcopy(EXAMPLE)
    spec = doc["spec"]
    spec["numPartitions"] = PARTITIONS
    spec["numPartitionsPerInstance"] = draw(st.sampled_from([1, 2, 4]))
    auto = spec["autoscaler"]
    auto["mode"] = draw(st.sampled_from(["prometheus", "prometheus", "manual"]))
    auto["pendingScaleUpDuration"] = draw(st.sampled_from(["0s", "30s", "2m"]))
    auto["pendingScaleDownDuration"] = draw(st.sampled_from(["0s", "1m", "10m"]))
    auto["prometheus"]["minSyncPeriod"] = draw(st.sampled_from(["10s", "30s", "1m"]))
    auto["prometheus"]["fallbackStrategy"] = draw(st.sampled_from(["min", "max"]))
    if draw(st.booleans()):
        spec["resourcePolicy"]["globalPolicy"]["maxAllowed"] = {"cpu": "1", "memory": "2Gi"}
    if draw(st.integers(0, 4)) == 0:
        doc["metadata"]["annotations"] = {"konsumerator.lwolf.org/disable-autoscaler": "true"}
    return manifests.read(doc)


def replay_all(
    source: manifests.Source, spec: Any, steps: list[simulating.Step], *, skip: bool
) -> tuple[list[tuple[object, str]], int]:
    replay = simulating.Replay(source=source, spec=spec)
    seen, skipped = [], 0
    try:
        for step in steps:
            if skip and replay.quiet(advance_s=step.advance_s):
                replay.skip(advance_s=step.advance_s)
                skipped += 1
            else:
                replay.step(advance_s=step.advance_s, metrics=step.metrics)
            # The status is an immutable value: kept as it is.
            seen.append((replay.status, replay.cluster.deployments_json()))
    finally:
        replay.close()
    return seen, skipped


@settings(max_examples=150, deadline=None)
@given(consumer=consumers(), steps=steady_runs())
def test_skipping_quiet_passes_changes_no_status_and_no_deployment(
    consumer: tuple[manifests.Source, Any], steps: list[simulating.Step]
) -> None:
    source, spec = consumer
    full, _ = replay_all(source, spec, steps, skip=False)
    skipping, _ = replay_all(source, spec, steps, skip=True)
    assert skipping == full


@settings(max_examples=50, deadline=None)
@given(consumer=consumers(), steps=steady_runs())
def test_run_output_is_byte_identical_with_and_without_skipping(
    consumer: tuple[manifests.Source, Any], steps: list[simulating.Step]
) -> None:
    source, spec = consumer
    outputs = []
    for skip in (False, True):
        out = io.StringIO()
        simulating.run(source=source, spec=spec, steps=steps, out=out, skip_quiet=skip)
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]


def test_a_steady_timeline_skips_most_passes() -> None:
    source, spec = manifests.read(copy.deepcopy(EXAMPLE))
    answer = MetricsSnapshot(
        production=MappingProxyType(dict.fromkeys(range(10), 500.0)),
        consumption=MappingProxyType(dict.fromkeys(range(10), 500.0)),
        offset=MappingProxyType(dict.fromkeys(range(10), 0.0)),
    )
    steps = [simulating.Step(advance_s=10.0, metrics=answer) for _ in range(40)]
    _, skipped = replay_all(source, spec, steps, skip=True)
    # One pass in four asks Prometheus (30 s), the next settles, the two after it skip.
    assert skipped >= 15


def test_a_refresh_that_writes_nothing_lets_the_passes_up_to_the_next_refresh_skip() -> None:
    """A noisy timeline: every refresh gets new numbers, none changes a size."""
    source, spec = manifests.read(copy.deepcopy(EXAMPLE))
    steps = [
        simulating.Step(
            advance_s=10.0,
            metrics=MetricsSnapshot(
                production=MappingProxyType(dict.fromkeys(range(10), 500.0 + i % 3)),
                consumption=MappingProxyType(dict.fromkeys(range(10), 500.0)),
                offset=MappingProxyType(dict.fromkeys(range(10), float(i % 2))),
            ),
        )
        for i in range(40)
    ]
    full, _ = replay_all(source, spec, steps, skip=False)
    skipping, skipped = replay_all(source, spec, steps, skip=True)
    assert skipping == full
    # One pass in four asks Prometheus (30 s) and the three after it skip (the
    # first few create and settle the Deployments).
    assert skipped >= 26
