"""``konsumerator simulate`` loads neither the Kubernetes nor the HTTP client.

A replay wires the operator's own pipeline to an in-memory cluster, so nothing it
runs talks to a server: what the pipeline and the reporters read of the act step
(``controllers.outcomes``) and of a metrics source (``prom.results``) lives apart from
the clients that make them. Loading those was a tenth of a short replay's CPU. Checked
in a fresh interpreter, after a whole replay of the shipped example.
"""

import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

PROBE = """
import json, sys
from konsumerator.cli import main
try:
    main(["simulate", sys.argv[1], sys.argv[2]], standalone_mode=False)
finally:
    sys.stdout.flush()
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _replay() -> tuple[int, list[str]]:
    """Replay the shipped example in a fresh interpreter: its output lines, and the
    modules loaded by then."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            str(EXAMPLES / "consumer.yaml"),
            str(EXAMPLES / "timelines" / "incident.yaml"),
        ],
        capture_output=True,
        check=True,
        text=True,
    )
    loaded: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return done.stdout.count("\n"), loaded


def test_a_replay_loads_no_kubernetes_or_http_client() -> None:
    lines, loaded = _replay()
    assert lines > 5  # it did replay the timeline
    assert [m for m in loaded if m.startswith(("konsumerator.kube", "httpcore", "h2"))] == []
    assert "konsumerator.controllers.acting" not in loaded
    assert "konsumerator.prom.providing" not in loaded


def test_a_replay_loads_no_logging_metrics_exporter_or_http_library() -> None:
    """Nor what only the operator process uses: structlog (with ``rich``), the Prometheus
    client library that exports the operator's metrics, the HTTP library's URL parser;
    together a third of the start-up of a replay."""
    _, loaded = _replay()
    heavy = ("structlog", "rich", "prometheus_client", "httpx2", "konsumerator.runtime.controlling")
    assert [m for m in loaded if m.split(".")[0] in heavy or m in heavy] == []


def test_a_replay_loads_no_event_loop_library() -> None:
    """A replay's passes run without an event loop (``simulating._at_once``): ``asyncio``,
    with ``ssl`` and ``concurrent.futures`` that it loads, is imported only where the
    operator runs one (some 7% of a replay's start-up)."""
    _, loaded = _replay()
    assert [m for m in loaded if m.split(".")[0] in ("asyncio", "ssl", "concurrent")] == []
