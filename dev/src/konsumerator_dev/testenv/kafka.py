"""A real single-node Apache Kafka broker (KRaft, no ZooKeeper) for the test environment.

Why: the operator's queries are written against a lag exporter's metrics, and only a real
broker proves that a consumer given ``KONSUMERATOR_PARTITION`` drains a real backlog and that
lag read from Kafka rises and falls with the operator's changes.

* **Fetch** (:func:`fetch`): the broker is plain jars from Maven Central. The committed
  ``maven/pom.xml`` has ``maven-dependency-plugin`` copy them (with a log4j backend) into
  ``<cache>/kafka-<version>/lib``, outside the repository, next to the control-plane binaries;
  Maven's own repository is ``<cache>/m2``. The directory is filled as ``….partial`` and
  renamed when complete, so a half-downloaded broker is never used. It needs the system
  ``mvn`` and ``java`` (``hack/prereqs.sh --kafka`` checks them).
* **Start** (:func:`prepare`, :func:`broker_argv`): one JVM is broker and controller, on two
  free loopback ports, with a bounded heap. Its storage is formatted on every fresh start with
  a generated cluster id, so a restarted environment never sees an old cluster's metadata.

The pure parts (cluster id, ``server.properties``) are unit-tested; the broker itself in the
cluster tier.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from konsumerator_dev.testenv import process
from konsumerator_dev.testenv.config import cache_root
from konsumerator_dev.testenv.errors import BuildError, NotBuilt

Printer = Callable[[str], None]

#: Keep in step with ``kafka.version`` in maven/pom.xml: it names the cache directory.
KAFKA_VERSION = "4.4.0"
POM = Path(__file__).with_name("maven") / "pom.xml"
#: Heap bounds of the broker JVM: enough for a few topics of test traffic, no more.
HEAP = ("-Xms256m", "-Xmx384m")
#: JVM flags for a small, quickly started broker on a shared 2-core machine.
JVM_FLAGS = (
    *HEAP,
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
#: The log line that says the broker (and its controller) are up; the ready check also
#: asks the broker for its metadata.
STARTED_LINE = "Kafka Server started"

LOG4J2 = """\
# Written by konsumerator_dev.testenv: the broker logs to stdout, which goes to logs/kafka.log.
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
logger.lifecycle.name = org.apache.kafka.server.BrokerLifecycleManager
logger.lifecycle.level = INFO
"""


def kafka_dir(version: str = KAFKA_VERSION) -> Path:
    """Where the broker jars of ``version`` live (complete only if :func:`fetch` finished)."""
    return cache_root() / f"kafka-{version}"


def maven_repo() -> Path:
    return cache_root() / "m2"


def lib_dir(version: str = KAFKA_VERSION) -> Path:
    return kafka_dir(version) / "lib"


def fetched(version: str = KAFKA_VERSION) -> bool:
    lib = lib_dir(version)
    return lib.is_dir() and any(lib.glob(f"kafka_2.13-{version}.jar"))


def new_cluster_id(token: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 characters).

    Kafka's own ``Uuid`` avoids ids that start with ``-`` because its command-line tools read
    them as options (``StorageTool format -t -abc`` fails); draw again until it does not.
    """
    while True:
        text = base64.urlsafe_b64encode(token(16)).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def server_properties(*, broker_port: int, controller_port: int, data_dir: Path) -> str:
    """``server.properties`` of a combined broker+controller node on loopback."""
    settings: Mapping[str, str | int] = {
        "process.roles": "broker,controller",
        "node.id": 1,
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": 1,
        # One node: every internal topic has one replica, and few partitions start faster.
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "group.initial.rebalance.delay.ms": 0,
        # Tests create their topics explicitly, with the partition count they mean.
        "auto.create.topics.enable": "false",
        "log.retention.hours": 2,
        "log.segment.bytes": 16 * 1024 * 1024,
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    return "# Written by konsumerator_dev.testenv\n" + "\n".join(lines) + "\n"


def classpath(version: str = KAFKA_VERSION) -> str:
    return f"{lib_dir(version)}/*"


def java_binary() -> str:
    found = shutil.which("java")
    if found is None:
        raise NotBuilt(
            "java is not installed: the Kafka broker needs a Java 17+ runtime "
            "(Debian: apt-get install default-jre-headless); see hack/prereqs.sh --kafka"
        )
    return found


def broker_argv(*, config: Path, log4j: Path, version: str = KAFKA_VERSION) -> list[str]:
    return [
        java_binary(),
        *JVM_FLAGS,
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        classpath(version),
        MAIN_CLASS,
        str(config),
    ]


def prepare(
    *, state_dir: Path, broker_port: int, controller_port: int, version: str = KAFKA_VERSION
) -> tuple[Path, Path]:
    """Write the broker's config, format fresh storage; returns (server.properties, log4j)."""
    if not fetched(version):
        raise NotBuilt(
            f"Kafka {version} is not in {kafka_dir(version)}; "
            "run `konsumerator-dev testenv build` first"
        )
    data = state_dir / "kafka-data"
    if data.exists():
        shutil.rmtree(data)
    config = state_dir / "kafka-server.properties"
    config.write_text(
        server_properties(broker_port=broker_port, controller_port=controller_port, data_dir=data)
    )
    log4j = state_dir / "kafka-log4j2.properties"
    log4j.write_text(LOG4J2)
    argv = [
        java_binary(),
        "-Xmx128m",
        "-XX:TieredStopAtLevel=1",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        classpath(version),
        STORAGE_TOOL,
        "format",
        "--cluster-id",
        new_cluster_id(),
        "--config",
        str(config),
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise BuildError("formatting Kafka's storage failed:\n" + "\n".join(tail))
    return config, log4j


def fetch(out: Printer, version: str = KAFKA_VERSION) -> Path:
    """Fetch the broker's jars into the cache once (Maven Central, through maven/pom.xml)."""
    with _fetch_lock():
        return _fetch(out, version)


@contextlib.contextmanager
def _fetch_lock() -> Iterator[None]:
    """One fetch at a time (two `make test` runs may start together)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / "kafka.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _fetch(out: Printer, version: str) -> Path:
    final = kafka_dir(version)
    if fetched(version):
        return final
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BuildError(
            "mvn is not installed: it fetches the Kafka broker from Maven Central "
            "(Debian: apt-get install maven); see hack/prereqs.sh --kafka"
        )
    java_binary()
    partial = final.with_name(final.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    argv = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM),
        f"-Dmaven.repo.local={maven_repo()}",
        f"-Dkafka.version={version}",
        f"-Dkafka.work={partial}",
        f"-Dkafka.lib={partial / 'lib'}",
        "package",
    ]
    out(f"[build] kafka {version}: fetching the broker's jars with Maven into {final}")
    started = time.monotonic()
    log = partial.with_name(partial.name + ".log")
    with log.open("w") as fh:
        result = subprocess.run(
            argv, stdout=fh, stderr=subprocess.STDOUT, cwd=partial, check=False, timeout=1800
        )
    if result.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-20:]
        raise BuildError(f"`mvn package` for Kafka failed (log {log}):\n" + "\n".join(tail))
    shutil.rmtree(partial / "target", ignore_errors=True)
    os.replace(partial, final)
    log.unlink(missing_ok=True)
    jars = len(list((final / "lib").glob("*.jar")))
    out(f"[build] kafka {version}: {jars} jars in {time.monotonic() - started:.0f}s: {final}")
    return final


@contextlib.contextmanager
def standalone(state_dir: Path, *, timeout: float = 120.0) -> Iterator[str]:
    """A broker of its own in ``state_dir`` (no control plane), for benchmarks; yields its
    bootstrap address and stops it, by pid, on exit."""
    ports = process.free_ports(["broker", "controller"])
    state_dir.mkdir(parents=True, exist_ok=True)
    config, log4j = prepare(
        state_dir=state_dir, broker_port=ports["broker"], controller_port=ports["controller"]
    )
    log = state_dir / "kafka.log"
    broker = process.spawn(
        "kafka", broker_argv(config=config, log4j=log4j), log, tie_to_parent=True
    )
    try:
        process.wait_until(
            lambda: STARTED_LINE in log.read_text(),
            timeout=timeout,
            what="kafka broker start",
            watch=[broker],
        )
        yield f"127.0.0.1:{ports['broker']}"
    finally:
        process.stop(broker)
