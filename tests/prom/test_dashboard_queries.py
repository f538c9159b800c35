"""The Grafana dashboard's queries, evaluated by a real Prometheus over the operator's metrics.

A Prometheus scrapes (every second, job ``konsumerator``) the exposition of the operator's
real metric objects (``RuntimeMetrics`` and ``ConsumerMetrics``), driven as the operator
drives them. Aspects tested:

* every query of ``deploy/grafana/konsumerator.json`` is valid PromQL and evaluates;
* the ``$job`` variable finds the operator's job even without leader election;
* without leader election, the leader panels read -1 (mapped to "election off") and
  "Replicas reporting" counts the replica; with it, the leader reads 1;
* before any error, the error panels read 0 instead of having no data;
* "API errors/s" ignores the 404s the operator expects (GET and DELETE) but counts a 500.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from konsumerator.obs.consumers import ConsumerMetrics
from konsumerator.obs.metrics import RuntimeMetrics
from konsumerator_dev.testenv import MetricsExporter, wait_until

from .conftest import PrometheusProcess, launch_prometheus

ROOT = Path(__file__).resolve().parents[2]
BOARD = json.loads((ROOT / "deploy" / "grafana" / "konsumerator.json").read_text())
JOB = "konsumerator"


class Operator:
    """The operator's metric objects, served as one replica's /metrics."""

    def __init__(self, exporter: MetricsExporter) -> None:
        self.exporter = exporter
        self.runtime = RuntimeMetrics()
        self.consumers = ConsumerMetrics(registry=self.runtime.registry)

    def publish(self) -> None:
        self.exporter.set(generate_latest(self.runtime.registry).decode())


@pytest.fixture(scope="module")
def operator() -> Iterator[Operator]:
    with MetricsExporter() as exporter:
        served = Operator(exporter)
        # A healthy replica without --leader-elect: it listed and watched, created three
        # Deployments (each after a guard GET answered 404), deleted one already gone.
        for verb, resource, code in [
            ("list", "consumers", 200),
            ("watch", "consumers", 200),
            *[("get", "deployments", 404)] * 3,
            *[("apply", "deployments", 200)] * 3,
            ("delete", "deployments", 404),
            ("get", "leases", 404),
        ]:
            served.runtime.api_request(verb, resource, code)
        served.runtime.reconcile_finished(controller="consumer", result="success", seconds=0.1)
        served.consumers.reconciled(consumer="ns/orders", seconds=0.1, failed=False)
        served.publish()
        yield served


@pytest.fixture(scope="module")
def prometheus(
    operator: Operator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusProcess]:
    prom = launch_prometheus(
        workdir=tmp_path_factory.mktemp("dashboard-prometheus"),
        job=JOB,
        target=operator.exporter.target,
        labels="{pod: konsumerator-0}",
    )
    try:
        # rate() needs two samples of a series; wait for three scrapes.
        wait_until(
            lambda: _values(prom, "count_over_time(konsumerator_meta_info[5m]) >= 3") != [],
            timeout=60,
            what="three scrapes of the operator's metrics",
        )
        yield prom
    finally:
        prom.stop()


def _query(prom: PrometheusProcess, expr: str) -> list[dict[str, Any]]:
    data = urllib.parse.urlencode({"query": expr}).encode()
    try:
        with urllib.request.urlopen(f"{prom.address}/api/v1/query", data=data, timeout=5) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{expr}: {e.read().decode()}") from None
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _values(prom: PrometheusProcess, expr: str) -> list[float]:
    return [float(sample["value"][1]) for sample in _query(prom, expr)]


def _resolve(expr: str) -> str:
    return expr.replace("$job", JOB).replace("$consumer", ".*")


def _panels() -> Iterator[dict[str, Any]]:
    for panel in BOARD["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panel(title: str) -> dict[str, Any]:
    (found,) = [p for p in _panels() if p.get("title") == title]
    return found


def exprs(title: str) -> list[str]:
    return [_resolve(t["expr"]) for t in panel(title)["targets"]]


def test_every_dashboard_query_evaluates(prometheus: PrometheusProcess) -> None:
    for p in _panels():
        for target in p.get("targets", []):
            _query(prometheus, _resolve(target["expr"]))


def test_job_variable_finds_the_operator_without_leader_election(
    prometheus: PrometheusProcess,
) -> None:
    (variable,) = [v for v in BOARD["templating"]["list"] if v["name"] == "job"]
    metric = variable["query"].removeprefix("label_values(").split(",")[0]
    url = f"{prometheus.address}/api/v1/label/job/values?" + urllib.parse.urlencode(
        {"match[]": metric}
    )
    with urllib.request.urlopen(url, timeout=5) as r:
        assert JOB in json.loads(r.read())["data"]


def test_leader_panels_say_election_off_without_leader_election(
    prometheus: PrometheusProcess,
) -> None:
    (leaders,) = exprs("Leaders")
    (per_pod,) = exprs("Leader")
    assert _values(prometheus, leaders) == [-1]
    assert _values(prometheus, per_pod) == [-1]
    assert _values(prometheus, exprs("Replicas reporting")[0]) == [1]
    for title in ("Leaders", "Leader"):
        mappings = panel(title)["fieldConfig"]["defaults"]["mappings"]
        assert mappings[0]["options"]["-1"]["text"] == "election off"


def test_error_panels_read_zero_before_the_first_error(prometheus: PrometheusProcess) -> None:
    for title in ("Reconcile errors/s", "API errors/s", "Reconcile errors"):
        for expr in exprs(title):
            values = _values(prometheus, expr)
            assert values, f"{title}: no data"
            assert set(values) == {0}, title


def test_api_errors_leave_out_expected_404s_but_count_real_errors(
    operator: Operator, prometheus: PrometheusProcess
) -> None:
    (api_errors,) = exprs("API errors/s")
    (leaders,) = exprs("Leaders")
    assert _values(prometheus, api_errors) == [0]
    assert "404" in panel("API errors/s")["description"]
    # Now failures, reconcile errors and leadership: the fallbacks must not hide them.
    # A counter's first sample is not an increase for rate(), so each error happens
    # once, is scraped, and happens again.
    operator.runtime.leadership_changed(name="konsumerator-global", leading=True)
    for _ in range(2):
        operator.runtime.api_request("apply", "deployments", 500)
        operator.runtime.reconcile_errored(controller="consumer", terminal=False)
        operator.publish()
        scrapes = operator.exporter.scrapes
        wait_until(
            lambda before=scrapes: operator.exporter.scrapes > before,
            timeout=30,
            what="a scrape of the new counters",
        )
    wait_until(
        lambda: (
            _values(prometheus, api_errors)[0] > 0
            and _values(prometheus, exprs("Reconcile errors/s")[0])[0] > 0
            and _values(prometheus, leaders) == [1]
        ),
        timeout=60,
        what="the 500, the reconcile error and the leader to show",
    )
