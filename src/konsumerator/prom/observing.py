"""Hooks for the operator's own metrics about Prometheus traffic.

This package must not import `prometheus_client`: the obs package owns the
registry and the metric names. Instead, the querying code reports figures
through the small `QueryObserver` protocol and obs implements it with
counters and histograms.

Cardinality is bounded by construction: labels are the configured address (a
handful per cluster), the logical query kind (`MetricKind`, three values) and
an outcome or bad-data reason enum. Nothing here is ever labelled by partition or Consumer.
"""

from enum import StrEnum
from typing import Protocol


class RequestOutcome(StrEnum):
    SUCCESS = "success"
    # Prometheus answered with an error envelope (bad PromQL, timeout, ...).
    REJECTED = "rejected"
    # No usable answer: connection, timeout, non-Prometheus HTTP error, junk.
    UNAVAILABLE = "unavailable"
    # Another address answered first; this request was cancelled. Not an error.
    CANCELLED = "cancelled"


class QueryOutcome(StrEnum):
    SUCCESS = "success"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"


class QueryObserver(Protocol):
    def request_finished(
        self, *, address: str, kind: str, outcome: RequestOutcome, duration_seconds: float
    ) -> None:
        """One HTTP request to one address ended (including by cancellation)."""

    def query_finished(self, *, kind: str, outcome: QueryOutcome, duration_seconds: float) -> None:
        """One logical (hedged) query ended."""

    def bad_data(self, *, kind: str, reason: str) -> None:
        """A query was answered with data that cannot be used (see fetching)."""


class NullObserver:
    def request_finished(
        self, *, address: str, kind: str, outcome: RequestOutcome, duration_seconds: float
    ) -> None:
        pass

    def query_finished(self, *, kind: str, outcome: QueryOutcome, duration_seconds: float) -> None:
        pass

    def bad_data(self, *, kind: str, reason: str) -> None:
        pass


NULL_OBSERVER: QueryObserver = NullObserver()
