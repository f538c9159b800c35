"""A Consumer naming a Prometheus address outside ``--prometheus-allowed-hosts``.

Aspects tested (the pure decision; the cluster tests show the condition, the Event and
that no request is made):

* without patterns nothing is refused; with patterns, every refused address is named by
  its field path (``spec.`` in CRD mode, ``data.consumer.yaml.`` in guest mode) and
  shown redacted, with the patterns in force;
* the status gets ``MetricsAvailable=False, reason=AddressNotAllowed``.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from konsumerator.api import manifests
from konsumerator.controllers.reconciling import refusal
from konsumerator.domain import keys
from konsumerator.domain.planning import Counters, Metrics, Plan
from konsumerator.domain.status import ConsumerStatus, of_pass
from konsumerator.prom.urls import AddressPolicy

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def consumer(addresses: list[str]) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((EXAMPLES / "consumer.yaml").read_text())
    obj["spec"]["autoscaler"]["prometheus"]["address"] = addresses
    return obj


def guest(addresses: list[str]) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((EXAMPLES / "consumer-configmap.yaml").read_text())
    spec = yaml.safe_load(obj["data"][keys.GUEST_SPEC_KEY])
    spec["autoscaler"]["prometheus"]["address"] = addresses
    obj["data"][keys.GUEST_SPEC_KEY] = yaml.safe_dump(spec)
    return obj


POLICY = AddressPolicy.parse(["*.monitoring.svc", "10.0.0.0/8"])
GOOD = "http://prometheus.monitoring.svc:9090"
EVIL = "http://admin:hunter2@metadata.internal/latest"


def test_no_patterns_refuse_nothing() -> None:
    source, spec = manifests.read(consumer([EVIL]))
    assert refusal(policy=AddressPolicy(), source=source, spec=spec) is None


def test_allowed_addresses_are_not_refused() -> None:
    source, spec = manifests.read(consumer([GOOD, "http://10.1.2.3:9090"]))
    assert refusal(policy=POLICY, source=source, spec=spec) is None


@pytest.mark.parametrize(
    ("build", "field"),
    [(consumer, "spec"), (guest, f"data.{keys.GUEST_SPEC_KEY}")],
    ids=["crd", "guest"],
)
def test_refused_addresses_are_named_by_field_and_redacted(build: Any, field: str) -> None:
    source, spec = manifests.read(build([GOOD, EVIL, "http://127.0.0.1:9090"]))
    message = refusal(policy=POLICY, source=source, spec=spec)
    assert message == (
        f"{field}.autoscaler.prometheus.address[1] (http://***@metadata.internal/latest),"
        f" {field}.autoscaler.prometheus.address[2] (http://127.0.0.1:9090):"
        " not allowed by the operator's --prometheus-allowed-hosts"
        " (*.monitoring.svc, 10.0.0.0/8); no request was made"
    )
    assert "hunter2" not in message


def test_the_status_says_address_not_allowed() -> None:
    status = of_pass(
        plan=Plan(
            applies=(),
            deletes=(),
            counters=Counters(expected=1, running=1),
            instances=(),
            conflicts=(),
            requeue_after_s=None,
            template_hash="1",
        ),
        metrics=Metrics(),
        autoscaling=True,
        num_partitions=1,
        failures=(),
        conflicts=(),
        previous=ConsumerStatus(),
        generation=1,
        now=datetime(2024, 1, 1, tzinfo=UTC),
        refusal="spec.autoscaler.prometheus.address[0] (http://x): not allowed",
    ).to_body()
    [available] = [c for c in status["conditions"] if c["type"] == "MetricsAvailable"]
    assert (available["status"], available["reason"]) == ("False", "AddressNotAllowed")
    assert available["message"].startswith("spec.autoscaler.prometheus.address[0]")
