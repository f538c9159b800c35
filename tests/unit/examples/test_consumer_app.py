"""The example consumer's configuration: partitions from KONSUMERATOR_PARTITION, clear errors."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

APP = Path(__file__).resolve().parents[3] / "examples" / "consumer-app" / "consumer.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_consumer", APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


app = _load()
BASE = {"KAFKA_BROKERS": "k:9092", "KAFKA_TOPIC": "orders", "KONSUMERATOR_PARTITION": "3,4,5"}


def test_defaults() -> None:
    config = app.load_config(BASE)
    assert config.partitions == (3, 4, 5)
    assert config.group == "orders"
    assert config.work_seconds == pytest.approx(0.001)
    assert config.commit_interval == 1.0
    assert config.metrics_port == 8000


@given(st.sets(st.integers(min_value=0, max_value=10_000), min_size=1))
def test_partitions_round_trip_whatever_the_order_and_spacing(parts: set[int]) -> None:
    text = " , ".join(str(p) for p in sorted(parts, reverse=True)) + ","
    assert app.parse_partitions(text) == tuple(sorted(parts))


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"KONSUMERATOR_PARTITION": ""}, "KONSUMERATOR_PARTITION"),
        ({"KONSUMERATOR_PARTITION": "1,x"}, "KONSUMERATOR_PARTITION"),
        ({"KONSUMERATOR_PARTITION": "-1"}, "KONSUMERATOR_PARTITION"),
        ({"KAFKA_TOPIC": " "}, "KAFKA_TOPIC"),
        ({"KAFKA_BROKERS": ""}, "KAFKA_BROKERS"),
        ({"WORK_MS_PER_MESSAGE": "fast"}, "WORK_MS_PER_MESSAGE"),
        ({"WORK_MS_PER_MESSAGE": "-1"}, "WORK_MS_PER_MESSAGE"),
        ({"COMMIT_INTERVAL_SECONDS": "0"}, "COMMIT_INTERVAL_SECONDS"),
    ],
)
def test_bad_configuration_names_the_variable(changes: dict[str, str], named: str) -> None:
    with pytest.raises(app.ConfigError, match=named):
        app.load_config({**BASE, **changes})


def test_burn_cpu_spends_at_least_the_cpu_time_asked() -> None:
    before = time.thread_time()
    app.burn_cpu(0.01)
    assert time.thread_time() - before >= 0.01
