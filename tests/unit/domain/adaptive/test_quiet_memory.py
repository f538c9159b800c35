"""An adaptive Consumer with nothing to change writes nothing (issue 13).

The recent peak (``policy.hold_peak``) rotates every half window, and the
explanation quotes lambda: written every time, they rewrote every Deployment
about every other pass. They are kept in the process between the writes that
happen anyway (``adaptive.memory.Recent``), and the annotation still wins
when anyone else wrote it. Driven through the operator's own pipeline
(``simulating.Replay``), in virtual time, with the story of ``test_sequence``.
"""

from dataclasses import replace

from test_sequence import ORDERS, Story, metrics

from konsumerator.domain import keys
from konsumerator.domain.adaptive import memory as adaptive_memory

# Within the hysteresis band around the 2000/s the instance was created for.
DRIFT = (1000, 1012, 995, 1020, 990, 1008, 1015, 985, 1003, 1018)


def writes_of(story: Story, rates: tuple[int, ...]) -> list[int]:
    """The Deployment writes of one pass per rate."""
    writes = []
    for lam in rates:
        done = story.replay.step(advance_s=31.0, metrics=metrics(lam, lam))
        writes.append(len(done.plan.applies))
    return writes


def test_a_rate_drifting_within_the_hysteresis_band_writes_no_deployment() -> None:
    story = Story()
    assert story.step(metrics(1000, 1000)) == 1200
    settled = writes_of(story, DRIFT[:4])  # the first passes may record a status
    assert story.cpu() == 1200, settled
    # 60 passes (31 min: the recent peak rotated some 60 times): not one write
    assert writes_of(story, DRIFT * 6) == [0] * 60
    assert story.cpu() == 1200
    story.replay.close()


def test_the_explanation_on_the_deployment_is_the_one_of_its_last_write() -> None:
    story = Story()
    story.step(metrics(1000, 1000))
    writes_of(story, DRIFT[:4])
    written = story.annotations()
    writes_of(story, DRIFT * 2)
    assert story.annotations() == written


def test_a_memory_written_by_someone_else_wins_over_the_processes() -> None:
    story = Story()
    story.step(metrics(1000, 1000))
    writes_of(story, DRIFT * 2)
    (d,) = story.replay.cluster.observed()
    kept = adaptive_memory.decode(d.annotations[keys.SCALING_MEMORY])
    assert kept is not None
    assert kept.peak_at is not None
    # Someone else (a previous leader) saw a peak of twice the need just now.
    body = story.bodies[d.name]
    edited = {**body, "metadata": {**body["metadata"]}}
    memory = adaptive_memory.encode(
        adaptive_memory.Memory(peak_rate=4000, peak_at=story.replay.now, resized_at=kept.resized_at)
    )
    edited["metadata"]["annotations"] = {
        **body["metadata"]["annotations"],
        keys.SCALING_MEMORY: memory,
    }
    story.replay.cluster.apply(edited)
    # The next pass sizes from that peak: it waits to scale up (a status to write),
    # and keeps the peak it read.
    assert writes_of(story, (1000,)) == [1]
    written = story.annotations()
    assert written[keys.SCALING_STATUS] == "PENDING_SCALE_UP"
    written_memory = adaptive_memory.decode(written[keys.SCALING_MEMORY])
    assert written_memory is not None
    assert written_memory.peak_rate >= 4000
    story.replay.close()


# At most 1 core: 3000/s on each of two partitions, 120 s behind, is SATURATED.
SATURATING = replace(ORDERS, max_cpu="1")
JITTER = (4, -5, 3, -2, 5, -4, 1, -3, 2, -1)  # +-5 msg/s of production


def test_a_saturated_instance_is_rewritten_only_when_its_shortage_moves_a_tenth() -> None:
    """Its backlog grows slowly and its production jitters: the shortage creeps up one
    100m step every few refreshes, and ``cpu-saturation-level`` follows it only when it
    moved by a tenth of the level written (``rules.level_moved``), not at every step."""
    replay = SATURATING.replay()
    levels: list[str | None] = []
    writes = []
    for i, noise in enumerate(JITTER * 6):
        done = replay.step(advance_s=31.0, metrics=metrics(3000 + noise, 2000, 360_000 + i * 3000))
        (d,) = replay.cluster.observed()
        assert d.annotations[keys.SCALING_STATUS] == "SATURATED"
        levels.append(d.annotations.get(keys.CPU_SATURATION_LEVEL))
        writes.append(len(done.plan.applies))
        # What the status and the gauge show is the level the Deployment holds.
        assert str(done.plan.instances[0].cpu_shortage_m) == levels[-1]
    # Created at 3300m short; crept past 3630m (a tenth more) once in 60 refreshes.
    assert levels[0] == "3300"
    assert sorted(set(levels), key=levels.index) == ["3300", "3700"]
    # The creation, the first pass recording its state, then one rewrite in 58 passes.
    assert writes[:2] == [1, 1]
    assert sum(writes[2:]) == 1
    replay.close()
