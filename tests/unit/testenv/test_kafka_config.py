"""The pure parts of the local Kafka broker's setup: cluster ids and server.properties."""

from __future__ import annotations

import base64
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from konsumerator_dev.testenv import kafka


def _properties(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return {key: value for key, _, value in (line.partition("=") for line in lines)}


@given(st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=5))
def test_cluster_id_never_starts_with_a_dash_and_decodes_to_16_bytes(draws: list[bytes]) -> None:
    # A generator that yields ids starting with '-' first must be drawn again, not used.
    dash = base64.urlsafe_b64decode("-" + "A" * 21 + "==")
    queue = [dash, *draws, b"\x00" * 16]
    cluster_id = kafka.new_cluster_id(lambda n: queue.pop(0))
    assert not cluster_id.startswith("-")
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_cluster_id_drawn_again_until_it_does_not_start_with_a_dash() -> None:
    dash = base64.urlsafe_b64decode("-" + "A" * 21 + "==")
    queue = [dash, dash, b"\x00" * 16]
    assert kafka.new_cluster_id(lambda n: queue.pop(0)) == "A" * 22
    assert queue == []


def test_server_properties_combine_broker_and_controller_on_loopback() -> None:
    props = _properties(
        kafka.server_properties(broker_port=19092, controller_port=19093, data_dir=Path("/d"))
    )
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == "/d"
    # a single node can only hold one replica of each internal topic
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["auto.create.topics.enable"] == "false"


def test_broker_heap_is_bounded() -> None:
    heap_max = [flag for flag in kafka.JVM_FLAGS if flag.startswith("-Xmx")]
    assert heap_max
    assert 256 <= int(heap_max[0].removeprefix("-Xmx").removesuffix("m")) <= 512


def test_pom_version_matches_the_cache_key() -> None:
    # the directory name carries KAFKA_VERSION; the jars come from the pom's kafka.version
    assert f"<kafka.version>{kafka.KAFKA_VERSION}</kafka.version>" in kafka.POM.read_text()
