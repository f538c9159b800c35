"""The memory a process keeps between writes (``adaptive.memory.Recent``, issue 13).

Aspects tested: recalled only while the annotation holds the text it was kept
with (anyone else's write wins); a Deployment without a UID is never kept;
forgetting what is no longer observed; ``durable`` drops the recent peak alone;
``as_written`` is what the annotation gives back, for any memory.
"""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.adaptive.memory import Memory, Recent, as_written, decode, durable, encode

T = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)
KEPT = Memory(peak_rate=2300, peak_at=T, previous_peak=2200, resized_at=T)
WRITTEN = encode(Memory(peak_rate=2100, peak_at=T - timedelta(minutes=5), resized_at=T))


@pytest.mark.parametrize(
    ("uid", "annotation", "want"),
    [
        ("u1", WRITTEN, KEPT),  # still what it was kept with
        ("u1", encode(Memory(peak_rate=9000, peak_at=T, resized_at=T)), None),  # someone else
        ("u1", None, None),  # the annotation was removed
        ("u2", WRITTEN, None),  # another Deployment (or the same name, created again)
    ],
)
def test_recalled_only_while_the_annotation_is_what_it_was_kept_with(
    uid: str, annotation: str | None, want: Memory | None
) -> None:
    recent = Recent()
    recent.keep(uid="u1", annotation=WRITTEN, memory=KEPT)
    assert recent.recall(uid=uid, annotation=annotation) == want


def test_a_deployment_without_a_uid_is_never_kept() -> None:
    recent = Recent()
    recent.keep(uid="", annotation=WRITTEN, memory=KEPT)
    assert len(recent) == 0
    assert recent.recall(uid="", annotation=WRITTEN) is None


def test_retain_forgets_the_deployments_no_longer_observed() -> None:
    recent = Recent()
    for uid in ("a", "b", "c"):
        recent.keep(uid=uid, annotation=WRITTEN, memory=KEPT)
    recent.retain({"b"})
    assert len(recent) == 1
    assert recent.recall(uid="b", annotation=WRITTEN) == KEPT
    recent.clear()
    assert len(recent) == 0


def test_durable_drops_the_recent_peak_alone() -> None:
    memory = Memory(
        peak_rate=5, peak_at=T, previous_peak=4, resized_at=T, throughput_before=3, lent=True
    )
    assert durable(memory) == Memory(resized_at=T, throughput_before=3, lent=True)
    assert durable(None) is None


_RATES = st.integers(min_value=0, max_value=2**62)
_TIMES = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(
    peak=_RATES,
    peak_at=_TIMES,
    resized_at=_TIMES,
    before=_RATES,
    ineffective=st.booleans(),
    for_backlog=st.booleans(),
)
def test_as_written_is_what_the_annotation_gives_back(
    peak: int,
    peak_at: datetime | None,
    resized_at: datetime | None,
    before: int,
    ineffective: bool,
    for_backlog: bool,
) -> None:
    memory = Memory(
        peak_rate=peak,
        peak_at=peak_at,
        resized_at=resized_at,
        throughput_before=before,
        ineffective=ineffective,
        for_backlog=for_backlog,
    )
    assert as_written(memory) == decode(encode(memory))
    assert as_written(as_written(memory)) == as_written(memory)
