"""What a metrics source answers a pass (``ProviderResult``), apart from how the
Prometheus provider gets it (``providing``): the pipeline's port and ``konsumerator
simulate`` read it without loading the HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from konsumerator.domain.metrics import MetricsSnapshot

if TYPE_CHECKING:
    from konsumerator.prom import fetching


@dataclass(frozen=True, slots=True)
class ProviderResult:
    """What the controller gets for one reconcile.

    `snapshot` is the last complete snapshot (None if there never was one)
    and `synced_at` when it was taken. `refreshed` is True when this call
    fetched it. `error` describes a failed refresh attempt of this call (the
    snapshot is then the previous one). `fetch` carries the per-query reports
    of a successful refresh, for logs and metrics.
    """

    snapshot: MetricsSnapshot | None
    synced_at: datetime | None
    refreshed: bool
    error: str | None = None
    # The MetricsAvailable reason for `error` (PrometheusUnreachable, NoData...).
    error_reason: str | None = None
    fetch: fetching.FetchResult | None = None
    # What the last successful refresh's answers held that was not used as given
    # (``FetchResult.problems``), kept with its snapshot: None when nothing.
    problems: str | None = None


class RefreshPending(Exception):
    """The metrics refresh a pass started outlasted the provider's patience; it goes on
    alone, and the Consumer's pass is asked for again when it ends (``providing``)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"the Prometheus refresh of {key} is still running")
