"""An adaptive Consumer with nothing to change writes nothing (issue 13).

The recent peak (``policy.hold_peak``) rotates every half window, and the
explanation quotes lambda: written every time, they rewrote every Deployment
about every other pass. They are kept in the process between the writes that
happen anyway (``adaptive.memory.Recent``), and the annotation still wins
when anyone else wrote it. Driven through the operator's own pipeline
(``simulating.Replay``), in virtual time, with the story of ``test_sequence``.
"""

from test_sequence import Story, metrics

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
