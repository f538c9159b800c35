"""Shared helpers of the operator tests: install the CRD, run the operator, build and read
Consumers, poll with deadlines.

* :func:`install_crd` applies ``konsumerator crd`` with the cluster's kubectl (once per
  session, again if the CRD was removed) and waits until it is Established.
* :class:`InProcessOperator` runs ``app.build(Settings(...)).run()`` on an asyncio loop in a
  background thread: the test reads its request counters (``ApiClient.counts``), its
  ``/metrics`` and can enqueue a key, and stops it cleanly with ``manager.stop()``.
* :class:`OperatorProcess` runs ``python -m konsumerator run`` as a subprocess (for what
  needs real processes: leader election and failover, SIGKILL), logs to a file; always
  stopped by pid; :func:`operator_process` prints the log when the block fails.
* :func:`consumer` builds a small Consumer manifest with short timings.
* :func:`guest_kubeconfig` gives a token bound to exactly the shipped guest-mode Role.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from konsumerator import app
from konsumerator.domain import keys
from konsumerator.runtime.stores import ObjectKey
from konsumerator_dev.paths import REPO
from konsumerator_dev.testenv import Cluster, wait_until

T = TypeVar("T")

MANAGED_SELECTOR = f"{keys.LABEL_MANAGED_BY}={keys.MANAGED_BY_VALUE}"
WRITE_VERBS = frozenset({"apply", "patch", "create", "update", "delete"})

_installed: set[str] = set()


# -- polling ----------------------------------------------------------------------------------


def eventually(
    produce: Callable[[], T],
    check: Callable[[T], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> T:
    """Poll ``produce()`` until ``check`` holds on its value, and return that value."""
    found: list[T] = []

    def ok() -> bool:
        value = produce()
        if check(value):
            found.append(value)
            return True
        return False

    wait_until(ok, timeout=timeout, what=what, interval=interval)
    return found[0]


# -- CRD --------------------------------------------------------------------------------------


def crd_text() -> str:
    return subprocess.run(
        [sys.executable, "-m", "konsumerator", "crd"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def _crd_established(cluster: Cluster) -> bool:
    response = cluster.request(
        "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{keys.PLURAL}.{keys.GROUP}"
    )
    if not response.ok:
        return False
    crd = response.json()
    applied = cluster.name in _installed and crd["metadata"].get("deletionTimestamp") is None
    conditions = {c["type"]: c["status"] for c in crd.get("status", {}).get("conditions", [])}
    return applied and conditions.get("Established") == "True"


def install_crd(cluster: Cluster) -> None:
    """``konsumerator crd | kubectl apply --server-side -f -``, unless this session already
    did and the CRD is still there (another test may have removed it)."""
    if _crd_established(cluster):
        return
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=crd_text())
    _installed.add(cluster.name)
    # Polled, not ``kubectl wait``: that fails outright ("accessor error: <nil>") when it
    # reads the CRD before the apiserver has given it any condition.
    try:
        wait_until(lambda: _crd_established(cluster), timeout=60, what="the CRD to be Established")
    except BaseException:
        _installed.discard(cluster.name)
        raise


# -- running the operator ---------------------------------------------------------------------


class InProcessOperator:
    """The operator of ``app.build`` on its own event loop in a daemon thread."""

    def __init__(self, settings: app.Settings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._built = threading.Event()
        self._operator: app.Operator | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="operator", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._run())
        except BaseException as exc:
            self.error = exc
        finally:
            self._built.set()
            self._loop.close()

    async def _run(self) -> None:
        self._operator = app.build(self.settings)
        self._built.set()
        await self._operator.run()

    @property
    def operator(self) -> app.Operator:
        assert self._operator is not None, "operator not started"
        return self._operator

    def start(self, *, timeout: float = 30.0) -> InProcessOperator:
        self._thread.start()
        if not self._built.wait(timeout):
            raise TimeoutError("the operator was not built in time")
        self.raise_if_dead()
        wait_until(
            lambda: self.operator.manager.leading.is_set() or not self._thread.is_alive(),
            timeout=timeout,
            what="the in-process operator to sync its caches and start its controllers",
        )
        self.raise_if_dead()
        return self

    def raise_if_dead(self) -> None:
        if not self._thread.is_alive() and self.error is not None:
            raise RuntimeError(f"in-process operator ended: {self.error!r}") from self.error

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def counts(self) -> dict[str, int]:
        """Requests made so far by verb (a copy, taken on the operator's loop)."""
        return self.call(self.operator.client.counts.snapshot)

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``fn`` on the operator's loop and return its result; once the operator
        has ended (a lost leadership ends it) its loop is closed and nothing moves its
        objects any more, so ``fn`` reads them here."""

        async def run() -> T:
            return fn()

        coroutine = run()
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        except RuntimeError:
            coroutine.close()
            if not self._loop.is_closed():
                raise
            self._thread.join(timeout)
            return fn()
        return future.result(timeout)

    def enqueue(self, namespace: str, name: str) -> None:
        """Ask the (only) controller for a reconcile of ``namespace/name``."""
        controllers = self.operator.manager._controllers
        assert len(controllers) == 1
        self.call(lambda: controllers[0].enqueue(ObjectKey(namespace, name)))

    def metrics(self) -> str:
        """The operator's own ``/metrics`` text (needs ``metrics_bind``)."""
        ports = self.operator.manager.server_ports
        assert ports, "metrics_bind was not set"
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[-1]}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def stop(self, timeout: float = 40.0) -> None:
        if self._thread.is_alive() and self._operator is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._operator.manager.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the in-process operator did not stop in time")
        if self._operator is not None:
            # A plan still running in the planner's thread (a huge Consumer's takes tens
            # of seconds) would otherwise go on beside the next test's operator.
            self._operator.planner.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def in_process_operator(
    cluster: Cluster, *, kubeconfig: str | Path | None = None, **settings: Any
) -> Iterator[InProcessOperator]:
    """An in-process operator for the block; stopped (and its failure re-raised) after it."""
    runner = InProcessOperator(
        app.Settings(kubeconfig=str(kubeconfig or cluster.kubeconfig), **settings)
    )
    runner.start()
    try:
        yield runner
        runner.raise_if_dead()
    finally:
        runner.stop()


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` (exact) whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric != name:
            continue
        found = {
            k: v.strip('"')
            for k, _, v in (p.partition("=") for p in rest.rstrip("}").split(",") if p)
        }
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


class OperatorProcess:
    """``python -m konsumerator run`` in a subprocess, logging to a file."""

    def __init__(
        self,
        cluster: Cluster,
        *extra: str,
        log_dir: Path,
        name: str = "operator",
        kubeconfig: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        argv = [
            sys.executable,
            "-m",
            "konsumerator",
            "run",
            "--kubeconfig",
            str(kubeconfig or cluster.kubeconfig),
            "--log-format",
            "console",
            "--metrics-bind-address",
            "0",
            "--health-probe-bind-address",
            "0",
            *extra,
        ]
        environment = {**os.environ, **(env or {}), "POD_NAME": name}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=environment, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, by pid: no lease release, no goodbye."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM (graceful: the lease is released), SIGKILL if it does not exit in time."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(10)


@contextlib.contextmanager
def operator_processes(
    cluster: Cluster, *argvs: Sequence[str], kubeconfig: str | Path | None = None
) -> Iterator[list[OperatorProcess]]:
    """Operator subprocesses (one per argv tail); logs printed if the block fails."""
    with tempfile.TemporaryDirectory(prefix="konsumerator-op-") as tmp:
        procs: list[OperatorProcess] = []
        try:
            for i, extra in enumerate(argvs):
                procs.append(
                    OperatorProcess(
                        cluster, *extra, log_dir=Path(tmp), name=f"op-{i}", kubeconfig=kubeconfig
                    )
                )
            yield procs
        except BaseException:
            for p in procs:
                print(f"----- log of {p.name} (pid {p.pid}) -----\n{p.log_text()[-20000:]}")
            raise
        finally:
            for p in procs:
                p.stop()


@contextlib.contextmanager
def operator_process(
    cluster: Cluster, *extra: str, kubeconfig: str | Path | None = None
) -> Iterator[OperatorProcess]:
    with operator_processes(cluster, extra, kubeconfig=kubeconfig) as procs:
        yield procs[0]


# -- manifests --------------------------------------------------------------------------------


def queries(*, topic: str, group: str) -> dict[str, dict[str, str]]:
    """kafka_exporter-style queries for one topic and consumer group."""
    lag = f'kafka_consumergroup_lag{{consumergroup="{group}"}}'
    produced = f'kafka_topic_partition_current_offset{{topic="{topic}"}}'
    consumed = f'kafka_consumergroup_current_offset{{consumergroup="{group}"}}'
    return {
        "offset": {"query": f"sum by (partition) ({lag})", "partitionLabel": "partition"},
        "production": {
            "query": f"sum by (partition) (rate({produced}[5s]))",
            "partitionLabel": "partition",
        },
        "consumption": {
            "query": f"sum by (partition) (rate({consumed}[5s]))",
            "partitionLabel": "partition",
        },
    }


def consumer(
    name: str,
    namespace: str,
    *,
    num_partitions: int = 4,
    per_instance: int = 2,
    prometheus_url: str | None = None,
    mode: str | None = None,
    topic: str | None = None,
    image: str = "registry.invalid/consumer:1",
    pending_up: str = "4s",
    pending_down: str = "1h",
    min_cpu: str = "100m",
    max_cpu: str = "4",
    min_memory: str = "128Mi",
    max_memory: str = "1Gi",
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Consumer with short timings; Deployments are named ``{name}-consumer-{i}``."""
    base = f"{name}-consumer"
    autoscaler: dict[str, Any] = {
        "mode": mode or ("prometheus" if prometheus_url else "manual"),
        "pendingScaleUpDuration": pending_up,
        "pendingScaleDownDuration": pending_down,
    }
    if prometheus_url:
        # The tests of this package assert the naive predictor's sizing (ratePerCore
        # arithmetic); the adaptive one, the default, is tested where it is asked for.
        autoscaler["predictor"] = "naive"
        autoscaler["prometheus"] = {
            "address": [prometheus_url],
            "minSyncPeriod": "2s",
            "tolerableLag": "10s",
            "criticalLag": "1h",
            "recoveryTime": "60s",
            "ratePerCore": 1000,
            "ramPerCore": "256Mi",
            "cpuIncrement": "100m",
            "fallbackStrategy": "min",
            **queries(topic=topic or name, group=topic or name),
        }
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": keys.API_VERSION,
        "kind": keys.KIND,
        "metadata": metadata,
        "spec": {
            "numPartitions": num_partitions,
            "numPartitionsPerInstance": per_instance,
            "name": base,
            "namespace": namespace,
            "autoscaler": autoscaler,
            "deploymentTemplate": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": base}},
                "template": {
                    "metadata": {"labels": {"app": base}},
                    "spec": {
                        "containers": [
                            {
                                "name": "consumer",
                                "image": image,
                                "env": [{"name": "KAFKA_BROKERS", "value": "kafka:9092"}],
                            }
                        ]
                    },
                },
            },
            "resourcePolicy": {
                "containerPolicies": [
                    {
                        "containerName": "consumer",
                        "minAllowed": {"cpu": min_cpu, "memory": min_memory},
                        "maxAllowed": {"cpu": max_cpu, "memory": max_memory},
                    }
                ]
            },
        },
    }


def consumer_spec(name: str, namespace: str, **kw: Any) -> dict[str, Any]:
    """``consumer``'s spec alone: what a guest ConfigMap carries (``guest_configmap``)."""
    spec: dict[str, Any] = consumer(name, namespace, **kw)["spec"]
    return spec


def guest_configmap(name: str, namespace: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A guest-mode ConfigMap carrying ``spec`` as ``consumer.yaml``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {keys.MANAGED: "true"},
        },
        "data": {keys.GUEST_SPEC_KEY: yaml.safe_dump(copy.deepcopy(dict(spec)))},
    }


# -- reading ----------------------------------------------------------------------------------


def consumer_path(namespace: str, name: str = "") -> str:
    base = f"/apis/{keys.API_VERSION}/namespaces/{namespace}/{keys.PLURAL}"
    return f"{base}/{name}" if name else base


def get_consumer(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = cluster.api("GET", consumer_path(namespace, name))
    return obj


def configmap_annotations(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    """A ConfigMap's annotations as the apiserver holds them (a guest's status is there)."""
    cm = cluster.api("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    found: dict[str, str] = cm["metadata"].get("annotations", {})
    return found


def deployments(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    """Every Deployment of the namespace, by name."""
    items = cluster.api("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments")["items"]
    return {d["metadata"]["name"]: d for d in items}


def managed(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    return {
        n: d
        for n, d in deployments(cluster, namespace).items()
        if d["metadata"].get("labels", {}).get(keys.LABEL_MANAGED_BY) == keys.MANAGED_BY_VALUE
    }


def condition(obj: Mapping[str, Any], type: str) -> dict[str, Any]:
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == type:
            found: dict[str, Any] = c
            return found
    return {}


def container(deployment: Mapping[str, Any], name: str = "consumer") -> dict[str, Any]:
    for c in deployment["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            found: dict[str, Any] = c
            return found
    raise KeyError(name)


def env(deployment: Mapping[str, Any], name: str = "consumer") -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(deployment, name).get("env", [])}


def events(cluster: Cluster, namespace: str, *, involved: str = "") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.api("GET", f"/api/v1/namespaces/{namespace}/events")[
        "items"
    ]
    return [e for e in items if not involved or e["involvedObject"]["name"] == involved]


def converged(obj: Mapping[str, Any], expected: int) -> bool:
    """Status describes the current generation: every instance exists and is up to date."""
    status = obj.get("status") or {}
    return (
        status.get("observedGeneration") == obj["metadata"]["generation"]
        and status.get("expected") == expected
        and status.get("missing") == 0
        and status.get("outdated") == 0
        and condition(obj, "Ready").get("status") == "True"
    )


class KubectlWatch:
    """``kubectl get -w`` in the background: every line it prints, as it prints them.

    For states that last one reconcile pass (OUTDATED before the rollout of the same pass is
    reported): a poll could miss them, a watch sees every written version.
    """

    def __init__(self, cluster: Cluster, *args: str) -> None:
        argv = [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}"]
        self.proc = subprocess.Popen(
            [*argv, "get", "--watch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # kubectl prints the current object first, then watches from its resourceVersion:
        # once that line is here, no later version can be missed.
        wait_until(
            lambda: bool(self.lines) or self.proc.poll() is not None,
            timeout=30,
            what=f"kubectl get --watch {' '.join(args)} to print the current object",
            interval=0.05,
        )
        if not self.lines:
            raise RuntimeError(f"kubectl get --watch {' '.join(args)} exited early")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, check: Callable[[list[str]], bool], *, timeout: float, what: str) -> None:
        """Until ``check(lines so far)`` holds (a GET may be ahead of the watch)."""
        wait_until(lambda: check(list(self.lines)), timeout=timeout, what=what, interval=0.05)

    def stop(self) -> list[str]:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)
        self._reader.join(10)
        return list(self.lines)

    def __enter__(self) -> KubectlWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def alone(cluster: Cluster, namespace: str, *, timeout: float = 120) -> None:
    """Wait until the namespaces of earlier tests are gone.

    The in-process operator is cluster-wide: a Consumer left in a namespace still being torn
    down is reconciled too, and its requests (or kube-controller-manager's deletes) would add
    to a test's counts of writes or passes."""

    def others() -> list[str]:
        items = cluster.api("GET", "/api/v1/namespaces?labelSelector=konsumerator.testenv/test")[
            "items"
        ]
        return [n["metadata"]["name"] for n in items if n["metadata"]["name"] != namespace]

    wait_until(lambda: not others(), timeout=timeout, what="the namespaces of earlier tests to go")


def deployments_refused(cluster: Cluster, namespace: str, *, what: str) -> None:
    """Wait until a dry-run Deployment create in ``namespace`` is refused (403): an
    admission policy or a quota takes effect some time after it is created."""
    probe = users_deployment(namespace, "probe", app="probe")
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments?dryRun=All"
    eventually(
        lambda: cluster.request("POST", path, probe).status,
        lambda status: status == 403,
        timeout=60,
        what=f"{what} to refuse Deployments",
    )


def users_deployment(namespace: str, name: str, *, app: str) -> dict[str, Any]:
    """A Deployment a user made by hand (no ownerReference, labels ``app: <app>``, replicas 0),
    for tests where such an object holds or wants a name the operator would use."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "annotations": {"owner": "a human"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "main", "image": "registry.invalid/mine:1"}]},
            },
        },
    }


def guest_kubeconfig(cluster: Cluster, namespace: str, path: Path) -> str:
    """Write a kubeconfig for a ServiceAccount bound to exactly the shipped guest-mode Role,
    in ``namespace`` only; return its token."""
    role = yaml.safe_load((REPO / "deploy" / "rbac" / "guest" / "role.yaml").read_text())
    role["metadata"] = {"name": "konsumerator", "namespace": namespace}
    cluster.apply(role)
    cluster.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "konsumerator", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "konsumerator",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": "konsumerator", "namespace": namespace}
            ],
        }
    )
    token = cluster.service_account_token(namespace, "konsumerator")
    config = {
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
        "users": [{"name": "konsumerator", "user": {"token": token}}],
        "contexts": [
            {
                "name": "guest",
                "context": {"cluster": "local", "user": "konsumerator", "namespace": namespace},
            }
        ],
        "current-context": "guest",
    }
    path.write_text(yaml.safe_dump(config))
    return token
