"""``konsumerator run``: what the flags become, before anything is started.

Aspects tested:

* by default /metrics and the health probes listen on loopback only (plain HTTP without
  authentication must not be reachable from the network unless asked for); ``:port``
  still means every interface and ``0`` disables;
* ``--prometheus-allowed-hosts`` takes comma-separated and repeated patterns; a bad
  pattern exits with status 2 naming the flag and the pattern, before anything runs.
"""

import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner

from konsumerator import app
from konsumerator.cli import main
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
    [(":8081", Endpoint("0.0.0.0", 8081)), ("10.0.0.5:9000", Endpoint("10.0.0.5", 9000))],
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
