"""Starting a local cluster's components, in order, each one healthy before the next.

:class:`Launcher` spawns etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK
(and the fake node), Prometheus and optionally the Kafka broker and the lag exporter,
recording each pid in the state file the moment it exists (so a failed start still stops
everything), and waits on each component's own readiness probe. A component that exits
while starting fails the start with its log tail (``process.wait_until``).
"""

from __future__ import annotations

import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from konsumerator_dev.testenv import kafka, kwokstages, process
from konsumerator_dev.testenv import state as disk
from konsumerator_dev.testenv.build import STAGES_FILE, prometheus_binary
from konsumerator_dev.testenv.cluster import (
    KAFKA_JOB,
    NODE_NAME,
    PODS_JOB,
    SCRAPE_INTERVAL,
    SCRAPE_JOB,
    Cluster,
    Printer,
)
from konsumerator_dev.testenv.process import Proc


def http_ok(url: str, ctx: ssl.SSLContext | None = None, contains: str = "") -> bool:
    with urllib.request.urlopen(url, timeout=3, context=ctx) as resp:
        return bool(resp.status == 200 and contains in resp.read().decode(errors="replace"))


def healthz(port: int, ctx: ssl.SSLContext) -> Callable[[], bool]:
    return lambda: http_ok(f"https://127.0.0.1:{port}/healthz", ctx)


def insecure() -> ssl.SSLContext:
    # kcm and the scheduler serve health checks with a self-signed certificate.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Launcher:
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
        disk.write(self.c.state_dir, self.state)
        return proc

    def ready(self, name: str) -> None:
        elapsed = round(time.monotonic() - self.started, 1)
        self.timings[name] = elapsed
        disk.write(self.c.state_dir, self.state)
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
        self.wait("etcd /health", lambda: http_ok(f"{client}/health", contains="true"), 30)
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
            lambda: http_ok(f"{c.api_url}/readyz", c.admin_ssl),
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
                f"--config={self.stages()}",
                "--manage-all-nodes=true",
                "--node-lease-duration-seconds=40",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.240.0.10",
                f"--node-port={p['kwok']}",
                f"--server-address=127.0.0.1:{p['kwok']}",
            ],
            env={"KWOK_WORKDIR": str(kwok_home)},
        )
        unverified = insecure()
        for name in ("kube-controller-manager", "kube-scheduler"):
            self.wait(f"{name} /healthz", healthz(p[name], unverified), 60)
            self.ready(name)
        self.wait("kwok /healthz", lambda: http_ok(f"http://127.0.0.1:{p['kwok']}/healthz"), 60)
        self.ready("kwok")

    def stages(self) -> Path:
        """KWOK's stages for this cluster: upstream's, with the resize-aware pod stages."""
        path = self.c.state_dir / STAGES_FILE
        path.write_text(kwokstages.compose((self.c.bin_dir / STAGES_FILE).read_text()))
        return path

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
                    "allocatable": dict(kwokstages.NODE_ALLOCATABLE),
                    "capacity": dict(kwokstages.NODE_ALLOCATABLE),
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
        self.wait("prometheus /-/ready", lambda: http_ok(f"{c.prometheus_url}/-/ready"), timeout)
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
        self.wait("kafka broker metadata and group coordinator", kafka_ready(c.kafka_bootstrap), 60)
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
            lambda: http_ok(
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


def kafka_ready(bootstrap: str) -> Callable[[], bool]:
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
