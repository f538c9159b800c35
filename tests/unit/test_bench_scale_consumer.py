"""bench/scale.py's Consumer document: the predictor it asks for, or none (the CRD's default)."""

from typing import Any

import pytest

from konsumerator.api.v1 import ConsumerSpec
from konsumerator_dev.bench.scale import consumer

PROMETHEUS = "http://127.0.0.1:9090"


def bench_consumer(*, predictor: str | None) -> dict[str, Any]:
    return consumer(
        name="small-0",
        namespace="bench",
        partitions=4,
        prometheus=PROMETHEUS,
        replicas=0,
        predictor=predictor,
    )


def test_without_a_predictor_the_field_is_left_out_and_the_operators_default_applies() -> None:
    doc = bench_consumer(predictor=None)
    autoscaler = doc["spec"]["autoscaler"]
    assert "predictor" not in autoscaler
    assert ConsumerSpec.model_validate(doc["spec"]).autoscaler.predictor == "adaptive"


@pytest.mark.parametrize("predictor", ["naive", "adaptive"])
def test_a_chosen_predictor_is_written_into_every_consumer(predictor: str) -> None:
    doc = bench_consumer(predictor=predictor)
    assert doc["spec"]["autoscaler"]["predictor"] == predictor
    assert ConsumerSpec.model_validate(doc["spec"]).autoscaler.predictor == predictor
