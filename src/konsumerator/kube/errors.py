"""HTTP answers and transport failures → ``konsumerator.runtime.errors``, in one place.

The API server explains failures in a ``Status`` object (``reason``,
``message``, ``details.causes``, ``details.retryAfterSeconds``); watch streams
carry the same object inside an ``ERROR`` event. Both paths come here, so a
410 is ``Gone`` whether it arrived as an HTTP status or mid-stream, and a 422
always carries its field causes. Bodies that are not a Status (a proxy's HTML
error page) still map by status code.
"""

from __future__ import annotations

import contextlib

import msgspec

from konsumerator.runtime import errors


class _Cause(msgspec.Struct):
    field: str = ""
    reason: str = ""
    message: str = ""


class _Details(msgspec.Struct, rename="camel"):
    causes: list[_Cause] = []
    retry_after_seconds: int | None = None


class StatusWire(msgspec.Struct):
    """core/v1 Status, as much of it as we use."""

    code: int = 0
    reason: str = ""
    message: str = ""
    details: _Details | None = None


_status_decoder = msgspec.json.Decoder(StatusWire)


class OversizedWatchEvent(errors.ApiError):
    """A watch event line longer than any object the API server can hold.

    Not a Status from the server: raised while reading the stream, which is
    then dropped; the reflector backs off and watches again (and reports
    itself stalled on ``/healthz`` if it keeps happening).
    """

    def __init__(self, *, limit: int) -> None:
        super().__init__(
            status=0,
            reason="OversizedWatchEvent",
            message=f"a watch event longer than {limit} bytes",
        )


def decode_status(body: bytes) -> StatusWire | None:
    try:
        return _status_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def from_status(status: StatusWire, *, http_status: int = 0) -> errors.ApiError:
    """Classify a decoded Status (from a response body or an ERROR event)."""
    code = status.code or http_status
    details = status.details or _Details()
    return classify(
        code=code,
        reason=status.reason,
        message=status.message,
        causes=[errors.FieldCause(c.field, c.reason, c.message) for c in details.causes],
        retry_after=float(details.retry_after_seconds) if details.retry_after_seconds else None,
    )


def from_response(*, http_status: int, body: bytes, retry_after: str | None) -> errors.ApiError:
    """Classify a non-2xx HTTP response."""
    status = decode_status(body) or StatusWire(
        code=http_status, message=body[:200].decode(errors="replace")
    )
    error = from_status(status, http_status=http_status)
    if isinstance(error, errors.TooManyRequests) and retry_after:
        # An HTTP-date instead of seconds is ignored; the backoff still applies.
        with contextlib.suppress(ValueError):
            error.retry_after = max(error.retry_after or 0.0, float(retry_after))
    return error


def from_transport(exc: Exception) -> errors.Unreachable:
    return errors.Unreachable(message=f"{type(exc).__name__}: {exc}")


def classify(
    *,
    code: int,
    reason: str,
    message: str,
    causes: list[errors.FieldCause],
    retry_after: float | None,
) -> errors.ApiError:
    if code == 401:
        return errors.Unauthorized(status=code, reason=reason, message=message)
    if code == 403:
        return errors.Forbidden(status=code, reason=reason, message=message)
    if code == 404:
        return errors.NotFound(status=code, reason=reason, message=message)
    if code == 409:
        if reason == "AlreadyExists":
            return errors.AlreadyExists(status=code, reason=reason, message=message)
        return errors.Conflict(status=code, reason=reason, message=message)
    if code == 410:
        return errors.Gone(status=code, reason=reason, message=message)
    if code == 422 or reason == "Invalid":
        return errors.Invalid(status=code, reason=reason, message=message, causes=causes)
    if code == 429:
        return errors.TooManyRequests(
            status=code, reason=reason, message=message, retry_after=retry_after
        )
    if code == 400:
        # BadRequest: a malformed request is as unretriable as an invalid one.
        return errors.Invalid(
            status=code, reason=reason or "BadRequest", message=message, causes=causes
        )
    return errors.ServerError(status=code, reason=reason, message=message)
