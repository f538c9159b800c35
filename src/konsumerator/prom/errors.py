"""Typed failures of talking to Prometheus.

Two outcomes matter to callers and they call for different reactions:

- `PrometheusUnavailable`: no address produced a usable answer (connection
  refused, DNS, timeout, a proxy's 502, a body that is not a Prometheus
  envelope, an unparsable address). Transient as far as we can tell; the
  provider keeps the last complete snapshot and tries again later.
- `QueryFailed`: a Prometheus answered and rejected the query (`bad_data`
  for invalid PromQL, `execution`, `timeout`, ...). Usually a mistake in the
  Consumer spec, so the message carries Prometheus's own words to surface in
  status conditions and events.

When every address fails and at least one of them answered with a rejection,
`QueryFailed` wins: a Prometheus did answer, so "unavailable" would send the
operator's user looking in the wrong place.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AddressFailure:
    """Why one address gave no usable answer (for messages and logs)."""

    address: str
    reason: str

    def __str__(self) -> str:
        return f"{self.address}: {self.reason}"


class PrometheusError(Exception):
    """Base class: any reason a query produced no result."""


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
        text = f"Prometheus at {address} rejected the query ({error_type}, HTTP {status_code}): "
        text += message
        if other_failures:
            text += "; other addresses: " + "; ".join(str(f) for f in other_failures)
        super().__init__(text)

    def with_other_failures(self, others: tuple[AddressFailure, ...]) -> "QueryFailed":
        return QueryFailed(
            address=self.address,
            error_type=self.error_type,
            message=self.message,
            status_code=self.status_code,
            other_failures=others,
        )
