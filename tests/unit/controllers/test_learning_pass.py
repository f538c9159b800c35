"""The learned rate per core in the operator's pass (``Pipeline`` through ``Replay``).

Aspects tested:

* an adaptive Consumer with a cpuUsage query learns in passes that refresh metrics:
  the first has no previous sync to tell flat from rising (nothing learned), the next
  folds the saturated sample into ``status.learning`` and sizes with it, and the
  scaling explanation names the learned rate;
* a restarted operator (a new pipeline given the status as read back from its body)
  goes on from the learned rate instead of starting from the prior;
* a naive Consumer with the same query learns nothing and reports no ``learning``;
* a status that holds no ``lastSyncState`` (left out for its size, as for a
  3,000-partition Consumer, or lost) costs one sync (``NoPreviousSync``), not the
  learning: the pipeline remembers the last snapshot it reported, also after a
  restart that found none in the status;
* that memory is the object's, not its name's: a Consumer deleted and created again
  under the same name (the two events seen as one, so nothing was forgotten) does not
  take the old one's last sync for its own previous sync.
"""

import dataclasses
from pathlib import Path
from types import MappingProxyType
from typing import Any
from unittest import mock

from konsumerator.api.v1 import ConsumerSpec
from konsumerator.domain import keys, rules
from konsumerator.domain.adaptive import certificate
from konsumerator.domain.adaptive.learning import ALPHA, Learned, Reason, State
from konsumerator.domain.metrics import CpuUsage, MetricsSnapshot
from konsumerator.domain.status import ConsumerStatus
from konsumerator.scoring.policies import with_cpu_usage, with_predictor
from konsumerator.simulating import Replay, load_consumer

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "consumer.yaml"
PRIOR = 2000  # examples/consumer.yaml's ratePerCore
# 10 partitions, 2 per instance: each instance consumes 2 × 1000 msg/s of 2 × 1500
# on 1.25 cores: 1600 msg/s per core used, slower than the configured 2000.
SAMPLE = 1600


def saturated(partitions: int = 10) -> MetricsSnapshot:
    parts = range(partitions)
    return MetricsSnapshot(
        production=MappingProxyType(dict.fromkeys(parts, 1500.0)),
        consumption=MappingProxyType(dict.fromkeys(parts, 1000.0)),
        offset=MappingProxyType(dict.fromkeys(parts, 100_000.0)),
        cpu_usage=CpuUsage(
            by_pod=MappingProxyType(
                {
                    f"orders-consumer-{i}-5d4f8b9c7d-x1y2z": 1.25
                    for i in range((partitions + 1) // 2)
                }
            )
        ),
    )


def replay(predictor: str, *, partitions: int = 10) -> Replay:
    source, spec = load_consumer(EXAMPLE.read_text(), source=str(EXAMPLE))
    spec = with_cpu_usage(with_predictor(spec, predictor))
    spec = spec.model_copy(update={"num_partitions": partitions})
    autoscaler = spec.autoscaler.model_copy(update={"update_mode": "Recreate"})
    return Replay(
        source=source,
        spec=ConsumerSpec.model_validate(
            spec.model_copy(update={"autoscaler": autoscaler}).model_dump(by_alias=True)
        ),
    )


def decisions(r: Replay) -> list[str]:
    done = r.cluster
    return [
        (d.annotations.get(keys.SCALING_DECISION) or "")
        for d in done.by_index(index="controller-uid", value=r.source.uid)
    ]


def test_a_saturated_sync_is_learned_sized_with_and_explained() -> None:
    r = replay("adaptive")
    first = r.step(advance_s=0, metrics=saturated).status.learning
    assert first is not None
    assert (first.state, first.reason, first.samples) == (
        State.LEARNING,
        Reason.NO_PREVIOUS_SYNC,
        0,
    )
    second = r.step(advance_s=31, metrics=saturated).status.learning
    assert second is not None
    assert (second.state, second.reason, second.samples) == (State.LEARNING, Reason.LEARNED, 1)
    assert second.rate_per_core == round(ALPHA * SAMPLE + (1 - ALPHA) * PRIOR)
    # Sized with the learned (lower) rate: more CPU, after pendingScaleUpDuration (2m).
    for _ in range(8):
        r.step(advance_s=31, metrics=saturated)
    assert any(f"(learned; configured {PRIOR})" in d for d in decisions(r)), decisions(r)


def test_a_restarted_operator_goes_on_from_the_learned_rate() -> None:
    r = replay("adaptive")
    r.step(advance_s=0, metrics=saturated)
    learned = r.step(advance_s=31, metrics=saturated).status.learning
    assert learned is not None
    restarted = replay("adaptive")
    restarted.now = r.now
    restarted.status = ConsumerStatus.from_body(r.status.to_body())
    after = restarted.step(advance_s=31, metrics=saturated).status.learning
    assert after is not None
    assert after.samples == learned.samples + 1
    assert after.rate_per_core == round(ALPHA * SAMPLE + (1 - ALPHA) * (learned.rate_per_core or 0))


def test_the_naive_predictor_never_learns() -> None:
    r = replay("naive")
    for _ in range(3):
        status = r.step(advance_s=31, metrics=saturated).status
    assert status.learning is None
    assert "learning" not in status.to_body()


def without_state(r: Replay) -> None:
    """The status as it is when ``lastSyncState`` does not fit its budget."""
    r.status = dataclasses.replace(r.status, last_sync_state=None)


def test_a_status_without_last_sync_state_skips_one_sync_then_learns() -> None:
    r = replay("adaptive")
    reasons = []
    for _ in range(3):
        r.step(advance_s=31, metrics=saturated)
        without_state(r)
        assert r.status.learning is not None
        reasons.append(r.status.learning.reason)
    assert reasons == [Reason.NO_PREVIOUS_SYNC, Reason.LEARNED, Reason.LEARNED]
    assert r.status.learning is not None
    assert r.status.learning.samples == 2


def test_a_consumer_too_large_for_last_sync_state_learns() -> None:
    # 3,000 partitions need over 192 KiB of lastSyncState: the status leaves it out.
    r = replay("adaptive", partitions=3000)
    reasons = []
    for _ in range(2):
        r.step(advance_s=31, metrics=lambda: saturated(3000))
        assert r.status.last_sync_state is None
        assert r.status.learning is not None
        reasons.append(r.status.learning.reason)
    assert reasons == [Reason.NO_PREVIOUS_SYNC, Reason.LEARNED]


def test_a_restart_without_last_sync_state_holds_the_rate_one_sync_then_resumes() -> None:
    r = replay("adaptive")
    for _ in range(3):
        r.step(advance_s=31, metrics=saturated)
        without_state(r)
    learned = r.status.learning
    assert learned is not None
    assert learned.samples == 2
    restarted = replay("adaptive")
    restarted.now, restarted.status = r.now, ConsumerStatus.from_body(r.status.to_body())
    skipped = restarted.step(advance_s=31, metrics=saturated).status.learning
    assert skipped is not None
    assert (skipped.reason, skipped.rate_per_core, skipped.samples) == (
        Reason.NO_PREVIOUS_SYNC,
        learned.rate_per_core,
        learned.samples,
    )
    assert "resumes" in skipped.message
    without_state(restarted)
    resumed = restarted.step(advance_s=31, metrics=saturated).status.learning
    assert resumed is not None
    assert (resumed.reason, resumed.samples) == (Reason.LEARNED, learned.samples + 1)


def test_a_consumer_recreated_under_the_same_name_does_not_learn_from_the_old_ones_sync() -> None:
    r = replay("adaptive")
    r.step(advance_s=0, metrics=saturated)
    learned = r.step(advance_s=31, metrics=saturated).status.learning
    assert learned is not None
    assert learned.reason is Reason.LEARNED
    # Deleted and created again, with no lastSyncState of its own yet (as when its status
    # cannot hold one): the pipeline never saw the deletion.
    r.source = dataclasses.replace(r.source, uid="the-new-consumer")
    r.status = ConsumerStatus()
    first = r.step(advance_s=31, metrics=saturated).status.learning
    assert first is not None
    assert (first.reason, first.samples) == (Reason.NO_PREVIOUS_SYNC, 0)


def _steady(noise: float) -> MetricsSnapshot:
    parts = range(10)
    return MetricsSnapshot(
        production=MappingProxyType(dict.fromkeys(parts, 1000.0 + noise)),
        consumption=MappingProxyType(dict.fromkeys(parts, 1000.0 + noise)),
        offset=MappingProxyType(dict.fromkeys(parts, 0.0)),
        cpu_usage=CpuUsage(by_pod=MappingProxyType({})),
    )


def _kept_by_certificate(*, learns: bool) -> tuple[int, Learned | None]:
    """A Consumer without a global pool (which is never certified), learned from one
    saturated sync, then 40 steady noisy passes: how many instances were kept by the
    adaptive keep's certificate (``adaptive.certificate``), and what was learned."""
    text = EXAMPLE.read_text().replace(
        '    globalPolicy:\n      maxAllowed: {cpu: "20", memory: 20Gi}\n', ""
    )
    source, spec = load_consumer(text, source=str(EXAMPLE))
    spec = with_predictor(spec, "adaptive")
    if learns:
        spec = with_cpu_usage(spec)
    autoscaler = spec.autoscaler.model_copy(update={"update_mode": "Recreate"})
    r = Replay(
        source=source,
        spec=ConsumerSpec.model_validate(
            spec.model_copy(update={"autoscaler": autoscaler}).model_dump(by_alias=True)
        ),
    )
    r.step(advance_s=0, metrics=saturated)
    r.step(advance_s=31, metrics=saturated)
    recall, held = rules._certified_keep, rules.held
    kept = 0

    def counted(*args: Any, **kwargs: Any) -> rules.Decision | None:
        nonlocal kept
        decision = recall(*args, **kwargs)
        kept += decision is not None
        return decision

    def counted_held(*args: Any, **kwargs: Any) -> Any:
        # Kept by the certificate's hold (``certificate.Hold``), which holds its config.
        nonlocal kept
        remembered = held(*args, **kwargs)
        kept += remembered is not None
        return remembered

    certificate.forget_all()
    with (
        mock.patch.object(rules, "_certified_keep", counted),
        mock.patch.object(rules, "held", counted_held),
    ):
        for i in range(40):
            r.step(advance_s=31, metrics=_steady((i * 7) % 11 - 5))
    certificate.forget_all()
    return kept, r.status.learning


def test_a_learned_rate_keeps_the_planners_caches_as_the_configured_one_does() -> None:
    # The config sized with a learned rate is one object while the rate holds, as the
    # converted config is while the spec stays: the certificate (and every cache held by
    # the config's identity) then holds as without learning. It was a new object every
    # pass: not one instance of a learning Consumer was ever kept by its certificate.
    configured, _ = _kept_by_certificate(learns=False)
    learned, learning = _kept_by_certificate(learns=True)
    assert learning is not None
    assert learning.rate_per_core == 1880  # sizing with it
    assert configured > 0
    assert learned == configured
