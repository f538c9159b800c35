"""Typed failures of talking to Prometheus.

Two outcomes matter to callers and they call for different reactions:

- `PrometheusUnavailable`: no address produced a usable answer (connection
  refused, DNS, timeout, a proxy's 502, a body that is not a Prometheus
  envelope, an unparsable address). Transient as far as we can tell; the
  provider keeps the last complete snapshot and tries again later.
- `QueryFailed`: a Prometheus answered and rejected the query (`bad_data`
  for invalid PromQL, `execution`, `timeout`, ...). Usually a mistake in the
  Consumer spec. Its text (what reaches status conditions and Events) carries
  Prometheus's own words only for `bad_data`, which describe the query the
  author wrote; other errors can quote series (the label sets of duplicates)
  from a Prometheus the author may not be meant to read, so only their type
  and HTTP status are shown and `message` keeps the words for the debug log.

- `BadData`: a Prometheus answered the query, but what it returned cannot
  be trusted as "the value of every partition": no usable series at all (a
  typo in a label selector or in `partitionLabel`), a scalar or string
  instead of a vector, or a value no int64 holds. Acting on it would shrink
  every instance to its minimum while the real lag is unknown, so it is a
  failed refresh like the others: the last good snapshot stays.

When every address fails and at least one of them answered with a rejection,
`QueryFailed` wins: a Prometheus did answer, so "unavailable" would send the
operator's user looking in the wrong place.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from konsumerator.prom.urls import redact

# Prometheus's errorType values (web/api/v1); anything else is shown as "unknown".
KNOWN_ERROR_TYPES: Final = frozenset(
    {
        "bad_data",
        "execution",
        "timeout",
        "canceled",
        "internal",
        "unavailable",
        "not_found",
        "not_acceptable",
    }
)
# Error types whose message may be shown, and how much of it.
SHOWN_ERROR_TYPES: Final = frozenset({"bad_data"})
MAX_SHOWN_MESSAGE: Final = 300


@dataclass(frozen=True, slots=True)
class AddressFailure:
    """Why one address gave no usable answer (for messages and logs)."""

    address: str
    reason: str

    def __str__(self) -> str:
        return f"{redact(self.address)}: {self.reason}"


class PrometheusError(Exception):
    """Base class: any reason a query produced no result."""

    #: The ``MetricsAvailable`` condition's reason for this failure.
    condition_reason = "PrometheusUnreachable"


class BadDataReason(StrEnum):
    """Why an answer is unusable; also the condition reason and a metric label."""

    NO_DATA = "NoData"
    UNSUPPORTED_RESULT_TYPE = "UnsupportedResultType"
    VALUE_OUT_OF_RANGE = "ValueOutOfRange"


@dataclass(frozen=True, slots=True)
class BadAnswer:
    """One query whose answer is unusable."""

    kind: str
    query: str
    reason: BadDataReason
    detail: str

    def __str__(self) -> str:
        return f"the {self.kind} query {self.query!r} {self.detail}"


class BadData(PrometheusError):
    """Prometheus answered, but with nothing we may size from (see module doc)."""

    def __init__(self, *, answers: tuple[BadAnswer, ...]) -> None:
        if not answers:
            raise ValueError("BadData needs at least one bad answer")
        self.answers = answers
        self.condition_reason = answers[0].reason.value
        super().__init__("; ".join(str(a) for a in answers))


class PrometheusUnavailable(PrometheusError):
    """No address answered usefully; `failures` says why, per address."""

    def __init__(self, *, failures: tuple[AddressFailure, ...], message: str | None = None) -> None:
        self.failures = failures
        if message is None:
            detail = "; ".join(str(failure) for failure in failures) or "no address configured"
            message = f"no Prometheus address answered: {detail}"
        super().__init__(message)


class QueryFailed(PrometheusError):
    """A Prometheus answered with an error envelope: it rejected the query.

    `error_type` is Prometheus's `errorType` (`bad_data`, `execution`,
    `timeout`, `canceled`, `internal`, ...), `message` its `error` text and
    `status_code` the HTTP status (400, 422, 503, ...). `other_failures`
    lists what happened at the remaining addresses of a hedged query.
    """

    def __init__(
        self,
        *,
        address: str,
        error_type: str,
        message: str,
        status_code: int,
        other_failures: tuple[AddressFailure, ...] = (),
    ) -> None:
        self.address = address
        self.error_type = error_type
        self.message = message
        self.status_code = status_code
        self.other_failures = other_failures
        text = f"Prometheus at {redact(address)} rejected the query: {self.summary}"
        if other_failures:
            text += "; other addresses: " + "; ".join(str(f) for f in other_failures)
        super().__init__(text)

    @property
    def summary(self) -> str:
        """What may be shown: the type, the HTTP status, and for bad_data the message."""
        kind = self.error_type if self.error_type in KNOWN_ERROR_TYPES else "unknown"
        head = f"{kind}, HTTP {self.status_code}"
        if kind in SHOWN_ERROR_TYPES:
            return f"{head}: {self.message[:MAX_SHOWN_MESSAGE]}"
        return f"{head} (Prometheus's message is in the operator's debug log)"

    def with_other_failures(self, others: tuple[AddressFailure, ...]) -> "QueryFailed":
        return QueryFailed(
            address=self.address,
            error_type=self.error_type,
            message=self.message,
            status_code=self.status_code,
            other_failures=others,
        )
