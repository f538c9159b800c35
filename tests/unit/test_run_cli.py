"""``konsumerator run``: what the flags become, before anything is started.

Aspects tested:

* by default /metrics and the health probes listen on loopback only (plain HTTP without
  authentication must not be reachable from the network unless asked for); ``:port``
  still means every interface and ``0`` disables;
* ``--prometheus-allowed-hosts`` takes comma-separated and repeated patterns; a bad
  pattern exits with status 2 naming the flag and the pattern, before anything runs;
* a bind address is ``host:port``, ``[ipv6]:port`` or ``:port``, its port from 0 to
  65535 (others exit 2 naming it); an IPv6 one is served;
* a kubeconfig that cannot be loaded, or a probe address that cannot be listened on
  (taken, unresolvable), stops the process with status 2 and one log line saying why,
  never a traceback (both were tracebacks, exit status 1).
"""

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from konsumerator import app
from konsumerator.cli import main
from konsumerator.runtime import serving
from konsumerator.runtime.managing import Endpoint


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[app.Settings]:
    """The settings ``run`` would have started the operator with (nothing is started)."""
    seen: list[app.Settings] = []

    def fake_run(settings: app.Settings) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr(app, "run", fake_run)
    return seen


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["run", *args])


def test_metrics_and_probes_listen_on_loopback_by_default(started: list[app.Settings]) -> None:
    result = run()
    assert result.exit_code == 0, result.output
    [settings] = started
    assert settings.metrics_bind == Endpoint("127.0.0.1", 8080)
    assert settings.health_bind == Endpoint("127.0.0.1", 8081)
    assert settings.prometheus_allowed_hosts == ()


@pytest.mark.parametrize(
    ("flag", "endpoint"),
    [
        (":8081", Endpoint("0.0.0.0", 8081)),
        ("10.0.0.5:9000", Endpoint("10.0.0.5", 9000)),
        ("[::]:8081", Endpoint("::", 8081)),
        ("[fd00::1]:9000", Endpoint("fd00::1", 9000)),
    ],
)
def test_other_interfaces_only_when_asked(
    started: list[app.Settings], flag: str, endpoint: Endpoint
) -> None:
    assert run(f"--health-probe-bind-address={flag}", "--metrics-bind-address=0").exit_code == 0
    assert started[0].health_bind == endpoint
    assert started[0].metrics_bind is None


def test_allowed_hosts_are_passed_on(started: list[app.Settings]) -> None:
    result = run(
        "--prometheus-allowed-hosts=*.monitoring.svc,10.0.0.0/8",
        "--prometheus-allowed-hosts",
        "prom.example.com:443",
    )
    assert result.exit_code == 0, result.output
    assert started[0].prometheus_allowed_hosts == (
        "*.monitoring.svc,10.0.0.0/8",
        "prom.example.com:443",
    )


def test_a_bad_allowed_host_pattern_exits_2_naming_the_flag(started: list[app.Settings]) -> None:
    result = run("--prometheus-allowed-hosts=*.monitoring.svc,http://prom:9090")
    assert result.exit_code == 2
    assert "--prometheus-allowed-hosts" in result.output
    assert "'http://prom:9090'" in result.output
    assert started == []


def test_the_operator_process_does_not_load_rich() -> None:
    """structlog loads ``rich`` when it is installed (the dev tools install it): 3 MiB
    of resident memory in the operator for console tracebacks it never draws. A fresh
    interpreter runs the command up to the point where the app is imported and
    settings are checked (a bad pattern stops it there), then reports what it loaded."""
    probe = (
        "import sys\n"
        "from konsumerator.cli import main\n"
        "try:\n"
        "    main(['run', '--prometheus-allowed-hosts', 'x:0'], standalone_mode=False)\n"
        "except Exception:\n"
        "    pass\n"
        "assert 'konsumerator.app' in sys.modules\n"
        "print(sys.modules.get('rich') is not None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("flag", [":99999", ":-1", ":65536", "host:http", "[::1]"])
def test_a_bind_address_without_a_usable_port_exits_2_naming_it(
    started: list[app.Settings], flag: str
) -> None:
    result = run(f"--health-probe-bind-address={flag}")
    assert result.exit_code == 2
    assert "bad bind address" in result.output
    assert started == []


def test_an_ipv6_probe_address_is_served() -> None:
    server = serving.HttpServer(host="::1", port=0, routes={"/healthz": ok})
    server.start()
    try:
        with urllib.request.urlopen(f"http://[::1]:{server.port}/healthz", timeout=10) as r:
            assert r.read() == b"ok\n"
    finally:
        server.stop()


def ok(environ: Any, start_response: Any) -> Any:
    return serving.text_response(start_response, status="200 OK", body="ok\n")


UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: default}}]
current-context: x
"""


def operator_process(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "konsumerator", "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line_refusal(result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    logged = json.loads(line)
    assert logged["event"] == "cannot start"
    assert says in logged["reason"]


@pytest.mark.parametrize("content", [None, "garbage: [\n", "kind: Config\n"])
def test_a_kubeconfig_that_cannot_be_loaded_is_one_line_and_status_2(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    result = operator_process(f"--kubeconfig={path}", "--metrics-bind-address=0")
    one_line_refusal(result, "cannot load Kubernetes configuration")


@pytest.mark.parametrize("host", ["127.0.0.1", "host.invalid"])
def test_a_probe_address_that_cannot_be_listened_on_is_one_line_and_status_2(
    tmp_path: Path, host: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = operator_process(
            f"--kubeconfig={kubeconfig}",
            f"--health-probe-bind-address={host}:{port}",
            "--metrics-bind-address=0",
        )
    one_line_refusal(result, f"cannot serve on {host}:{port}")
