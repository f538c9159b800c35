"""``konsumerator run`` logs a ``reconcileID`` with every line of a reconcile, as
controller-runtime does, on the real API server.

The operator runs as a process with its real logging set-up (JSON, debug level). The
Consumer names a Prometheus address where nothing listens, so each pass logs from the
Prometheus client (``prometheus request failed``, in tasks the pass starts) as well as the
controller's ``reconciled``.

Aspects tested:

* every line of the Consumer's passes carries ``reconcileID``, ``controller`` and
  ``key`` (``namespace/name``); the lines with one id all name the same controller and key
  and hold exactly one ``reconciled`` line, so one id is one pass;
* a pass's Prometheus lines share the id of its ``reconciled`` line, and every pass has
  its own id;
* the lines outside reconciles (start-up, caches, the manager) carry no id.
"""

from __future__ import annotations

import json
import socket
from collections import defaultdict
from typing import Any

import pytest
from operating import consumer, eventually, operator_process

from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

PROM_LINE = "prometheus request failed"


def _closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _records(text: str) -> list[dict[str, Any]]:
    """The JSON lines of a log that is still being written (a partial last line is left out)."""
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.startswith("{")]


def test_the_lines_of_one_reconcile_share_one_id_and_no_other_line_has_one(
    cluster: Cluster, namespace: str
) -> None:
    key = f"{namespace}/ids"
    manifest = consumer(
        "ids",
        namespace,
        num_partitions=2,
        per_instance=1,
        prometheus_url=f"http://127.0.0.1:{_closed_port()}",
    )
    # The later --log-format/--log-level win over the helper's defaults.
    with operator_process(cluster, "--log-format", "json", "--log-level", "debug") as operator:
        cluster.apply(manifest)
        eventually(
            lambda: _records(operator.log_text()),
            # Other tests' Consumers may still be there: count this one's passes only.
            lambda records: (
                sum(r.get("event") == "reconciled" and r.get("key") == key for r in records) >= 2
            ),
            timeout=60,
            what=f"two passes of {key} in the operator's log",
        )
        # Read before the block ends: the log file goes with the operator's directory.
        records = _records(operator.log_text())

    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if "reconcileID" in r:
            by_id[r["reconcileID"]].append(r)
    passes = {i: rs for i, rs in by_id.items() if rs[0].get("key") == key}
    assert len(passes) >= 2
    for lines in passes.values():
        assert {(r["controller"], r["key"]) for r in lines} == {(lines[0]["controller"], key)}
        assert [r["event"] for r in lines].count("reconciled") == 1
    # The Prometheus client logs from tasks the pass starts: same id as its "reconciled".
    assert any(PROM_LINE in [r["event"] for r in lines] for lines in passes.values())

    outside = [r for r in records if "reconcileID" not in r]
    assert outside, "the start-up lines are outside every reconcile"
    assert all("key" not in r and "controller" not in r for r in outside), outside
    assert not {"reconciled", PROM_LINE} & {r["event"] for r in outside}
