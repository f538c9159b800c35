"""Installing on the local cluster, and the operator doing its job with exactly that RBAC.

Aspects tested, for kustomize (cluster-wide and guest overlays) and Helm (cluster-wide and
guest mode):

* the rendered objects pass ``kubectl apply --dry-run=server``, then apply for real (Helm:
  ``helm install --wait``); the operator Deployment is accepted (in a namespace enforcing the
  restricted Pod Security Standard) and becomes Available (KWOK runs its pods: no image is
  pulled, there is no container runtime);
* ``python -m konsumerator run`` with the installed Deployment's own arguments (ports made
  0, so parallel runs do not collide) and a kubeconfig holding only the installed
  ServiceAccount's token does its job: a Consumer (or a guest-mode ConfigMap) gets its
  Deployments, its status and Events, and the Lease is taken; with those arguments the
  probes listen on every interface and ``/metrics`` on loopback only (read from the
  kernel's socket table);
* what the operator does not do is forbidden to that token: creating or updating
  Deployments (it creates by server-side apply), Secrets, Pods, writing Consumers, and in
  guest mode anything outside its namespace or any Consumer.

Every object is installed into the test's own namespace (a kustomization on top of the
overlay sets it); cluster-scoped objects are deleted afterwards, except the CRD, which other
tests share.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operating import OperatorProcess, eventually, install_crd, operator_process
from test_install_manifests import CHART, DEPLOY, ROOT, docs, helm

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster

pytestmark = pytest.mark.cluster


# -- helpers -----------------------------------------------------------------------------------


def kustomize_into(cluster: Cluster, overlay: str, namespace: str, tmp: Path) -> str:
    """``overlay`` rendered into ``namespace`` by a kustomization on top of it."""
    base = os.path.relpath(DEPLOY / overlay, tmp)
    (tmp / "kustomization.yaml").write_text(
        yaml.safe_dump({"namespace": namespace, "resources": [base]})
    )
    return str(cluster.kubectl("kustomize", str(tmp)).stdout)


def apply_twice(cluster: Cluster, manifest: str) -> None:
    """Server-side dry run first (every object validated), then for real."""
    for extra in (["--dry-run=server"], []):
        cluster.kubectl(
            "apply", "--server-side", "--force-conflicts", *extra, "-f", "-", input=manifest
        )


def wait_available(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    cluster.kubectl("rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=120s")
    deployment: dict[str, Any] = cluster.api(
        "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    )
    assert deployment["status"]["availableReplicas"] == deployment["spec"]["replicas"]
    return deployment


def token_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    token = cluster.service_account_token(namespace, account, create=False)
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {
                            "server": cluster.api_url,
                            "certificate-authority": str(cluster.ca_file),
                        },
                    }
                ],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": account,
                        "context": {"cluster": "local", "user": account, "namespace": namespace},
                    }
                ],
                "current-context": account,
            }
        )
    )
    return path


def as_token(cluster: Cluster, kubeconfig: Path, method: str, path: str, body: Any = None) -> int:
    """HTTP status of one request made with the kubeconfig's token."""
    config = yaml.safe_load(kubeconfig.read_text())
    token = config["users"][0]["user"]["token"]
    request = urllib.request.Request(
        cluster.api_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=str(cluster.ca_file))
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code


def can_i(cluster: Cluster, kubeconfig: Path, *args: str) -> bool:
    result = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", "auth", "can-i", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.strip() in {"yes", "no"}, result.stderr
    return result.stdout.strip() == "yes"


def sample(name: str, namespace: str, prometheus: str) -> dict[str, Any]:
    """``deploy/samples/<name>`` moved into ``namespace``, pointed at the test Prometheus."""
    obj: dict[str, Any] = yaml.safe_load((DEPLOY / "samples" / name).read_text())
    obj["metadata"]["namespace"] = namespace
    if obj["kind"] == "ConfigMap":
        spec = yaml.safe_load(obj["data"]["consumer.yaml"])
    else:
        spec = obj["spec"]
    spec["namespace"] = namespace
    spec["autoscaler"]["prometheus"]["address"] = [prometheus]
    if obj["kind"] == "ConfigMap":
        obj["data"]["consumer.yaml"] = yaml.safe_dump(spec)
    return obj


def managed_deployments(cluster: Cluster, namespace: str) -> list[str]:
    selector = f"{keys.LABEL_MANAGED_BY}%3D{keys.MANAGED_BY_VALUE}"
    found = cluster.api(
        "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments?labelSelector={selector}"
    )
    return sorted(d["metadata"]["name"] for d in found["items"])


def event_reasons(cluster: Cluster, namespace: str) -> set[str]:
    found = cluster.api("GET", f"/api/v1/namespaces/{namespace}/events")
    return {e["reason"] for e in found["items"] if e.get("source", {}).get("component")}


def lease_holder(cluster: Cluster, namespace: str, name: str) -> str:
    resp = cluster.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
    )
    return str(resp.json()["spec"].get("holderIdentity") or "") if resp.ok else ""


@contextlib.contextmanager
def cluster_scoped_cleanup(cluster: Cluster, manifest: str) -> Iterator[None]:
    """Delete the ClusterRoles and bindings of ``manifest`` afterwards (never the CRD)."""
    try:
        yield
    finally:
        for obj in docs(manifest):
            if obj["kind"] in {"ClusterRole", "ClusterRoleBinding"}:
                cluster.kubectl(
                    "delete",
                    obj["kind"].lower(),
                    obj["metadata"]["name"],
                    "--ignore-not-found",
                    check=False,
                )


def helm_live(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return helm(f"--kubeconfig={cluster.kubeconfig}", *args)


# -- the operator, as the installed ServiceAccount ---------------------------------------------


def installed_args(cluster: Cluster, namespace: str, name: str) -> list[str]:
    """The installed Deployment's arguments as the kubelet would pass them, ports made 0."""
    deployment = cluster.api("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = [a.replace("$(POD_NAMESPACE)", namespace) for a in container["args"]]
    return [re.sub(r"^(--(?:metrics|health-probe)-bind-address=.*):\d+$", r"\1:0", a) for a in args]


def serving(operator: OperatorProcess) -> dict[str, tuple[str, int]]:
    """What the operator logged it serves: first path → (host, port)."""
    found = {}
    for line in operator.log_text().splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("event") == "serving":
                found[record["paths"][0]] = (record["host"], int(record["port"]))
    return found


def listening_address(port: int) -> str:
    """The local address of the TCP socket listening on ``port`` (kernel socket table)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, _, hex_port = fields[1].partition(":")
        if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
            return ".".join(str(b) for b in reversed(bytes.fromhex(address)))
    raise AssertionError(f"nothing listens on port {port}")


def assert_listens_as_installed(operator: OperatorProcess) -> None:
    endpoints = eventually(
        lambda: serving(operator),
        lambda found: {"/healthz", "/metrics"} <= found.keys(),
        timeout=30,
        what="the operator to log its endpoints",
    )
    (health_host, health_port), (metrics_host, metrics_port) = (
        endpoints["/healthz"],
        endpoints["/metrics"],
    )
    assert (health_host, listening_address(health_port)) == ("0.0.0.0", "0.0.0.0")
    assert (metrics_host, listening_address(metrics_port)) == ("127.0.0.1", "127.0.0.1")
    for port, path in ((health_port, "/healthz"), (metrics_port, "/metrics")):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            assert response.status == 200


def assert_crd_mode_operator_works(
    cluster: Cluster, namespace: str, account: str, tmp: Path
) -> None:
    kubeconfig = token_kubeconfig(cluster, namespace, account, tmp / "sa.kubeconfig")
    consumer = sample("consumer.yaml", namespace, cluster.prometheus_url)
    expected = [f"orders-consumer-{i}" for i in range(5)]
    args = installed_args(cluster, namespace, account)
    assert {"--leader-elect", f"--leader-election-namespace={namespace}"} <= set(args)
    with operator_process(cluster, *args, kubeconfig=kubeconfig) as operator:
        assert_listens_as_installed(operator)
        cluster.apply(consumer)
        eventually(
            lambda: managed_deployments(cluster, namespace),
            lambda names: names == expected,
            timeout=60,
            what="the sample Consumer's five Deployments",
        )
        status = eventually(
            lambda: cluster.api(
                "GET",
                f"/apis/{keys.API_VERSION}/namespaces/{namespace}/{keys.PLURAL}/orders",
            ).get("status", {}),
            lambda s: s.get("expected") == 5 and bool(s.get("conditions")),
            timeout=60,
            what="the Consumer's status (consumers/status patch)",
        )
        assert {c["type"] for c in status["conditions"]} == {
            "Ready",
            "MetricsAvailable",
            "Saturated",
        }
        eventually(
            lambda: event_reasons(cluster, namespace),
            lambda reasons: "Created" in reasons,
            timeout=30,
            what="a Created Event (events create)",
        )
        assert lease_holder(cluster, namespace, "konsumerator-global").startswith("op-0")
        assert operator.alive, operator.log_text()[-5000:]

    other = cluster.create_namespace(f"t-install-other-{secrets.token_hex(3)}")
    try:
        assert can_i(cluster, kubeconfig, "patch", "deployments", "-n", other)
        assert can_i(cluster, kubeconfig, "list", "pods", "-n", other)
        assert can_i(cluster, kubeconfig, "patch", "pods", "--subresource=resize", "-n", other)
        assert can_i(cluster, kubeconfig, "list", "consumers.konsumerator.lwolf.org", "-A")
        for verb, resource in [
            ("update", "deployments"),
            ("list", "secrets"),
            ("create", "pods"),
            ("update", "pods"),
            ("delete", "pods"),
            ("patch", "pods"),
            ("update", "pods/status"),
            ("list", "configmaps"),
            ("create", "consumers.konsumerator.lwolf.org"),
            ("delete", "consumers.konsumerator.lwolf.org"),
            ("update", "consumers.konsumerator.lwolf.org/status"),
            ("get", "leases.coordination.k8s.io"),
        ]:
            assert not can_i(cluster, kubeconfig, verb, resource, "-n", other), (verb, resource)
        assert as_token(cluster, kubeconfig, "GET", f"/api/v1/namespaces/{other}/secrets") == 403
        pods = f"/api/v1/namespaces/{other}/pods"
        assert as_token(cluster, kubeconfig, "POST", pods, {"metadata": {"name": "x"}}) == 403
    finally:
        cluster.delete_namespace(other)


def assert_guest_mode_operator_works(
    cluster: Cluster, namespace: str, account: str, tmp: Path
) -> None:
    kubeconfig = token_kubeconfig(cluster, namespace, account, tmp / "sa.kubeconfig")
    configmap = sample("consumer-configmap.yaml", namespace, cluster.prometheus_url)
    args = installed_args(cluster, namespace, account)
    assert {"--leader-elect", f"--namespace={namespace}"} <= set(args)
    with operator_process(cluster, *args, kubeconfig=kubeconfig) as operator:
        assert_listens_as_installed(operator)
        cluster.apply(configmap)
        eventually(
            lambda: managed_deployments(cluster, namespace),
            lambda names: names == ["payments-consumer-0", "payments-consumer-1"],
            timeout=60,
            what="the guest ConfigMap's two Deployments",
        )
        eventually(
            lambda: cluster.api("GET", f"/api/v1/namespaces/{namespace}/configmaps/payments")[
                "metadata"
            ].get("annotations", {}),
            lambda a: a.get(f"{keys.STATUS_PREFIX}expected") == "2",
            timeout=60,
            what="the status annotations (configmaps patch)",
        )
        assert lease_holder(cluster, namespace, f"konsumerator-{namespace}").startswith("op-0")
        assert operator.alive, operator.log_text()[-5000:]

    assert can_i(cluster, kubeconfig, "patch", "deployments", "-n", namespace)
    assert not can_i(cluster, kubeconfig, "update", "deployments", "-n", namespace)
    assert not can_i(cluster, kubeconfig, "create", "deployments", "-n", "default")
    assert not can_i(cluster, kubeconfig, "list", "secrets", "-n", namespace)
    assert not can_i(cluster, kubeconfig, "list", "deployments", "-n", "default")
    assert not can_i(cluster, kubeconfig, "list", "deployments", "-A")
    assert not can_i(cluster, kubeconfig, "list", "consumers.konsumerator.lwolf.org", "-A")
    assert not can_i(cluster, kubeconfig, "patch", "configmaps", "-n", "default")
    assert as_token(cluster, kubeconfig, "GET", f"/api/v1/namespaces/{namespace}/secrets") == 403
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}
    assert (
        as_token(cluster, kubeconfig, "POST", "/apis/apps/v1/namespaces/default/deployments", body)
        == 403
    )


# -- kustomize ---------------------------------------------------------------------------------


def test_kustomize_cluster_wide_install_runs_the_operator_with_exactly_its_rbac(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    manifest = kustomize_into(cluster, "default", namespace, tmp_path)
    with cluster_scoped_cleanup(cluster, manifest):
        apply_twice(cluster, manifest)
        labels = cluster.api("GET", f"/api/v1/namespaces/{namespace}")["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        deployment = wait_available(cluster, namespace, "konsumerator")
        assert deployment["spec"]["replicas"] == 2
        assert_crd_mode_operator_works(cluster, namespace, "konsumerator", tmp_path)


def test_kustomize_guest_install_runs_the_operator_with_a_namespaced_role_only(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    manifest = kustomize_into(cluster, "guest", namespace, tmp_path)
    assert {o["kind"] for o in docs(manifest)} == {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Deployment",
    }
    apply_twice(cluster, manifest)
    wait_available(cluster, namespace, "konsumerator")
    assert_guest_mode_operator_works(cluster, namespace, "konsumerator", tmp_path)


def test_kustomize_monitoring_overlay_applies_with_the_service_monitor_crd(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    # A stand-in for the Prometheus Operator's CRD: enough for the apiserver to accept the kind.
    cluster.apply(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
            "spec": {
                "group": "monitoring.coreos.com",
                "names": {"kind": "ServiceMonitor", "plural": "servicemonitors"},
                "scope": "Namespaced",
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        }
    )
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/servicemonitors.monitoring.coreos.com",
        "--timeout=60s",
    )
    manifest = kustomize_into(cluster, "monitoring", namespace, tmp_path)
    with cluster_scoped_cleanup(cluster, manifest):
        apply_twice(cluster, manifest)
        cluster.api(
            "GET",
            f"/apis/monitoring.coreos.com/v1/namespaces/{namespace}/servicemonitors/konsumerator",
        )


# -- Helm --------------------------------------------------------------------------------------


def test_helm_template_passes_server_side_dry_run(cluster: Cluster, namespace: str) -> None:
    for values in ([], ["--set", "guest.enabled=true"]):
        rendered = helm("template", "dry", str(CHART), "--namespace", namespace, *values).stdout
        cluster.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=rendered)


def test_helm_cluster_wide_install_runs_the_operator_with_exactly_its_rbac(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    install_crd(cluster)  # shared with other tests: the chart must not own it here
    release = f"k{secrets.token_hex(3)}"
    try:
        helm_live(
            cluster,
            "install",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--set",
            "crds.install=false",
            "--wait",
            "--timeout=3m",
        )
        wait_available(cluster, namespace, f"{release}-konsumerator")
        assert_crd_mode_operator_works(cluster, namespace, f"{release}-konsumerator", tmp_path)
    finally:
        helm_live(cluster, "uninstall", release, "--namespace", namespace, "--wait")
    assert not cluster.request(
        "GET", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{release}-konsumerator"
    ).ok


def test_helm_guest_install_runs_the_operator_with_a_namespaced_role_only(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    release = f"k{secrets.token_hex(3)}"
    helm_live(
        cluster,
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "guest.enabled=true",
        "--wait",
        "--timeout=3m",
    )
    try:
        wait_available(cluster, namespace, f"{release}-konsumerator")
        assert_guest_mode_operator_works(cluster, namespace, f"{release}-konsumerator", tmp_path)
    finally:
        helm_live(cluster, "uninstall", release, "--namespace", namespace, "--wait")


def test_install_docs_commands_name_real_paths() -> None:
    text = (ROOT / "docs" / "installation.md").read_text()
    for path in ("deploy/default", "deploy/guest", "deploy/monitoring", "charts/konsumerator"):
        assert path in text
        assert (ROOT / path).is_dir()
