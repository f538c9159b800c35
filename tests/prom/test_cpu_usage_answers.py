"""The ``cpuUsage`` answer a real Prometheus gives for cAdvisor-style series, by instance.

The exporter here serves ``container_cpu_usage_seconds_total`` as the kubelet's cAdvisor
endpoint does: per pod, the pod's cgroup total (``container=""``, which Prometheus
stores without the label) beside one series per container; the same Consumer's pod
names in a second namespace; and, on demand, a pod replaced mid-window (Recreate: a
new pod, the old one's series goes stale). Pod names are Kubernetes' generated ones for
a 50-character ``spec.name``, so they are cut to 58 + 5 characters.

Aspects tested, with PromQL evaluated by a real Prometheus and the answer taken through
``fetch_cpu_usage`` and the learner's ``cores_by_instance``:
- the documented query (``sum by (namespace, pod)`` of the consuming container) gives
  each instance its container's cores, and the other namespace's pods are left out;
- a careless query (no namespace, no container filter, no aggregation) still gives each
  instance its pod's total once: the cgroup total is not added to its containers, and
  the namespace label keeps the other namespace out;
- a careless ``sum by (pod)`` without a container filter is where the labels are gone:
  Prometheus adds the total to the containers and both namespaces (why the docs ask
  for ``by (namespace, pod)`` and a container filter);
- a pod replaced within the ``rate()`` window: both pods' series are answered, and
  their sum is the instance's CPU (each ``rate()`` covers its share of the window).
"""

import contextlib
import http.server
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx2
import pytest

from konsumerator.domain.adaptive.learning import cores_by_instance, generated_pod_name
from konsumerator.domain.metrics import CpuUsage
from konsumerator.prom.cpuusage import fetch_cpu_usage
from konsumerator.prom.queries import PodQuerySpec

from .conftest import PrometheusProcess, QuietServer, launch_prometheus

NAME = "a" * 49 + "z"  # spec.name: Deployments of 52 characters, pods cut
INSTANCES = (f"{NAME}-0", f"{NAME}-1")
POD0 = generated_pod_name(deployment=INSTANCES[0], template_hash="5d4f8b9c7d", suffix="x1y2z")
POD1_OLD = generated_pod_name(deployment=INSTANCES[1], template_hash="5d4f8b9c7d", suffix="q7r8s")
# Recreate after a resize: a new template, so a new pod-template-hash.
POD1_NEW = generated_pod_name(deployment=INSTANCES[1], template_hash="7c9b8f4d5d", suffix="m2n4p")
# cores: (namespace, pod, container) -> cores used; container "" is the cgroup total.
SERIES = {
    ("shop", POD0, ""): 0.5,
    ("shop", POD0, "consumer"): 0.4,
    ("shop", POD0, "sidecar"): 0.1,
    # The same Consumer in another namespace: the same pod name, far more CPU.
    ("test", POD0, ""): 3.0,
    ("test", POD0, "consumer"): 3.0,
}
# Both of instance 1's pods, total and consumer alike; only the replacement test
# looks at instance 1, so the tests may run in any order.
POD1_CORES = 0.5
WINDOW = "20s"
TIMEOUT = 60.0


@dataclass
class CadvisorExporter:
    """Counters growing at the cores above; ``replace()`` swaps instance 1's pod."""

    started: float = field(default_factory=time.time)
    replaced_at: float | None = None

    def replace(self) -> None:
        self.replaced_at = time.time()

    def render(self) -> str:
        now = time.time()
        lines = ["# TYPE container_cpu_usage_seconds_total counter"]
        series = dict(SERIES)
        if self.replaced_at is None or now < self.replaced_at:
            since, pod = self.started, POD1_OLD
        else:
            since, pod = self.replaced_at, POD1_NEW
        for container in ("", "consumer"):
            series["shop", pod, container] = POD1_CORES
        for (namespace, name, container), cores in series.items():
            start = self.started if name != POD1_NEW else since
            labels = (
                f'namespace="{namespace}",pod="{name}",container="{container}",'
                f'id="/kubepods/{namespace}/{name}/{container}"'
            )
            lines.append(f"container_cpu_usage_seconds_total{{{labels}}} {(now - start) * cores}")
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def cadvisor() -> Iterator[tuple[CadvisorExporter, int]]:
    state = CadvisorExporter()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="fake-cadvisor", daemon=True)
    thread.start()
    try:
        yield state, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _instant(address: str, query: str) -> str:
    data = urllib.parse.urlencode({"query": query}).encode()
    with urllib.request.urlopen(f"{address}/api/v1/query", data=data, timeout=2) as response:
        return str(response.read().decode())


def _eventually(address: str, query: str, what: str) -> None:
    """Until ``query`` answers a non-empty vector (Prometheus has scraped enough)."""
    deadline = time.monotonic() + TIMEOUT
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            last = _instant(address, query)
            if '"result":[{' in last:
                return
        except (urllib.error.URLError, OSError) as exc:
            last = repr(exc)
        time.sleep(0.3)
    pytest.fail(f"{what}: not within {TIMEOUT}s: {last}")


@pytest.fixture(scope="module")
def prometheus(
    cadvisor: tuple[CadvisorExporter, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusProcess]:
    prom = launch_prometheus(
        workdir=tmp_path_factory.mktemp("prometheus-cadvisor"),
        job="cadvisor",
        target=f"127.0.0.1:{cadvisor[1]}",
    )
    try:
        # Scraped for longer than WINDOW, so rate() does not extrapolate over a fraction.
        _eventually(
            prom.address,
            f'count_over_time(container_cpu_usage_seconds_total{{pod="{POD0}"}}[30s]) >= 25',
            "more than a rate() window scraped",
        )
        yield prom
    finally:
        with contextlib.suppress(Exception):
            prom.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(trust_env=False) as client:
        yield client


async def answer(client: httpx2.AsyncClient, prom: PrometheusProcess, query: str) -> CpuUsage:
    usage = await fetch_cpu_usage(
        client=client,
        addresses=(prom.address,),
        spec=PodQuerySpec(query=query, pod_label="pod"),
        timeout_seconds=5.0,
    )
    assert usage.problem is None, usage.problem
    return usage


def rate(selector: str) -> str:
    return f"rate(container_cpu_usage_seconds_total{selector}[{WINDOW}])"


# docs/adaptive.md's query (the consuming container, by namespace and pod).
CONSUMER = '{container="consumer"}'
DOCUMENTED = f"sum by (namespace, pod) ({rate(CONSUMER)})"


async def test_the_documented_query_gives_each_instance_its_consuming_container(
    client: httpx2.AsyncClient, prometheus: PrometheusProcess
) -> None:
    tally = cores_by_instance(
        await answer(client, prometheus, DOCUMENTED), INSTANCES, namespace="shop"
    )
    assert tally.cores[INSTANCES[0]] == pytest.approx(0.4, rel=0.1)
    assert tally.unknown == 1  # the other namespace's pod of the same name


async def test_a_careless_raw_query_counts_each_pod_once_and_only_this_namespace(
    client: httpx2.AsyncClient, prometheus: PrometheusProcess
) -> None:
    usage = await answer(client, prometheus, rate(""))
    # The cgroup total reached us without its empty container label.
    assert set(usage.by_pod) >= {f"shop/{POD0}", f"test/{POD0}"}
    tally = cores_by_instance(usage, INSTANCES, namespace="shop")
    assert tally.cores[INSTANCES[0]] == pytest.approx(0.5, rel=0.1)  # not 0.5 + 0.4 + 0.1


async def test_a_sum_by_pod_without_filters_double_counts_where_no_label_can_tell(
    client: httpx2.AsyncClient, prometheus: PrometheusProcess
) -> None:
    usage = await answer(client, prometheus, f"sum by (pod) ({rate('')})")
    # 0.5 + 0.4 + 0.1 here and 3 + 3 in the other namespace, summed by Prometheus.
    assert usage.by_pod[POD0] == pytest.approx(7.0, rel=0.1)


async def test_a_pod_replaced_within_the_window_adds_up_to_the_instances_cpu(
    client: httpx2.AsyncClient,
    prometheus: PrometheusProcess,
    cadvisor: tuple[CadvisorExporter, int],
) -> None:
    cadvisor[0].replace()
    # The new pod has a few samples while the old one is still inside the window.
    _eventually(
        prometheus.address,
        f'count_over_time(container_cpu_usage_seconds_total{{pod="{POD1_NEW}",container=""}}'
        f"[{WINDOW}]) >= 4",
        "the new pod scraped a few times",
    )
    usage = await answer(client, prometheus, DOCUMENTED)
    assert {f"shop/{POD1_OLD}", f"shop/{POD1_NEW}"} <= set(usage.by_pod)
    assert usage.by_pod[f"shop/{POD1_NEW}"] < 0.4  # either alone is a share of the window
    tally = cores_by_instance(usage, INSTANCES, namespace="shop")
    # Each rate() spreads its pod's increase over the whole window: the sum is the
    # instance's CPU, less a scrape interval or two of neither pod.
    assert 0.35 <= tally.cores[INSTANCES[1]] <= 0.55
