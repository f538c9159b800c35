"""A real local control plane (etcd, kube-apiserver, kcm, scheduler, KWOK) plus Prometheus.

Why: Konsumerator must be proven against a real apiserver (CRD validation, server-side apply,
watches, ownerReferences and garbage collection, status subresource, RBAC). This module starts
one from the binaries ``build`` produced, on free 127.0.0.1 ports, and hands tests a small
:class:`Cluster` helper.

* RBAC is on; the admin kubeconfig uses a ``system:masters`` client certificate, and
  :meth:`Cluster.service_account_token` mints ServiceAccount tokens (TokenRequest) to test
  the operator's own permissions.
* KWOK plays the kubelet for one untainted fake node (``kwok-node-0``), so pods of
  Deployments become Running and deleted pods go away, without a container runtime.
* Prometheus scrapes every 1 s whatever targets the caller writes to a ``file_sd`` file
  (:meth:`Cluster.set_scrape_targets`); tests may stop and restart it mid-run.
* Optionally (``up(with_kafka=True)``, ``lifecycle.start_kafka``) a real Kafka broker
  (:mod:`~konsumerator_dev.testenv.kafka`) and the lag exporter Prometheus scrapes as job
  ``kafka`` (:mod:`~konsumerator_dev.testenv.lagexporter`); job ``pods`` scrapes the consumer
  processes of a pod runner (:mod:`~konsumerator_dev.testenv.podrunner`).

This module is the handle on one cluster (:class:`Cluster`: where its files and ports are,
an apiserver client, kubectl, Prometheus queries and scrape targets). The rest is split by
concern: :mod:`~konsumerator_dev.testenv.state` (the record on disk, locks, ownership),
:mod:`~konsumerator_dev.testenv.launcher` (starting components in order) and
:mod:`~konsumerator_dev.testenv.lifecycle` (``up``, ``down``, tiers, orphans).

State (ports, pids with their start times, PKI, logs, data) lives in one directory per named
cluster; ``up`` is idempotent (reuses a healthy cluster), ``down`` stops exactly the recorded
processes and deletes the directory.

Start order, each step waiting for the previous one to be healthy: etcd (``/health``),
kube-apiserver (``/readyz`` with the admin certificate), kube-controller-manager,
kube-scheduler and KWOK together (their ``/healthz``), the fake node (Ready *and* rid of the
``node.kubernetes.io/not-ready`` taint, which the node-lifecycle controller removes a few
seconds after the node is created; nothing schedules before), then Prometheus
(``/-/ready``). Teardown is the reverse: SIGTERM to each recorded process group, SIGKILL
after 10 s. A component that exits during start fails the start with its log tail.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from konsumerator_dev.testenv import process
from konsumerator_dev.testenv import state as disk
from konsumerator_dev.testenv.config import cluster_dir
from konsumerator_dev.testenv.errors import TestenvError
from konsumerator_dev.testenv.process import Proc

Printer = Callable[[str], None]

#: The control plane, in start order; a cluster without all of them running is broken.
CORE = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
)
#: The optional Kafka tier: the broker and the lag exporter Prometheus scrapes.
KAFKA_COMPONENTS = ("kafka", "kafka-exporter")
#: Components in start order (teardown is the reverse).
COMPONENTS = (*CORE, "prometheus", *KAFKA_COMPONENTS)
PORTS = (
    "etcd",
    "etcd-peer",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "prometheus",
    "kafka",
    "kafka-controller",
    "kafka-exporter",
)
NODE_NAME = "kwok-node-0"
SCRAPE_JOB = "testenv"
#: Prometheus job of the lag exporter (always configured; its target is down without Kafka).
KAFKA_JOB = "kafka"
#: Prometheus job of the consumer processes the pod runner starts (file_sd, pods-targets.json).
PODS_JOB = "pods"
SCRAPE_INTERVAL = "1s"
DEFAULT_NAME = "dev"


@dataclass(frozen=True)
class ApiResponse:
    """A raw apiserver answer: tests assert on status codes (403, 422, ...) as often as bodies."""

    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


@dataclass(frozen=True)
class Cluster:
    """A running local cluster, as recorded in its state directory."""

    name: str
    state_dir: Path
    bin_dir: Path
    ports: Mapping[str, int]

    # -- where things are -----------------------------------------------------------------

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def admin_cert(self) -> Path:
        return self.pki_dir / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.pki_dir / "admin.key"

    @property
    def targets_file(self) -> Path:
        """Prometheus ``file_sd`` file of job ``testenv``; write it with set_scrape_targets."""
        return self.state_dir / "prometheus-targets.json"

    @property
    def pod_targets_file(self) -> Path:
        """Prometheus ``file_sd`` file of job ``pods`` (the pod runner's consumer processes)."""
        return self.state_dir / "pods-targets.json"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['kube-apiserver']}"

    @property
    def etcd_url(self) -> str:
        """etcd's client URL (plain HTTP on loopback; its /v3 JSON gateway works too)."""
        return f"http://127.0.0.1:{self.ports['etcd']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def kafka_bootstrap(self) -> str:
        """``host:port`` of the Kafka broker (running only after ``start_kafka``)."""
        return f"127.0.0.1:{self.ports['kafka']}"

    @property
    def kafka_exporter_target(self) -> str:
        return f"127.0.0.1:{self.ports['kafka-exporter']}"

    def env(self) -> dict[str, str]:
        """Variables a shell or a subprocess needs to use this cluster."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "PROMETHEUS_URL": self.prometheus_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "KONSUMERATOR_TESTENV_CLUSTER": self.name,
            "KONSUMERATOR_TESTENV_TARGETS": str(self.targets_file),
            "KONSUMERATOR_TESTENV_BIN": str(self.bin_dir),
        }

    @classmethod
    def load(cls, name: str = DEFAULT_NAME) -> Cluster:
        """The cluster recorded under ``name`` (running or not); TestenvError if there is none."""
        state = disk.read(cluster_dir(name))
        if state is None:
            raise TestenvError(
                f"no cluster {name!r} (no state in {cluster_dir(name)}); "
                "start one with `konsumerator-dev testenv up`"
            )
        return cls._from_state(state)

    @classmethod
    def _from_state(cls, state: Mapping[str, Any]) -> Cluster:
        return cls(
            name=str(state["name"]),
            state_dir=Path(state["state_dir"]),
            bin_dir=Path(state["bin_dir"]),
            ports={str(k): int(v) for k, v in state["ports"].items()},
        )

    # -- processes ------------------------------------------------------------------------

    def processes(self) -> dict[str, Proc]:
        state = disk.read(self.state_dir) or {}
        return {n: Proc.from_json(p) for n, p in state.get("processes", {}).items()}

    def memory_kib(self) -> dict[str, tuple[int, int]]:
        """Per component (current RSS, peak RSS) in KiB."""
        return {n: p.rss_kib() for n, p in self.processes().items()}

    # -- talking to the apiserver ---------------------------------------------------------

    @cached_property
    def admin_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.admin_cert), str(self.admin_key))
        return ctx

    @cached_property
    def _anonymous_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(
        self,
        method: str,
        path: str,
        body: object | None = None,
        *,
        token: str | None = None,
        content_type: str | None = None,
        timeout: float = 30.0,
    ) -> ApiResponse:
        """One apiserver call as admin, or with a bearer ``token``; never raises on HTTP status.

        ``body`` may be bytes/str (sent as is) or any JSON-serialisable object. PATCH defaults
        to a JSON merge patch.
        """
        data: bytes | None
        if body is None:
            data = None
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
        headers = {"Accept": "application/json, */*"}
        if data is not None:
            default = "application/merge-patch+json" if method == "PATCH" else "application/json"
            headers["Content-Type"] = content_type or default
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.api_url + path, data=data, headers=headers, method=method)
        ctx = self._anonymous_ssl if token is not None else self.admin_ssl
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                return ApiResponse(resp.status, resp.read())
        except urllib.error.HTTPError as err:
            return ApiResponse(err.code, err.read())

    def api(self, method: str, path: str, body: object | None = None) -> Any:
        """Like request(), as admin, but returns the decoded JSON and raises on non-2xx."""
        resp = self.request(method, path, body)
        if not resp.ok:
            raise TestenvError(f"{method} {path} -> HTTP {resp.status}: {resp.text[:2000]}")
        return resp.json() if resp.body else None

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the version-matched kubectl against this cluster (as admin)."""
        argv = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise TestenvError(
                f"kubectl {' '.join(args)} failed (exit {result.returncode}):\n"
                f"{result.stderr.strip()}\n{result.stdout.strip()}".rstrip()
            )
        return result

    def apply(self, manifest: str | Mapping[str, Any], namespace: str | None = None) -> str:
        """``kubectl apply`` a YAML string or one object; returns kubectl's output."""
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(dict(manifest))
        extra = ["--namespace", namespace] if namespace else []
        return self.kubectl("apply", *extra, "-f", "-", input=text).stdout

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> str:
        meta: dict[str, Any] = {"name": name, "labels": dict(labels or {})}
        self.api(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": meta},
        )
        return name

    def delete_namespace(self, name: str, *, wait: bool = False, timeout: float = 60.0) -> None:
        """Delete a namespace (kcm's namespace controller and KWOK finish the job)."""
        resp = self.request("DELETE", f"/api/v1/namespaces/{name}")
        if resp.status not in (200, 202, 404):
            raise TestenvError(f"deleting namespace {name} -> HTTP {resp.status}: {resp.text}")
        if wait:
            process.wait_until(
                lambda: self.request("GET", f"/api/v1/namespaces/{name}").status == 404,
                timeout=timeout,
                what=f"namespace {name} to be deleted",
            )

    def service_account_token(
        self,
        namespace: str,
        name: str,
        *,
        create: bool = True,
        expiration_seconds: int = 3600,
        audiences: Sequence[str] = (),
    ) -> str:
        """A bearer token for ServiceAccount ``namespace/name`` via the TokenRequest API.

        Creates the ServiceAccount first unless ``create`` is false. The token carries only the
        RBAC permissions bound to that account.
        """
        base = f"/api/v1/namespaces/{namespace}/serviceaccounts"
        if create:
            resp = self.request(
                "POST",
                base,
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
            )
            if resp.status not in (201, 409):
                raise TestenvError(f"creating ServiceAccount {namespace}/{name}: {resp.text}")
        spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
        if audiences:
            spec["audiences"] = list(audiences)
        answer = self.api(
            "POST",
            f"{base}/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        return str(answer["status"]["token"])

    def apiserver_metrics(self) -> str:
        """The apiserver's own /metrics text (Prometheus exposition format)."""
        resp = self.request("GET", "/metrics")
        if not resp.ok:
            raise TestenvError(f"GET /metrics -> HTTP {resp.status}: {resp.text[:500]}")
        return resp.text

    # -- Prometheus -----------------------------------------------------------------------

    def set_scrape_targets(
        self, targets: Sequence[str], labels: Mapping[str, str] | None = None
    ) -> None:
        """Replace what Prometheus scrapes (``host:port`` of /metrics endpoints), atomically.

        Prometheus re-reads the file within about a second; series appear after the next
        scrape (1 s). ``labels`` are added to every target (``job`` may be overridden too;
        it defaults to ``testenv``).
        """
        groups = [{"targets": list(targets), "labels": dict(labels or {})}] if targets else []
        tmp = self.targets_file.with_name(self.targets_file.name + ".tmp")
        tmp.write_text(json.dumps(groups, indent=2) + "\n")
        tmp.replace(self.targets_file)

    def set_pod_targets(self, targets: Mapping[str, Mapping[str, str]]) -> None:
        """Replace job ``pods``' targets: ``host:port`` -> labels (the pod runner's)."""
        groups = [{"targets": [t], "labels": dict(labels)} for t, labels in targets.items()]
        tmp = self.pod_targets_file.with_name(self.pod_targets_file.name + ".tmp")
        tmp.write_text(json.dumps(groups, indent=2) + "\n")
        tmp.replace(self.pod_targets_file)

    # -- Kafka ----------------------------------------------------------------------------

    def kafka_running(self) -> bool:
        procs = self.processes()
        return all(n in procs and procs[n].alive() for n in KAFKA_COMPONENTS)

    def prometheus_running(self) -> bool:
        proc = self.processes().get("prometheus")
        return proc is not None and proc.alive()

    def prometheus_query(self, promql: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Instant query; returns ``data.result`` (for a vector: [{metric, value}, ...])."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            answer = json.load(resp)
        if answer.get("status") != "success":
            raise TestenvError(f"Prometheus query {promql!r} failed: {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result
