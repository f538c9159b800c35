"""The Grafana dashboard ``deploy/grafana/konsumerator.json``, as code (written by generate.py).

Two rows: the operator's health (controller-runtime and work-queue metrics, API requests,
watches, leadership) and, per Consumer (variable ``$consumer``), the Go operator's metric
names (lwolf/konsumerator ``controllers/metrics.go``) so existing dashboards and alerts keep
working (docs/compatibility.md lists what differs), plus the per-Consumer
lag gauges. Every metric the dashboard reads is listed in ``METRICS``; a test compares that
list with the queries, so the list (which the operator must export) cannot drift either.

Panels never go blank for a healthy operator:

* ``$job`` lists the scrape jobs that export ``konsumerator_meta_info``, which every
  replica exports from its first scrape, with or without leader election;
* the leader panels read -1, shown as "election off", when no replica exports
  ``leader_election_master_status`` (the operator runs without ``--leader-elect``);
* error panels read 0 until the first error (counters with labels appear only when first
  incremented), and "API errors/s" leaves out the 404 answers the operator expects: the
  first GET of a Lease, a DELETE of a Deployment that is already gone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}
CONSUMER = 'consumer=~"$consumer"'

#: Every metric name the dashboard queries (histograms by their base name).
METRICS = (
    # exported by konsumerator.obs.metrics today
    "controller_runtime_reconcile_total",
    "controller_runtime_reconcile_errors_total",
    "controller_runtime_terminal_reconcile_errors_total",
    "controller_runtime_reconcile_time_seconds",
    "workqueue_depth",
    "workqueue_adds_total",
    "workqueue_retries_total",
    "workqueue_queue_duration_seconds",
    "workqueue_work_duration_seconds",
    "leader_election_master_status",
    "konsumerator_meta_info",
    "konsumerator_api_requests_total",
    "konsumerator_watch_restarts_total",
    "konsumerator_relists_total",
    # the operator process (prometheus_client's ProcessCollector)
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    # per Consumer: the Go operator's names (controllers/metrics.go)
    "konsumerator_consumer_status",
    "konsumerator_deployment_status",
    "konsumerator_deployment_saturation",
    "konsumerator_consumer_global_cpu_allocated_mcores",
    "konsumerator_consumer_global_memory_allocated_bytes",
    "konsumerator_consumer_global_cpu_limit_mcores",
    "konsumerator_consumer_global_memory_limit_bytes",
    "konsumerator_consumer_reconcile_total",
    "konsumerator_consumer_reconcile_errors_total",
    "konsumerator_consumer_deployments_create_total",
    "konsumerator_consumer_deployments_update_total",
    "konsumerator_consumer_deployments_delete_total",
    "konsumerator_consumer_deployments_create_errors",
    "konsumerator_consumer_deployments_update_errors",
    "konsumerator_consumer_deployments_delete_errors",
    # per Consumer: lag, bounded labels (no partition label)
    "konsumerator_consumer_max_lag_seconds",
    "konsumerator_consumer_messages_behind",
    "konsumerator_deployment_max_lag_seconds",
)


class _Layout:
    """Places panels left to right, 24 units per line."""

    def __init__(self) -> None:
        self.x = self.y = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y = 0, self.y + h
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        return pos

    def row(self, title: str) -> dict[str, Any]:
        if self.x:
            self.x, self.y = 0, self.y + 8
        panel = {
            "type": "row",
            "id": self._id(),
            "title": title,
            "collapsed": False,
            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1},
            "panels": [],
        }
        self.y += 1
        return panel

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _targets(queries: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)}
        for i, (expr, legend) in enumerate(queries)
    ]


def _timeseries(
    layout: _Layout,
    title: str,
    queries: Sequence[tuple[str, str]],
    *,
    unit: str = "short",
    description: str = "",
    w: int = 8,
    stack: bool = False,
    mappings: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "id": layout._id(),
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": layout.place(w, 8),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "mappings": list(mappings),
                "custom": {
                    "drawStyle": "line",
                    "fillOpacity": 20 if stack else 0,
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": _targets(queries),
    }


def _stat(
    layout: _Layout,
    title: str,
    expr: str,
    *,
    unit: str = "short",
    description: str = "",
    mappings: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "type": "stat",
        "id": layout._id(),
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": layout.place(4, 4),
        "fieldConfig": {"defaults": {"unit": unit, "mappings": list(mappings)}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"},
        "targets": _targets([(expr, "")]),
    }


# Without --leader-elect no replica exports leader_election_master_status: read -1 instead.
ELECTION_OFF = -1
ELECTION_OFF_MAPPING = {
    "type": "value",
    "options": {str(ELECTION_OFF): {"text": "election off", "index": 0}},
}


def zero_if_absent(expr: str) -> str:
    """``expr``, or 0 while its series do not exist yet (no error counted so far)."""
    return f"({expr}) or vector(0)"


#: Non-2xx answers, except the 404s the operator asks for on purpose (GET to find out
#: whether a Lease exists, DELETE of what is already gone).
API_ERRORS = (
    'rate(konsumerator_api_requests_total{code!~"2.."}[5m]) unless '
    'rate(konsumerator_api_requests_total{code="404", verb=~"get|delete"}[5m])'
)


def _operator(layout: _Layout) -> Iterator[dict[str, Any]]:
    yield layout.row("Operator")
    yield _stat(
        layout,
        "Leaders",
        f"sum(leader_election_master_status) or on() (count(konsumerator_meta_info) * 0 "
        f"{ELECTION_OFF:+d})",
        description="Replicas holding the Lease: 1 is healthy; 0 means nothing reconciles. "
        '"election off": the operator runs without --leader-elect (every replica '
        "reconciles).",
        mappings=[ELECTION_OFF_MAPPING],
    )
    yield _stat(
        layout,
        "Replicas reporting",
        "count(konsumerator_meta_info)",
        description="Replicas scraped (the leader and its warm standbys).",
    )
    yield _stat(
        layout,
        "Reconciles/s",
        "sum(rate(controller_runtime_reconcile_total[5m]))",
        unit="reqps",
    )
    yield _stat(
        layout,
        "Reconcile errors/s",
        zero_if_absent("sum(rate(controller_runtime_reconcile_errors_total[5m]))"),
        unit="reqps",
    )
    yield _stat(layout, "Queue depth", "sum(workqueue_depth)")
    yield _stat(
        layout,
        "API errors/s",
        zero_if_absent(f"sum({API_ERRORS})"),
        unit="reqps",
        description="Non-2xx answers of the API server (0 = no answer). Not counted: 404 on "
        "GET and DELETE, which the operator expects (the first GET of the Lease, the DELETE of a "
        "Deployment already gone). A 409 on a create is a name held by someone else "
        "(NameConflict). The API requests panel shows every code.",
    )
    yield _timeseries(
        layout,
        "Reconciles by result",
        [
            (
                "sum by (controller, result) (rate(controller_runtime_reconcile_total[5m]))",
                "{{controller}} {{result}}",
            )
        ],
        unit="reqps",
        stack=True,
    )
    yield _timeseries(
        layout,
        "Reconcile errors",
        [
            (
                "sum by (controller) (rate(controller_runtime_reconcile_errors_total[5m])) "
                "or sum by (controller) (rate(controller_runtime_reconcile_total[5m])) * 0",
                "{{controller}} errors",
            ),
            (
                "sum by (controller) "
                "(rate(controller_runtime_terminal_reconcile_errors_total[5m])) "
                "or sum by (controller) (rate(controller_runtime_reconcile_total[5m])) * 0",
                "{{controller}} terminal (invalid spec, not retried)",
            ),
        ],
        unit="reqps",
        description="0 until the first error.",
    )
    yield _timeseries(
        layout,
        "Reconcile duration",
        [
            (
                f"histogram_quantile({q}, sum by (le, controller) "
                "(rate(controller_runtime_reconcile_time_seconds_bucket[5m])))",
                f"p{int(q * 100)} {{{{controller}}}}",
            )
            for q in (0.5, 0.9, 0.99)
        ],
        unit="s",
    )
    yield _timeseries(
        layout,
        "Work queue depth",
        [("sum by (name) (workqueue_depth)", "{{name}}")],
    )
    yield _timeseries(
        layout,
        "Work queue wait and work time (p99)",
        [
            (
                "histogram_quantile(0.99, sum by (le, name) "
                "(rate(workqueue_queue_duration_seconds_bucket[5m])))",
                "wait {{name}}",
            ),
            (
                "histogram_quantile(0.99, sum by (le, name) "
                "(rate(workqueue_work_duration_seconds_bucket[5m])))",
                "work {{name}}",
            ),
        ],
        unit="s",
    )
    yield _timeseries(
        layout,
        "Work queue adds and retries",
        [
            ("sum by (name) (rate(workqueue_adds_total[5m]))", "adds {{name}}"),
            ("sum by (name) (rate(workqueue_retries_total[5m]))", "retries {{name}}"),
        ],
        unit="ops",
    )
    yield _timeseries(
        layout,
        "API requests",
        [
            (
                "sum by (verb, resource, code) (rate(konsumerator_api_requests_total[5m]))",
                "{{verb}} {{resource}} {{code}}",
            )
        ],
        unit="reqps",
        w=12,
        stack=True,
    )
    yield _timeseries(
        layout,
        "Watches",
        [
            (
                "sum by (resource, reason) (rate(konsumerator_watch_restarts_total[5m]))",
                "restart {{resource}} ({{reason}})",
            ),
            ("sum by (resource) (rate(konsumerator_relists_total[5m]))", "relist {{resource}}"),
        ],
        unit="ops",
        description="Watch restarts are routine (server timeouts); relists should be rare.",
        w=12,
    )
    yield _timeseries(
        layout,
        "Leader",
        [
            (
                "max by (pod) (leader_election_master_status) or on(pod) "
                f"(max by (pod) (konsumerator_meta_info) * 0 {ELECTION_OFF:+d})",
                "{{pod}}",
            )
        ],
        description="1 for the replica that holds the Lease, 0 for standbys; -1 (election "
        "off): the replica runs without --leader-elect.",
        w=8,
        mappings=[ELECTION_OFF_MAPPING],
    )
    yield _timeseries(
        layout,
        "Operator memory",
        [("process_resident_memory_bytes", "{{pod}}")],
        unit="bytes",
        w=8,
    )
    yield _timeseries(
        layout,
        "Operator CPU",
        [("rate(process_cpu_seconds_total[5m])", "{{pod}}")],
        unit="short",
        w=8,
    )


_JOB = 'job=~"$job"'


def _scoped(expr: str) -> str:
    """Every metric of ``expr`` restricted to the selected scrape jobs."""

    def add(match: re.Match[str]) -> str:
        name, after = match.group(1), match.group(2)
        return f"{name}{{{_JOB}, " if after == "{" else f"{name}{{{_JOB}}}{after}"

    return re.sub(r"\b([a-z_]+(?:_total|_bucket|_status|_depth|_bytes|_info))([\[{)]|$)", add, expr)


def _by_job(panels: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        for target in panel.get("targets", []):
            target["expr"] = _scoped(target["expr"])
        yield panel


def _consumers(layout: _Layout) -> Iterator[dict[str, Any]]:
    yield layout.row("Consumers ($consumer)")
    yield _timeseries(
        layout,
        "Largest partition lag",
        [
            (
                f"max by (consumer) (konsumerator_consumer_max_lag_seconds{{{CONSUMER}}})",
                "{{consumer}}",
            )
        ],
        unit="s",
        description="Seconds of production behind, of the most lagging partition.",
    )
    yield _timeseries(
        layout,
        "Messages behind",
        [
            (
                f"sum by (consumer) (konsumerator_consumer_messages_behind{{{CONSUMER}}})",
                "{{consumer}}",
            )
        ],
    )
    yield _timeseries(
        layout,
        "Most lagging instances",
        [
            (
                f"topk(10, konsumerator_deployment_max_lag_seconds{{{CONSUMER}}})",
                "{{deployment}}",
            )
        ],
        unit="s",
    )
    yield _timeseries(
        layout,
        "Instances by state",
        [
            (
                f"sum by (type) (konsumerator_consumer_status{{{CONSUMER}, "
                'type=~"running|paused|missing|outdated|redundant"})',
                "{{type}}",
            ),
            (f'sum(konsumerator_consumer_status{{{CONSUMER}, type="lagging"}})', "lagging"),
            (f'sum(konsumerator_consumer_status{{{CONSUMER}, type="expected"}})', "expected"),
        ],
        description="running + paused + missing = expected. RUNNING counts Deployments that "
        "exist and are not paused, whatever their replicas; lagging counts running and paused "
        "ones.",
    )
    yield _timeseries(
        layout,
        "Scaling states",
        [
            (
                f"count(konsumerator_deployment_status{{{CONSUMER}}} == {value}) or vector(0)",
                label,
            )
            for value, label in (
                (1, "RUNNING"),
                (2, "SATURATED"),
                (3, "PENDING_SCALE_UP"),
                (4, "PENDING_SCALE_DOWN"),
            )
        ],
        stack=True,
    )
    yield _timeseries(
        layout,
        "CPU saturation (shortage)",
        [
            (
                f"sum by (consumer) (konsumerator_deployment_saturation{{{CONSUMER}}}) / 1000",
                "{{consumer}}",
            )
        ],
        description="CPU the lagging instances need beyond their limits (cores).",
    )
    yield _timeseries(
        layout,
        "CPU allocated (requests)",
        [
            (
                f"sum by (consumer) "
                f"(konsumerator_consumer_global_cpu_allocated_mcores{{{CONSUMER}}}) / 1000",
                "allocated {{consumer}}",
            ),
            (
                f"sum by (consumer) "
                f"(konsumerator_consumer_global_cpu_limit_mcores{{{CONSUMER}}}) / 1000",
                "global maxAllowed {{consumer}}",
            ),
        ],
        w=12,
    )
    yield _timeseries(
        layout,
        "Memory allocated (requests)",
        [
            (
                f"sum by (consumer) "
                f"(konsumerator_consumer_global_memory_allocated_bytes{{{CONSUMER}}})",
                "allocated {{consumer}}",
            ),
            (
                f"sum by (consumer) "
                f"(konsumerator_consumer_global_memory_limit_bytes{{{CONSUMER}}})",
                "global maxAllowed {{consumer}}",
            ),
        ],
        unit="bytes",
        w=12,
    )
    yield _timeseries(
        layout,
        "Reconciles",
        [
            (
                f"sum by (consumer) "
                f"(rate(konsumerator_consumer_reconcile_total{{{CONSUMER}}}[5m]))",
                "{{consumer}}",
            ),
            (
                f"sum by (consumer) "
                f"(rate(konsumerator_consumer_reconcile_errors_total{{{CONSUMER}}}[5m]))",
                "errors {{consumer}}",
            ),
        ],
        unit="ops",
        w=12,
    )
    yield _timeseries(
        layout,
        "Deployment writes",
        [
            (
                f"sum by (consumer) "
                f"(rate(konsumerator_consumer_deployments_{kind}_{suffix}{{{CONSUMER}}}[5m]))",
                f"{kind}{' errors' if suffix == 'errors' else ''} {{{{consumer}}}}",
            )
            for suffix in ("total", "errors")
            for kind in ("create", "update", "delete")
        ],
        unit="ops",
        description="Creates, updates (rollouts, resizes, scaling-status changes) and deletes, "
        "and those the API server refused.",
        w=12,
    )


def dashboard() -> dict[str, Any]:
    layout = _Layout()
    panels = [*_by_job(_operator(layout)), *_consumers(layout)]
    return {
        "title": "Konsumerator",
        "uid": "konsumerator",
        "description": "Operator health and, per Consumer, lag, instances, scaling and "
        "resources. Generated by `make generate` (konsumerator_dev.hack.dashboard).",
        "tags": ["konsumerator", "kafka", "operator"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "",
        "graphTooltip": 1,
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "job",
                    "label": "Job",
                    "type": "query",
                    "datasource": DS,
                    "query": "label_values(konsumerator_meta_info, job)",
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "consumer",
                    "label": "Consumer",
                    "type": "query",
                    "datasource": DS,
                    "query": "label_values(konsumerator_consumer_status, consumer)",
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "current": {},
                    "hide": 0,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"
