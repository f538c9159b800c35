"""The lag exporter's exposition: kafka_exporter's names and labels, lag never negative."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from konsumerator_dev.testenv.lagexporter import Snapshot, SnapshotCollector, families, lag

offsets = st.integers(min_value=0, max_value=2**62)


def _samples(snapshot: Snapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    collector = SnapshotCollector()
    collector.set(snapshot)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@given(latest=offsets, committed=offsets)
def test_lag_is_never_negative_and_exact_when_behind(latest: int, committed: int) -> None:
    value = lag(latest=latest, committed=committed)
    assert value >= 0
    if committed <= latest:
        assert value == latest - committed


def test_exposition_uses_kafka_exporter_names_and_labels() -> None:
    samples = _samples(
        Snapshot(
            latest={("orders", 0): 100, ("orders", 1): 50},
            committed={("orders", "orders", 0): 40, ("billing", "orders", 1): 60},
            brokers=1,
            ok=True,
        )
    )
    assert (
        samples[("kafka_topic_partition_current_offset", (("partition", "0"), ("topic", "orders")))]
        == 100
    )
    assert (
        samples[("kafka_topic_partition_current_offset", (("partition", "1"), ("topic", "orders")))]
        == 50
    )
    group0 = (("consumergroup", "orders"), ("partition", "0"), ("topic", "orders"))
    assert samples[("kafka_consumergroup_current_offset", group0)] == 40
    assert samples[("kafka_consumergroup_lag", group0)] == 60
    # committed ahead of the latest read (the reads are not atomic): lag 0, not -10
    group1 = (("consumergroup", "billing"), ("partition", "1"), ("topic", "orders"))
    assert samples[("kafka_consumergroup_lag", group1)] == 0
    assert samples[("kafka_brokers", ())] == 1
    assert samples[("konsumerator_lag_exporter_up", ())] == 1


def test_partition_without_a_commit_has_no_group_series() -> None:
    samples = _samples(
        Snapshot(latest={("t", 0): 5, ("t", 1): 7}, committed={("g", "t", 0): 5}, ok=True)
    )
    assert (
        "kafka_consumergroup_lag",
        (("consumergroup", "g"), ("partition", "1"), ("topic", "t")),
    ) not in samples
    assert (
        samples[
            (
                "kafka_consumergroup_lag",
                (("consumergroup", "g"), ("partition", "0"), ("topic", "t")),
            )
        ]
        == 0
    )


def test_committed_partition_gone_from_the_topic_has_an_offset_but_no_lag() -> None:
    samples = _samples(Snapshot(latest={}, committed={("g", "t", 3): 9}, ok=True))
    key = (("consumergroup", "g"), ("partition", "3"), ("topic", "t"))
    assert samples[("kafka_consumergroup_current_offset", key)] == 9
    assert ("kafka_consumergroup_lag", key) not in samples


def test_failed_read_exports_no_offsets_and_up_zero() -> None:
    samples = _samples(Snapshot(ok=False))
    assert samples[("konsumerator_lag_exporter_up", ())] == 0
    names = {name for name, _ in samples}
    assert not names & {
        "kafka_topic_partition_current_offset",
        "kafka_consumergroup_current_offset",
        "kafka_consumergroup_lag",
    }


@given(
    st.dictionaries(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 5)), offsets, max_size=8),
    st.dictionaries(
        st.tuples(st.sampled_from(["g", "h"]), st.sampled_from(["a", "b"]), st.integers(0, 5)),
        offsets,
        max_size=8,
    ),
)
def test_every_lag_sample_is_non_negative(
    latest: dict[tuple[str, int], int], committed: dict[tuple[str, str, int], int]
) -> None:
    for family in families(Snapshot(latest=latest, committed=committed, ok=True)):
        if family.name == "kafka_consumergroup_lag":
            assert all(sample.value >= 0 for sample in family.samples)
