"""A real Prometheus, scraping a tiny exporter on loopback, for tests/prom.

"Tests that need Prometheus use a real Prometheus": this starts Debian's
`/usr/bin/prometheus` on a free 127.0.0.1 port with a throw-away TSDB,
scraping (every second) a `http.server` thread that serves Kafka-exporter
style series. A fixture waits until the series are queryable, including a
`rate()` over them, so tests never race the first scrapes.

If the binary is missing it is apt-installed (we run as root in CI and in the
dev container, like `make test`'s build step). If that is impossible the
fixture FAILS with the reason; it never skips, because a skipped Prometheus
test silently removes the only proof that our queries work for real.

Processes are stopped by pid in teardown, always (terminate, then kill).
"""

import contextlib
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PROMETHEUS = "/usr/bin/prometheus"
STARTUP_TIMEOUT = 60.0
# Queries use rate(...[RATE_WINDOW]); scrapes happen every second.
RATE_WINDOW = "5s"
RATE_WINDOW_SAMPLES = 5
# Messages per second written to each partition of topic "t", and consumed.
PRODUCTION_RATES = {0: 100.0, 1: 10.0}
CONSUMPTION_RATES = {0: 90.0, 1: 10.0}
LAGS = {("t", 0): 300, ("t", 1): 50, ("other", 0): 999}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_prometheus_binary() -> str:
    if os.access(PROMETHEUS, os.X_OK):
        return PROMETHEUS
    found = shutil.which("prometheus")
    if found:
        return found
    attempts: list[str] = []
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        pytest.fail(
            f"{PROMETHEUS} is missing and cannot be installed here "
            f"(apt-get: {apt}, uid {os.geteuid()}); install the Debian 'prometheus' package"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", "prometheus"]
    for command in (install, [apt, "update"], install):
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        attempts.append(f"$ {' '.join(command)} → {done.returncode}\n{done.stderr[-2000:]}")
        if command is install and done.returncode == 0 and os.access(PROMETHEUS, os.X_OK):
            return PROMETHEUS
    pytest.fail(
        f"{PROMETHEUS} is missing and apt-get could not install it:\n" + "\n".join(attempts)
    )


def exposition(started: float) -> str:
    """Kafka-exporter style text; offsets grow linearly so rate() is known."""
    elapsed = time.time() - started
    lines = [
        "# TYPE kafka_consumergroup_lag gauge",
        *(
            f'kafka_consumergroup_lag{{consumergroup="g",topic="{topic}",partition="{p}"}} {lag}'
            for (topic, p), lag in LAGS.items()
        ),
        "# TYPE kafka_topic_partition_current_offset counter",
        *(
            f'kafka_topic_partition_current_offset{{topic="t",partition="{p}"}} {1e6 + r * elapsed}'
            for p, r in PRODUCTION_RATES.items()
        ),
        "# TYPE kafka_consumergroup_current_offset counter",
        *(
            f'kafka_consumergroup_current_offset{{consumergroup="g",topic="t",partition="{p}"}}'
            f" {1e6 + r * elapsed}"
            for p, r in CONSUMPTION_RATES.items()
        ),
    ]
    return "\n".join(lines) + "\n"


class QuietServer(http.server.ThreadingHTTPServer):
    """Drops a scrape that Prometheus hung up on instead of printing a traceback.

    socketserver prints a handler's exception to ``sys.stderr`` from its own
    thread; a CLI test that captures stderr at that moment would read it as
    its own output (a CI run failed that way on a BrokenPipeError).
    """

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@dataclass
class Exporter:
    port: int
    server: http.server.ThreadingHTTPServer
    thread: threading.Thread


@pytest.fixture(scope="package")
def exporter() -> Iterator[Exporter]:
    started = time.time()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exposition(started).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep pytest output clean

    server = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="fake-exporter", daemon=True)
    thread.start()
    try:
        yield Exporter(port=server.server_address[1], server=server, thread=thread)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class PrometheusProcess:
    address: str
    process: subprocess.Popen[bytes]
    log: Path
    stopped: bool = field(default=False)

    def stop(self) -> None:
        """Stop by pid: SIGTERM, then SIGKILL if it does not exit in 10 s."""
        if self.stopped:
            return
        self.stopped = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _instant(address: str, query: str) -> str:
    data = urllib.parse.urlencode({"query": query}).encode()
    with urllib.request.urlopen(f"{address}/api/v1/query", data=data, timeout=2) as response:
        return str(response.read().decode())


def _wait_until_queryable(prom: PrometheusProcess) -> None:
    # Ready, the gauges are there, and the counters have filled a whole
    # RATE_WINDOW: with only the first two scrapes, rate() extrapolates over a
    # fraction of the window and reads a fraction of the true rate.
    probes = [
        'count(kafka_consumergroup_lag{topic="t"}) == 2',
        f'count(count_over_time(kafka_topic_partition_current_offset{{topic="t"}}[{RATE_WINDOW}])'
        f" >= {RATE_WINDOW_SAMPLES}) == 2",
        f'count(count_over_time(kafka_consumergroup_current_offset{{topic="t"}}[{RATE_WINDOW}])'
        f" >= {RATE_WINDOW_SAMPLES}) == 2",
    ]
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last = "no attempt"
    while time.monotonic() < deadline:
        if prom.process.poll() is not None:
            pytest.fail(
                f"prometheus exited with {prom.process.returncode}:\n{prom.log.read_text()[-3000:]}"
            )
        try:
            answers = [_instant(prom.address, probe) for probe in probes]
            if all('"result":[{' in answer for answer in answers):
                return
            last = " | ".join(answers)
        except (urllib.error.URLError, OSError) as exc:
            last = repr(exc)
        time.sleep(0.3)
    pytest.fail(f"prometheus at {prom.address} not queryable in {STARTUP_TIMEOUT}s: {last}")


def launch_prometheus(
    *, workdir: Path, job: str, target: str, labels: str = ""
) -> PrometheusProcess:
    """Start one Prometheus scraping ``target`` every second as ``job`` (with the static
    ``labels``, YAML flow mapping, if given), its TSDB and log in ``workdir``. The caller
    waits for what it needs and stops it."""
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: {job}\n"
        "    static_configs:\n"
        f"      - targets: ['{target}']\n" + (f"        labels: {labels}\n" if labels else "")
    )
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                ensure_prometheus_binary(),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return PrometheusProcess(address=f"http://127.0.0.1:{port}", process=process, log=log)


@pytest.fixture(scope="package")
def start_prometheus(
    exporter: Exporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], PrometheusProcess]]:
    """A factory: each call starts one more Prometheus; all are stopped when tests/prom is done."""
    ensure_prometheus_binary()  # fail before the first test if there is none
    started: list[PrometheusProcess] = []

    def start() -> PrometheusProcess:
        prom = launch_prometheus(
            workdir=tmp_path_factory.mktemp("prometheus"),
            job="kafka-exporter",
            target=f"127.0.0.1:{exporter.port}",
        )
        started.append(prom)
        _wait_until_queryable(prom)
        return prom

    try:
        yield start
    finally:
        for prom in started:
            with contextlib.suppress(Exception):
                prom.stop()


@pytest.fixture(scope="package")
def prometheus(start_prometheus: Callable[[], PrometheusProcess]) -> PrometheusProcess:
    """The shared instance; tests that stop Prometheus start their own."""
    return start_prometheus()
