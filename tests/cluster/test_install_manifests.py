"""Install artefacts, without touching the cluster: they render, they agree, they cannot drift.

Aspects tested:

* every file derived from the CRD is what ``make generate`` writes (the CRD copies in
  ``deploy/crds`` and the chart, ``docs/consumer-reference.md``, the Grafana dashboard), and
  the generator's extra descriptions all name real fields;
* ``deploy/samples`` are the files of ``examples/``;
* every kustomize overlay renders with the cluster's kubectl; the operator Deployment of each
  meets the restricted Pod Security profile by construction (non-root, read-only root,
  no privilege escalation, no capabilities, RuntimeDefault seccomp), has requests, limits,
  probes on the health port, leader election and the downward-API env;
* the operator's arguments, parsed by the real command line: probes on every interface
  (the kubelet needs the pod IP), ``/metrics`` on loopback unless the monitoring component
  (or the chart's ``metrics.expose``) exposes it with a Service, and
  ``--prometheus-allowed-hosts`` present (empty: any address) and set from the chart's
  ``prometheus.allowedHosts``;
* RBAC is least privilege: cluster mode has exactly the ClusterRole rules and a Lease Role,
  guest mode only a namespaced Role; the Helm chart renders the very same rules;
* ``helm lint`` passes for the default, guest and monitoring values; ``helm template``
  switches guest mode, CRD install, ServiceMonitor and leader election as documented, and
  refuses several replicas without leader election;
* the dashboard queries exactly the metrics it declares; its ``$job`` variable reads a
  metric every replica exports from the start, its leader panels fall back to "election
  off", its error panels to 0, and "API errors/s" leaves out expected 404s (what these
  queries return is checked on a real Prometheus in tests/prom/test_dashboard_queries.py);
* the Dockerfile's ``uv sync`` commands build a virtualenv with the ``konsumerator`` entry
  point and without test or lint dependencies (the image itself is not built: no Docker).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from konsumerator import app
from konsumerator.cli import main
from konsumerator.obs.metrics import RuntimeMetrics
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.hack import build_helm, dashboard, generate
from konsumerator_dev.testenv import Cluster

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = ROOT / "charts" / "konsumerator"
OVERLAYS = ("default", "guest", "monitoring")


@cache
def helm_binary() -> Path:
    return Path(build_helm.ensure())


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    home = ROOT / ".pytest_cache" / "helm-home"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    result = subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, env=env, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}: {result.stderr}\n{result.stdout}")
    return result


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def kustomize(cluster: Cluster, overlay: str) -> list[dict[str, Any]]:
    return docs(cluster.kubectl("kustomize", str(DEPLOY / overlay)).stdout)


def template(*values: str, namespace: str = "ops") -> list[dict[str, Any]]:
    sets = [a for v in values for a in ("--set", v)]
    return docs(helm("template", "rel", str(CHART), "--namespace", namespace, *sets).stdout)


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objs, kind)
    assert len(found) == 1, f"{len(found)} {kind}s"
    return found[0]


def rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _r(group: str, resource: str, *verbs: str) -> set[tuple[str, str, str]]:
    return {(group, resource, v) for v in verbs}


# A server-side apply that creates an object is authorized as "create" as well as "patch".
DEPLOYMENT_RULES = _r("apps", "deployments", "get", "list", "watch", "create", "patch", "delete")
EVENT_RULES = _r("", "events", "create", "patch")
# In-place resizing: the pods of managed Deployments are watched and resized, nothing more;
# their ReplicaSets are watched to check each pod's owner chain by UID.
POD_RULES = (
    _r("", "pods", "get", "list", "watch")
    | _r("", "pods/resize", "patch")
    | _r("apps", "replicasets", "list", "watch")
)
LEASE_RULES = _r("coordination.k8s.io", "leases", "get", "list", "watch", "create", "update")
CLUSTER_RULES = (
    DEPLOYMENT_RULES
    | POD_RULES
    | EVENT_RULES
    | _r("konsumerator.lwolf.org", "consumers", "get", "list", "watch")
    | _r("konsumerator.lwolf.org", "consumers/status", "patch")
    | _r("konsumerator.lwolf.org", "consumers/finalizers", "update")
)
GUEST_RULES = (
    DEPLOYMENT_RULES
    | POD_RULES
    | EVENT_RULES
    | LEASE_RULES
    | _r("", "configmaps", "get", "list", "watch", "patch")
    | _r("", "configmaps/finalizers", "update")
)


def manager(objs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = one(objs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


# -- generated files ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(generate.outputs()), ids=lambda p: p.name)
def test_generated_file_is_up_to_date(path: Path) -> None:
    assert path.read_text() == generate.outputs()[path], "run: make generate"


def test_reference_extra_descriptions_all_name_fields_of_the_crd() -> None:
    assert generate.stale_extras() == []


def test_reference_documents_every_spec_field() -> None:
    text = (ROOT / "docs" / "consumer-reference.md").read_text()
    for row in re.findall(r"^\| `(spec\.[^`]+)` \|[^\n]*\| ([^|\n]*) \|$", text, re.M):
        assert row[1].strip(), f"{row[0]} has no description"


@pytest.mark.parametrize("name", ["consumer.yaml", "consumer-configmap.yaml"])
def test_samples_are_the_examples(name: str) -> None:
    assert (DEPLOY / "samples" / name).read_text() == (ROOT / "examples" / name).read_text()


def test_dashboard_queries_exactly_the_declared_metrics() -> None:
    board = json.loads((DEPLOY / "grafana" / "konsumerator.json").read_text())

    def exprs(panels: list[dict[str, Any]]) -> Iterator[str]:
        for panel in panels:
            yield from (t["expr"] for t in panel.get("targets", []))
            yield from exprs(panel.get("panels", []))

    used = {
        re.sub(r"_bucket$", "", name)
        for expr in exprs(board["panels"])
        for name in re.findall(r"\b([a-z_]+)(?=\{|\[|\)|$)", expr)
        if "_" in name and name not in {"histogram_quantile", "label_values"}
    }
    assert used == set(dashboard.METRICS)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def _board_panels() -> dict[str, dict[str, Any]]:
    board = json.loads((DEPLOY / "grafana" / "konsumerator.json").read_text())
    return {p["title"]: p for p in board["panels"]}


def test_dashboard_job_variable_reads_a_metric_every_replica_exports_from_the_start() -> None:
    board = json.loads((DEPLOY / "grafana" / "konsumerator.json").read_text())
    (job,) = [v for v in board["templating"]["list"] if v["name"] == "job"]
    metric = re.fullmatch(r"label_values\((\w+), job\)", job["query"])
    assert metric is not None
    fresh = RuntimeMetrics().registry
    assert fresh.get_sample_value(metric.group(1), _labels_of(fresh, metric.group(1))) == 1


def _labels_of(registry: Any, name: str) -> dict[str, str]:
    (sample,) = [s for m in registry.collect() for s in m.samples if s.name == name]
    return dict(sample.labels)


def test_dashboard_leader_panels_fall_back_to_election_off() -> None:
    panels = _board_panels()
    for title in ("Leaders", "Leader"):
        (target,) = panels[title]["targets"]
        assert "leader_election_master_status" in target["expr"]
        assert re.search(r"or on\(\w*\) \(.*konsumerator_meta_info.* \* 0 -1\)", target["expr"])
        mapping = panels[title]["fieldConfig"]["defaults"]["mappings"][0]
        assert mapping["options"]["-1"]["text"] == "election off"
    assert "leader_election" not in panels["Replicas reporting"]["targets"][0]["expr"]


def test_dashboard_error_panels_read_zero_before_the_first_error() -> None:
    panels = _board_panels()
    for title in ("Reconcile errors/s", "API errors/s", "Reconcile errors"):
        for target in panels[title]["targets"]:
            assert re.search(r" or (vector\(0\)|.* \* 0)$", target["expr"]), target["expr"]


def test_dashboard_api_errors_leave_out_the_expected_404s() -> None:
    panel = _board_panels()["API errors/s"]
    (target,) = panel["targets"]
    assert (
        'unless rate(konsumerator_api_requests_total{job=~"$job", code="404", verb=~"get|delete"}'
        in target["expr"]
    )
    assert "404" in panel["description"]


# -- kustomize ---------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", [*OVERLAYS, "samples"])
def test_overlay_renders(cluster: Cluster, overlay: str) -> None:
    assert kustomize(cluster, overlay)


def run_settings(args: list[str], monkeypatch: pytest.MonkeyPatch) -> app.Settings:
    """What ``konsumerator run`` makes of a container's arguments (nothing is started)."""
    seen: list[app.Settings] = []
    monkeypatch.setattr(app, "run", lambda settings: seen.append(settings) or 0)
    argv = [a.replace("$(POD_NAMESPACE)", "ops") for a in args]
    result = CliRunner().invoke(main, ["run", *argv])
    assert result.exit_code == 0, result.output
    return seen[0]


def _assert_listens(
    container: dict[str, Any], monkeypatch: pytest.MonkeyPatch, *, exposed: bool
) -> None:
    settings = run_settings(container["args"], monkeypatch)
    assert settings.health_bind == Endpoint("0.0.0.0", 8081)
    assert settings.metrics_bind == Endpoint("0.0.0.0" if exposed else "127.0.0.1", 8080)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == ({"metrics": 8080, "health": 8081} if exposed else {"health": 8081})
    assert settings.prometheus_allowed_hosts == ("",)  # stated, and empty: any address


def _assert_hardened(pod: dict[str, Any], container: dict[str, Any]) -> None:
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    assert "--leader-elect" in container["args"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_operator_deployment_is_hardened_and_highly_available(
    cluster: Cluster, overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = kustomize(cluster, overlay)
    assert one(objs, "Deployment")["spec"]["replicas"] == 2
    _assert_hardened(*manager(objs))
    _assert_listens(manager(objs)[1], monkeypatch, exposed=overlay == "monitoring")
    labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert "app.kubernetes.io/managed-by" not in labels


def test_default_overlay_is_cluster_wide_with_exact_rbac(cluster: Cluster) -> None:
    objs = kustomize(cluster, "default")
    assert one(objs, "CustomResourceDefinition") == yaml.safe_load(
        (ROOT / "src" / "konsumerator" / "api" / "crd.yaml").read_text()
    )
    assert rules(one(objs, "ClusterRole")) == CLUSTER_RULES
    assert rules(one(objs, "Role")) == LEASE_RULES
    for binding in [*of_kind(objs, "ClusterRoleBinding"), *of_kind(objs, "RoleBinding")]:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "konsumerator", "namespace": "konsumerator-system"}
        ]
    namespace = one(objs, "Namespace")["metadata"]
    assert namespace["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert not any("--namespace" in a for a in manager(objs)[1]["args"])


def test_guest_overlay_has_only_a_namespaced_role(cluster: Cluster) -> None:
    objs = kustomize(cluster, "guest")
    kinds = {o["kind"] for o in objs}
    assert kinds == {"ServiceAccount", "Role", "RoleBinding", "Deployment"}
    assert rules(one(objs, "Role")) == GUEST_RULES
    assert "--namespace=$(POD_NAMESPACE)" in manager(objs)[1]["args"]


def test_monitoring_overlay_adds_a_service_monitor_for_the_metrics_service(
    cluster: Cluster,
) -> None:
    objs = kustomize(cluster, "monitoring")
    monitor = one(objs, "ServiceMonitor")
    service = one(objs, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert "metrics" in {p["name"] for p in manager(objs)[1]["ports"]}


def test_argument_indexes_that_patches_rely_on(cluster: Cluster) -> None:
    # components/monitoring replaces args[2]; docs/installation.md shows a patch of args[4].
    args = manager(kustomize(cluster, "default"))[1]["args"]
    assert args[2] == "--metrics-bind-address=127.0.0.1:8080"
    assert args[4] == "--prometheus-allowed-hosts="
    assert "/args/4" in (ROOT / "docs" / "installation.md").read_text()


def test_without_the_monitoring_component_nothing_exposes_metrics(cluster: Cluster) -> None:
    for overlay in ("default", "guest"):
        assert not of_kind(kustomize(cluster, overlay), "Service")


# -- Helm --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [(), ("guest.enabled=true",), ("metrics.expose=true", "metrics.serviceMonitor.enabled=true")],
    ids=["default", "guest", "monitoring"],
)
def test_helm_lint(values: tuple[str, ...]) -> None:
    sets = [a for v in values for a in ("--set", v)]
    helm("lint", "--strict", str(CHART), *sets)


def test_helm_default_is_cluster_wide_like_kustomize(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = template()
    assert {o["kind"] for o in objs} == {
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
    }
    crd = one(objs, "CustomResourceDefinition")
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    source = yaml.safe_load((ROOT / "src" / "konsumerator" / "api" / "crd.yaml").read_text())
    assert crd["spec"] == source["spec"]
    assert rules(one(objs, "ClusterRole")) == CLUSTER_RULES
    assert rules(one(objs, "Role")) == LEASE_RULES
    assert one(objs, "Role")["metadata"]["namespace"] == "ops"
    assert rules(one(objs, "ClusterRole")) == rules(
        one(kustomize(cluster, "default"), "ClusterRole")
    )
    pod, container = manager(objs)
    _assert_hardened(pod, container)
    _assert_listens(container, monkeypatch, exposed=False)
    assert one(objs, "Deployment")["spec"]["replicas"] == 2
    assert container["image"] == "konsumerator:0.1.0"
    assert pod["serviceAccountName"] == "rel-konsumerator"
    assert "--log-format=json" in container["args"]


def test_helm_guest_mode_has_only_a_namespaced_role_in_the_guest_namespace(
    cluster: Cluster,
) -> None:
    objs = template("guest.enabled=true", "guest.namespace=team-a")
    kinds = {o["kind"] for o in objs}
    assert kinds == {"ServiceAccount", "Role", "RoleBinding", "Deployment"}
    role = one(objs, "Role")
    assert role["metadata"]["namespace"] == "team-a"
    assert rules(role) == GUEST_RULES == rules(one(kustomize(cluster, "guest"), "Role"))
    assert one(objs, "RoleBinding")["subjects"] == [
        {"kind": "ServiceAccount", "name": "rel-konsumerator", "namespace": "ops"}
    ]
    assert "--namespace=team-a" in manager(objs)[1]["args"]


def test_helm_values_switch_what_they_say(monkeypatch: pytest.MonkeyPatch) -> None:
    objs = template(
        "crds.install=false",
        "metrics.expose=true",
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.labels.release=prom",
        "image.repository=registry.example.com/konsumerator",
        "image.tag=1.2.3",
        "replicaCount=3",
        "logFormat=console",
        "logLevel=debug",
        "resources.limits.memory=1Gi",
    )
    assert not of_kind(objs, "CustomResourceDefinition")
    monitor = one(objs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    _, container = manager(objs)
    assert container["image"] == "registry.example.com/konsumerator:1.2.3"
    assert {"--log-format=console", "--log-level=debug"} <= set(container["args"])
    assert container["resources"]["limits"]["memory"] == "1Gi"
    assert one(objs, "Service")["spec"]["ports"][0]["targetPort"] == "metrics"
    settings = run_settings(container["args"], monkeypatch)
    assert settings.metrics_bind == Endpoint("0.0.0.0", 8080)

    allowed = template("prometheus.allowedHosts={*.monitoring.svc,10.0.0.0/8}")
    settings = run_settings(manager(allowed)[1]["args"], monkeypatch)
    assert settings.prometheus_allowed_hosts == ("*.monitoring.svc,10.0.0.0/8",)

    single = template("replicaCount=1", "leaderElection.enabled=false", "metrics.enabled=false")
    assert not of_kind(single, "Service")
    assert not of_kind(single, "Role")
    args = manager(single)[1]["args"]
    assert "--leader-elect" not in args
    assert "--metrics-bind-address=0" in args


def test_helm_refuses_a_service_monitor_for_loopback_metrics() -> None:
    result = helm(
        "template", "rel", str(CHART), "--set", "metrics.serviceMonitor.enabled=true", check=False
    )
    assert result.returncode != 0
    assert "metrics.expose" in result.stderr


def test_helm_refuses_replicas_without_leader_election() -> None:
    result = helm(
        "template",
        "rel",
        str(CHART),
        "--set",
        "leaderElection.enabled=false",
        check=False,
    )
    assert result.returncode != 0
    assert "leaderElection" in result.stderr


# -- image -------------------------------------------------------------------------------------


def test_dockerfile_uv_commands_build_a_runtime_only_venv(tmp_path: Path) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    syncs = re.findall(r"^RUN (uv sync [^\n]+)$", dockerfile, re.M)
    assert len(syncs) == 2
    assert all("--frozen" in s and "--no-dev" in s for s in syncs)
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_LINK_MODE": "copy"}
    env.pop("VIRTUAL_ENV", None)
    # The Dockerfile's uv is the Makefile's pinned release; here it is the one in .tools (the
    # path `uv run` exports as $UV), never a uv the machine may have on PATH.
    uv = os.environ.get("UV") or str(ROOT / ".tools" / "bin" / "uv")
    assert Path(uv).is_file(), f"{uv} is missing: run the tests through make (it installs uv)"
    for command in syncs:
        argv = [uv, *command.split()[1:]]
        subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True)
    version = subprocess.run(
        [str(venv / "bin" / "konsumerator"), "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0, version.stderr
    assert "konsumerator" in version.stdout
    for dev_only in (
        "pytest",
        "ruff",
        "mypy",
        "*konsumerator_dev*",
        "konsumerator/testenv",
        "konsumerator/sim",
    ):
        # the test environment and the simulator are dev tooling, never in the image:
        assert not list((venv / "lib").glob(f"python*/site-packages/{dev_only}"))
    assert re.search(r'^ENTRYPOINT \["konsumerator", "run"\]$', dockerfile, re.M)
    assert re.search(r"^USER 65532:65532$", dockerfile, re.M)
    assert re.search(r"^ARG PYTHON_IMAGE=\S+@sha256:[0-9a-f]{64}$", dockerfile, re.M)
