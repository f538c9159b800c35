"""The operator's ``/metrics`` app (``RuntimeMetrics.wsgi_app``) with the per-instance
families rendered by their collector (``InstanceGauges.exposition``).

Aspects tested:
* every family and sample is what prometheus_client's own app serves for the same
  registry, in the text format and in OpenMetrics (``# EOF`` still last), gzipped when
  asked, and restricted by ``name[]``;
* the rendered lines are byte for byte prometheus_client's text rendering of those
  families, whatever the names (escaped label values included);
* a Consumer's lines follow its latest plan, and a forgotten Consumer's vanish;
* methods other than GET are answered as prometheus_client answers them;
* a scrape by name (`name[]`) finds the per-instance families (it found none before).
"""

import gzip
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from konsumerator.domain.planning import InstanceReport
from konsumerator.domain.scaling import ScalingStatus
from konsumerator.obs.consumers import ConsumerMetrics, InstanceGauges
from konsumerator.obs.metrics import RuntimeMetrics

OPENMETRICS = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"


def report(name: str, *, status: ScalingStatus | None, shortage: int, lag: int) -> InstanceReport:
    return InstanceReport(
        index=0,
        name=name,
        partitions=(0,),
        max_lag_s=lag,
        lagging=lag > 0,
        paused=False,
        status=status,
        cpu_shortage_m=shortage,
    )


def fleet(consumers: int, instances: int) -> dict[str, tuple[InstanceReport, ...]]:
    statuses = [None, *ScalingStatus]
    return {
        f"ns/c{c}": tuple(
            report(f"c{c}-{i}", status=statuses[i % len(statuses)], shortage=i % 3 * 250, lag=i - 2)
            for i in range(instances)
        )
        for c in range(consumers)
    }


def serve(
    app: Callable[..., Any],
    *,
    method: str = "GET",
    accept: str = "",
    query: str = "",
    gz: bool = False,
) -> tuple[str, dict[str, str], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer.update(status=status, headers=dict(headers))

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": "/metrics",
        "QUERY_STRING": query,
        "HTTP_ACCEPT": accept,
        "HTTP_ACCEPT_ENCODING": "gzip" if gz else "",
    }
    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def setups() -> tuple[Callable[..., Any], Callable[..., Any], ConsumerMetrics]:
    """The operator's app, and prometheus_client's over a registry with the same series."""
    runtime = RuntimeMetrics()
    ours = ConsumerMetrics(registry=runtime.registry)
    plain = CollectorRegistry()
    theirs = ConsumerMetrics(registry=plain)
    instances = fleet(3, 40)
    ours.per_instance.instances.update(instances)
    theirs.per_instance.instances.update(instances)
    for metrics in (ours, theirs):
        metrics.reconciled(consumer="ns/c0", seconds=0.5, failed=False)
    reference = RuntimeMetrics(registry=plain)
    return runtime.wsgi_app(rendered=[ours.per_instance]), make_wsgi_app(reference.registry), ours


def samples(text: str, *, openmetrics: bool) -> dict[str, tuple[str, str, set[Any]]]:
    """Each family's type, help and samples; not the ones that differ between two
    registries built a moment apart (process_*, the ``_created`` times)."""
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    return {
        f.name: (
            f.type,
            f.documentation,
            {
                (s.name, tuple(sorted(s.labels.items())), s.value)
                for s in f.samples
                if not s.name.endswith("_created")
            },
        )
        for f in parse(text)
        if not f.name.startswith("process") and not f.name.endswith("_created")
    }


def test_the_app_serves_what_prometheus_client_serves_in_both_formats():
    ours, theirs, _ = setups()
    for accept, openmetrics in (("", False), ("text/plain", False), (OPENMETRICS, True)):
        status, headers, body = serve(ours, accept=accept)
        _, their_headers, their_body = serve(theirs, accept=accept)
        assert status == "200 OK"
        assert headers == their_headers
        got = samples(body.decode(), openmetrics=openmetrics)
        assert got == samples(their_body.decode(), openmetrics=openmetrics)
        assert len(got["konsumerator_deployment_status"][2]) == 120
        if openmetrics:
            assert body.endswith(b"# EOF\n")
            assert body.count(b"# EOF") == 1


def test_gzip_and_name_filters_are_kept():
    ours, theirs, _ = setups()
    _, headers, body = serve(ours, gz=True)
    assert headers["Content-Encoding"] == "gzip"
    assert samples(gzip.decompress(body).decode(), openmetrics=False) == samples(
        serve(theirs)[2].decode(), openmetrics=False
    )
    query = "name[]=konsumerator_deployment_saturation&name[]=konsumerator_consumer_reconcile_total"
    body = serve(ours, query=query)[2]
    assert samples(body.decode(), openmetrics=False) == samples(
        serve(theirs, query=query)[2].decode(), openmetrics=False
    )
    assert b"konsumerator_deployment_status" not in body
    assert b"konsumerator_deployment_saturation{" in body


def test_other_methods_are_answered_as_prometheus_client_answers_them():
    ours, theirs, _ = setups()
    for method in ("OPTIONS", "POST"):
        assert serve(ours, method=method)[:2] == serve(theirs, method=method)[:2]


names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
)


@given(
    st.dictionaries(
        names,
        st.lists(
            st.tuples(
                names,
                st.sampled_from([None, *ScalingStatus]),
                st.integers(min_value=0, max_value=10**12),
                st.integers(min_value=-(10**6), max_value=10**12),
            ),
            max_size=5,
        ),
        max_size=4,
    )
)
def test_rendered_lines_are_prometheus_clients_text_byte_for_byte(
    fleet_: dict[str, list[tuple[str, ScalingStatus | None, int, int]]],
) -> None:
    gauges = InstanceGauges()
    for consumer, rows in fleet_.items():
        gauges.instances[consumer] = tuple(
            report(name, status=status, shortage=shortage, lag=lag)
            for name, status, shortage, lag in rows
        )
    registry = CollectorRegistry()
    registry.register(gauges)
    expected = generate_latest(registry)
    assert gauges.exposition() == expected
    assert gauges.exposition() == expected  # rendering again changes nothing


def test_lines_follow_the_latest_plan_and_vanish_with_the_consumer():
    gauges = InstanceGauges()
    gauges.instances.update(fleet(2, 3))
    before = gauges.exposition()
    gauges.instances["ns/c1"] = (report("c1-0", status=ScalingStatus.SATURATED, shortage=7, lag=9),)
    after = gauges.exposition()
    assert b'deployment="c1-2"' in before
    assert b'deployment="c1-2"' not in after
    assert b'konsumerator_deployment_saturation{consumer="ns/c1",deployment="c1-0"} 7.0' in after
    del gauges.instances["ns/c1"]
    assert b"ns/c1" not in gauges.exposition()
    assert b'deployment="c0-2"' in gauges.exposition()


def test_a_scrape_by_name_finds_the_per_instance_families():
    """prometheus_client's ``name[]`` filter keeps only the families a registry knows by
    name; the per-instance collector used to name none, so it found nothing."""
    registry = CollectorRegistry()
    gauges = InstanceGauges()
    registry.register(gauges)
    gauges.instances.update(fleet(1, 2))
    body = generate_latest(registry.restricted_registry(["konsumerator_deployment_status"]))
    assert b'konsumerator_deployment_status{consumer="ns/c0",deployment="c0-1"}' in body
