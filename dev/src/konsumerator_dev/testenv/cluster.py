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
* Optionally (``up(with_kafka=True)``, :meth:`Cluster.start_kafka`) a real Kafka broker
  (:mod:`~konsumerator_dev.testenv.kafka`) and the lag exporter Prometheus scrapes as job
  ``kafka`` (:mod:`~konsumerator_dev.testenv.lagexporter`); job ``pods`` scrapes the consumer
  processes of a pod runner (:mod:`~konsumerator_dev.testenv.podrunner`).

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

import contextlib
import fcntl
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from konsumerator_dev.testenv import cpulimit, kafka, pki, process
from konsumerator_dev.testenv.build import (
    STAGES_FILE,
    built_bin_dir,
    prometheus_binary,
)
from konsumerator_dev.testenv.config import Versions, cluster_dir, clusters_root
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
_PORTS = (
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


def _silent(_: str) -> None:
    pass


def _say(line: str) -> None:
    print(line, flush=True)


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
        state = _read_state(cluster_dir(name))
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
        state = _read_state(self.state_dir) or {}
        return {n: Proc.from_json(p) for n, p in state.get("processes", {}).items()}

    def memory_kib(self) -> dict[str, tuple[int, int]]:
        """Per component (current RSS, peak RSS) in KiB."""
        return {n: p.rss_kib() for n, p in self.processes().items()}

    # -- talking to the apiserver ---------------------------------------------------------

    @cached_property
    def _admin_ssl(self) -> ssl.SSLContext:
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
        ctx = self._anonymous_ssl if token is not None else self._admin_ssl
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

    def start_kafka(self, timeout: float = 120.0) -> None:
        """Start the broker (fresh storage) and the lag exporter; no-op if both run."""
        with _lock(self.name):
            state = _read_state(self.state_dir)
            if state is None:
                raise TestenvError(f"cluster {self.name} has no state")
            if self.kafka_running():
                return
            _stop_kafka(state)
            _write_state(self.state_dir, state)
            _Starter(self, state, _silent, tie_to_parent=_is_owner(state)).kafka(timeout)

    def stop_kafka(self) -> None:
        """Stop the lag exporter and the broker (its data is formatted anew at the next start)."""
        with _lock(self.name):
            state = _read_state(self.state_dir)
            if state is None:
                raise TestenvError(f"cluster {self.name} has no state")
            _stop_kafka(state)
            _write_state(self.state_dir, state)

    def prometheus_running(self) -> bool:
        proc = self.processes().get("prometheus")
        return proc is not None and proc.alive()

    def stop_prometheus(self) -> None:
        """Stop Prometheus (to test the operator without metrics); data and port are kept."""
        with _lock(self.name):
            state = _read_state(self.state_dir)
            if state is None:
                raise TestenvError(f"cluster {self.name} has no state")
            record = state["processes"].pop("prometheus", None)
            if record is not None:
                process.stop(Proc.from_json(record))
            _write_state(self.state_dir, state)

    def start_prometheus(self, timeout: float = 60.0) -> None:
        """Start Prometheus again on the same port with the same data; no-op if running."""
        with _lock(self.name):
            state = _read_state(self.state_dir)
            if state is None:
                raise TestenvError(f"cluster {self.name} has no state")
            record = state["processes"].get("prometheus")
            if record is not None and Proc.from_json(record).alive():
                return
            _Starter(self, state, _silent, tie_to_parent=_is_owner(state)).prometheus(timeout)

    def prometheus_query(self, promql: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Instant query; returns ``data.result`` (for a vector: [{metric, value}, ...])."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            answer = json.load(resp)
        if answer.get("status") != "success":
            raise TestenvError(f"Prometheus query {promql!r} failed: {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


# -- state on disk ----------------------------------------------------------------------------


def _stop_kafka(state: dict[str, Any]) -> None:
    for name in reversed(KAFKA_COMPONENTS):
        record = state["processes"].pop(name, None)
        if record is not None:
            process.stop(Proc.from_json(record))


def _read_state(directory: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return data


def _write_state(directory: Path, state: Mapping[str, Any]) -> None:
    tmp = directory / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(directory / "state.json")


def _lock_file(name: str) -> Path:
    return clusters_root() / f".{name}.lock"


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """Serialise up/down/prometheus restarts of one cluster across processes."""
    path = _lock_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _http_ok(url: str, ctx: ssl.SSLContext | None = None, contains: str = "") -> bool:
    with urllib.request.urlopen(url, timeout=3, context=ctx) as resp:
        return bool(resp.status == 200 and contains in resp.read().decode(errors="replace"))


def _healthz(port: int, ctx: ssl.SSLContext) -> Callable[[], bool]:
    return lambda: _http_ok(f"https://127.0.0.1:{port}/healthz", ctx)


def _insecure() -> ssl.SSLContext:
    # kcm and the scheduler serve health checks with a self-signed certificate.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# -- starting ---------------------------------------------------------------------------------


class _Starter:
    """Starts components one by one, recording each pid in the state file as soon as it exists."""

    def __init__(
        self, cluster: Cluster, state: dict[str, Any], out: Printer, *, tie_to_parent: bool
    ) -> None:
        self.c = cluster
        self.state = state
        self.out = out
        self.tie = tie_to_parent
        self.started = time.monotonic()
        self.timings: dict[str, float] = state.setdefault("start_seconds", {})

    def watched(self) -> list[Proc]:
        return [Proc.from_json(p) for p in self.state["processes"].values()]

    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Proc:
        process.ensure_port_free(self.c.ports[name], name)
        proc = process.spawn(
            name, argv, self.c.logs_dir / f"{name}.log", env=env, tie_to_parent=self.tie
        )
        self.state["processes"][name] = proc.to_json()
        _write_state(self.c.state_dir, self.state)
        return proc

    def ready(self, name: str) -> None:
        elapsed = round(time.monotonic() - self.started, 1)
        self.timings[name] = elapsed
        _write_state(self.c.state_dir, self.state)
        self.out(f"  {name:<24} ready at {elapsed:5.1f}s")

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float) -> None:
        process.wait_until(predicate, timeout=timeout, what=what, watch=self.watched())

    def etcd(self) -> None:
        c, p = self.c, self.c.ports
        process.ensure_port_free(p["etcd-peer"], "etcd (peer port)")
        client = f"http://127.0.0.1:{p['etcd']}"
        peer = f"http://127.0.0.1:{p['etcd-peer']}"
        self.spawn(
            "etcd",
            [
                str(c.bin_dir / "etcd"),
                "--name=node0",
                f"--data-dir={c.state_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=node0={peer}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",
                "--auto-compaction-retention=1",
                "--quota-backend-bytes=2147483648",
                "--logger=zap",
                "--log-level=warn",
            ],
        )
        self.wait("etcd /health", lambda: _http_ok(f"{client}/health", contains="true"), 30)
        self.ready("etcd")

    def apiserver(self) -> None:
        c, p = self.c, self.c.ports
        self.spawn(
            "kube-apiserver",
            [
                str(c.bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={p['kube-apiserver']}",
                f"--cert-dir={c.state_dir / 'apiserver-certs'}",
                f"--tls-cert-file={c.pki_dir / 'apiserver.crt'}",
                f"--tls-private-key-file={c.pki_dir / 'apiserver.key'}",
                f"--client-ca-file={c.ca_file}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={c.pki_dir / 'sa.pub'}",
                f"--service-account-signing-key-file={c.pki_dir / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--authorization-mode=RBAC",
                # as envtest: pods in a fresh namespace must not race kcm creating "default" SA
                "--disable-admission-plugins=ServiceAccount",
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--profiling=false",
            ],
        )
        self.wait(
            "kube-apiserver /readyz",
            lambda: _http_ok(f"{c.api_url}/readyz", c._admin_ssl),
            120,
        )
        self.ready("kube-apiserver")

    def controllers(self) -> None:
        c, p = self.c, self.c.ports
        kc = str(c.kubeconfig)
        auth = [f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}"]
        self.spawn(
            "kube-controller-manager",
            [
                str(c.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kc}",
                *auth,
                "--bind-address=127.0.0.1",
                f"--secure-port={p['kube-controller-manager']}",
                f"--cert-dir={c.state_dir / 'kcm-certs'}",
                "--leader-elect=false",
                "--controllers=*",
                "--use-service-account-credentials=false",
                f"--root-ca-file={c.ca_file}",
                f"--service-account-private-key-file={c.pki_dir / 'sa.key'}",
                f"--cluster-signing-cert-file={c.ca_file}",
                f"--cluster-signing-key-file={c.pki_dir / 'ca.key'}",
                "--kube-api-qps=100",
                "--kube-api-burst=200",
                "--profiling=false",
            ],
        )
        scheduler_config = c.state_dir / "kube-scheduler.yaml"
        scheduler_config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {"kubeconfig": kc, "qps": 100, "burst": 200},
                    "leaderElection": {"leaderElect": False},
                }
            )
        )
        self.spawn(
            "kube-scheduler",
            [
                str(c.bin_dir / "kube-scheduler"),
                f"--config={scheduler_config}",
                *auth,
                "--bind-address=127.0.0.1",
                f"--secure-port={p['kube-scheduler']}",
                f"--cert-dir={c.state_dir / 'scheduler-certs'}",
                "--profiling=false",
            ],
        )
        kwok_home = c.state_dir / "kwok"
        kwok_home.mkdir(exist_ok=True)
        self.spawn(
            "kwok",
            [
                str(c.bin_dir / "kwok"),
                f"--kubeconfig={kc}",
                f"--config={c.bin_dir / STAGES_FILE}",
                "--manage-all-nodes=true",
                "--node-lease-duration-seconds=40",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.240.0.10",
                f"--node-port={p['kwok']}",
                f"--server-address=127.0.0.1:{p['kwok']}",
            ],
            env={"KWOK_WORKDIR": str(kwok_home)},
        )
        insecure = _insecure()
        for name in ("kube-controller-manager", "kube-scheduler"):
            self.wait(f"{name} /healthz", _healthz(p[name], insecure), 60)
            self.ready(name)
        self.wait("kwok /healthz", lambda: _http_ok(f"http://127.0.0.1:{p['kwok']}/healthz"), 60)
        self.ready("kwok")

    def node(self) -> None:
        c = self.c
        c.api(
            "POST",
            "/api/v1/nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": NODE_NAME,
                    "annotations": {
                        "node.alpha.kubernetes.io/ttl": "0",
                        "kwok.x-k8s.io/node": "fake",
                    },
                    "labels": {
                        "kubernetes.io/hostname": NODE_NAME,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                    },
                },
                "status": {
                    "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "500"},
                    "capacity": {"cpu": "32", "memory": "256Gi", "pods": "500"},
                },
            },
        )

        def schedulable() -> bool:
            node = c.api("GET", f"/api/v1/nodes/{NODE_NAME}")
            conditions = node.get("status", {}).get("conditions", [])
            ready = any(x["type"] == "Ready" and x["status"] == "True" for x in conditions)
            # TaintNodesByCondition adds not-ready at creation; kcm lifts it once Ready.
            return ready and not node.get("spec", {}).get("taints")

        self.wait(f"node {NODE_NAME} Ready and untainted", schedulable, 90)
        self.ready(f"node/{NODE_NAME}")

    def prometheus(self, timeout: float = 60.0) -> None:
        c = self.c
        config = c.state_dir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": SCRAPE_INTERVAL,
                        "scrape_timeout": SCRAPE_INTERVAL,
                        "evaluation_interval": SCRAPE_INTERVAL,
                    },
                    "scrape_configs": [
                        {
                            "job_name": SCRAPE_JOB,
                            "file_sd_configs": [
                                {"files": [str(c.targets_file)], "refresh_interval": "1s"}
                            ],
                        },
                        {
                            "job_name": KAFKA_JOB,
                            "static_configs": [{"targets": [c.kafka_exporter_target]}],
                        },
                        {
                            "job_name": PODS_JOB,
                            "file_sd_configs": [
                                {"files": [str(c.pod_targets_file)], "refresh_interval": "1s"}
                            ],
                        },
                    ],
                },
                sort_keys=False,
            )
        )
        if not c.targets_file.exists():
            c.set_scrape_targets([])
        if not c.pod_targets_file.exists():
            c.set_pod_targets({})
        self.spawn(
            "prometheus",
            [
                str(prometheus_binary()),
                f"--config.file={config}",
                f"--storage.tsdb.path={c.state_dir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{c.ports['prometheus']}",
                "--web.enable-lifecycle",
                "--web.enable-admin-api",
                "--log.level=warn",
            ],
        )
        self.wait("prometheus /-/ready", lambda: _http_ok(f"{c.prometheus_url}/-/ready"), timeout)
        self.ready("prometheus")

    def kafka(self, timeout: float = 120.0) -> None:
        c, p = self.c, self.c.ports
        process.ensure_port_free(p["kafka-controller"], "kafka (controller port)")
        config, log4j = kafka.prepare(
            state_dir=c.state_dir, broker_port=p["kafka"], controller_port=p["kafka-controller"]
        )
        self.spawn("kafka", kafka.broker_argv(config=config, log4j=log4j))
        log = c.logs_dir / "kafka.log"
        self.wait("kafka broker start", lambda: kafka.STARTED_LINE in log.read_text(), timeout)
        self.wait(
            "kafka broker metadata and group coordinator", _kafka_ready(c.kafka_bootstrap), 60
        )
        self.ready("kafka")
        self.spawn(
            "kafka-exporter",
            [
                sys.executable,
                "-m",
                "konsumerator_dev.testenv.lagexporter",
                f"--bootstrap-server={c.kafka_bootstrap}",
                f"--port={p['kafka-exporter']}",
                "--interval=1",
            ],
        )
        self.wait(
            "lag exporter /metrics",
            lambda: _http_ok(
                f"http://{c.kafka_exporter_target}/metrics",
                contains="konsumerator_lag_exporter_up 1",
            ),
            60,
        )
        self.ready("kafka-exporter")

    def all(self, *, with_kafka: bool = False) -> None:
        self.etcd()
        self.apiserver()
        self.controllers()
        self.node()
        self.prometheus()
        if with_kafka:
            self.kafka()


def _kafka_ready(bootstrap: str) -> Callable[[], bool]:
    """A probe: the broker lists itself, and its group coordinator has loaded its offsets.

    For a few seconds after the start the coordinator answers COORDINATOR_LOAD_IN_PROGRESS,
    and librdkafka's AdminClient (2.16) can crash the process on that answer to
    ``list_consumer_group_offsets``; a Consumer's ``committed()`` waits it out instead. With
    one ``__consumer_offsets`` partition, loaded for one group means loaded for all. One
    client per kind for all attempts: each keeps reconnecting until it is collected.
    """
    from confluent_kafka import Consumer, TopicPartition  # the Kafka tier's client
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    probe_group = "konsumerator-testenv-ready"
    consumer: list[Consumer] = []

    def probe() -> bool:
        if len(admin.list_topics(timeout=2).brokers) != 1:
            return False
        if not consumer:
            consumer.append(
                Consumer(
                    {
                        "bootstrap.servers": bootstrap,
                        "group.id": probe_group,
                        "enable.auto.commit": False,
                        "log_level": 3,
                    }
                )
            )
        consumer[0].committed([TopicPartition(probe_group, 0)], timeout=5)
        consumer.pop().close()
        return True

    return probe


def _owner_alive(owner: Mapping[str, Any] | None) -> bool:
    if not owner:
        return True  # a dev cluster has no owner process: it lives until `down`
    return Proc("owner", int(owner["pid"]), int(owner["start_ticks"]), "").alive()


def _is_owner(state: Mapping[str, Any]) -> bool:
    """Processes are tied to the owner (pytest) only when the owner itself starts them."""
    owner = state.get("owner")
    return owner is not None and int(owner["pid"]) == os.getpid()


def _stop_all(state: Mapping[str, Any]) -> None:
    procs = {n: Proc.from_json(p) for n, p in state.get("processes", {}).items()}
    for name in reversed(COMPONENTS):
        if name in procs:
            process.stop(procs[name])


def up(
    name: str = DEFAULT_NAME,
    *,
    owned: bool = False,
    with_kafka: bool = False,
    out: Printer = _say,
) -> Cluster:
    """Start cluster ``name``, or reuse it if it is already running and healthy.

    ``owned=True`` (the pytest session) ties every process to the calling process: they die
    with it, and a later ``reap_orphans`` removes what is left of its state. ``with_kafka``
    also starts (or, on reuse, restarts if needed) the Kafka broker and the lag exporter.
    """
    bins = built_bin_dir(Versions.from_env())
    prometheus_binary()
    directory = cluster_dir(name)
    with _lock(name):
        state = _read_state(directory)
        if state is not None:
            reused = _try_reuse(state, bins, out)
            if reused is not None:
                if with_kafka and not reused.kafka_running():
                    out("starting kafka in the running cluster")
                    _stop_kafka(state)
                    _Starter(reused, state, out, tie_to_parent=_is_owner(state)).kafka()
                return reused
            _stop_all(state)
        if directory.exists():
            shutil.rmtree(directory)
        (directory / "logs").mkdir(parents=True)
        cluster = Cluster(
            name=name,
            state_dir=directory,
            bin_dir=bins,
            ports=process.free_ports(_PORTS),
        )
        owner = None
        if owned:
            owner = {"pid": os.getpid(), "start_ticks": process.start_ticks(os.getpid()) or 0}
        state = {
            "name": name,
            "state_dir": str(directory),
            "bin_dir": str(bins),
            "ports": dict(cluster.ports),
            "owner": owner,
            "processes": {},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _write_state(directory, state)
        out(f"starting cluster {name!r} in {directory}")
        pki.generate(cluster.pki_dir)
        pki.write_kubeconfig(
            cluster.kubeconfig,
            server=cluster.api_url,
            pki=cluster.pki_dir,
            cluster=f"testenv-{name}",
        )
        starter = _Starter(cluster, state, out, tie_to_parent=owned)
        try:
            starter.all(with_kafka=with_kafka)
        except BaseException:
            _stop_all(state)
            state["failed"] = True
            _write_state(directory, state)
            out(f"cluster {name!r} failed to start; its logs are in {cluster.logs_dir}")
            raise
        state["start_seconds"]["total"] = round(time.monotonic() - starter.started, 1)
        _write_state(directory, state)
        return cluster


def _try_reuse(state: dict[str, Any], bins: Path, out: Printer) -> Cluster | None:
    cluster = Cluster._from_state(state)
    procs = cluster.processes()
    core = CORE
    if not set(_PORTS) <= set(cluster.ports):
        out(f"cluster {cluster.name!r} was started by an older version; recreating it")
        return None
    if Path(state["bin_dir"]) != bins:
        out(f"cluster {cluster.name!r} was started with other binaries; recreating it")
        return None
    if state.get("failed") or not all(n in procs and procs[n].alive() for n in core):
        dead = [n for n in core if n not in procs or not procs[n].alive()]
        if dead:
            out(f"cluster {cluster.name!r} is broken ({', '.join(dead)} not running); recreating")
        return None
    try:
        healthy = _http_ok(f"{cluster.api_url}/readyz", cluster._admin_ssl)
    except (OSError, ssl.SSLError) as exc:
        healthy = False
        out(f"cluster {cluster.name!r}: apiserver does not answer ({exc})")
    if not healthy:
        out(f"cluster {cluster.name!r} apiserver is not ready; recreating")
        return None
    if "prometheus" not in procs or not procs["prometheus"].alive():
        out("prometheus was stopped; starting it again")
        _Starter(cluster, state, out, tie_to_parent=_is_owner(state)).prometheus()
    out(f"cluster {cluster.name!r} is already running; reusing it")
    return cluster


def down(name: str = DEFAULT_NAME, *, out: Printer = _say) -> bool:
    """Stop exactly the processes recorded for ``name`` and delete its state. False if none."""
    directory = cluster_dir(name)
    with _lock(name):
        state = _read_state(directory)
        if state is None and not directory.exists():
            out(f"no cluster {name!r}")
            return False
        if state is not None:
            procs = {n: Proc.from_json(p) for n, p in state.get("processes", {}).items()}
            for component in reversed(COMPONENTS):
                proc = procs.get(component)
                if proc is not None and proc.alive():
                    out(f"  stopping {component} (pid {proc.pid})")
                    process.stop(proc)
        # consumer processes a pod runner of this cluster left behind (it was killed)
        for pid in cpulimit.reap(name):
            out(f"  stopped a pod runner's consumer (pid {pid})")
        shutil.rmtree(directory, ignore_errors=True)
        if state is not None and state.get("owner"):
            # A per-run (pytest-<pid>) name is never used again: drop its lock file too.
            _lock_file(name).unlink(missing_ok=True)
        out(f"cluster {name!r} stopped and its state removed")
        return True


def list_clusters() -> list[str]:
    root = clusters_root()
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if (d / "state.json").is_file())


def running_owner(name: str) -> int | None:
    """Pid of the live process that owns cluster ``name`` (a pytest session), else None."""
    state = _read_state(cluster_dir(name))
    owner = state.get("owner") if state else None
    if owner and _owner_alive(owner):
        return int(owner["pid"])
    return None


def reap_orphans(out: Printer = _silent) -> list[str]:
    """Tear down clusters whose owning process (a killed pytest run) no longer exists."""
    reaped = []
    for name in list_clusters():
        state = _read_state(cluster_dir(name))
        if state is not None and not _owner_alive(state.get("owner")):
            down(name, out=out)
            reaped.append(name)
    return reaped
