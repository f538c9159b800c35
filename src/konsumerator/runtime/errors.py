"""Typed API errors, classified once at the edge.

The kube layer turns every non-2xx answer of the API server (and every
transport failure) into one of these classes, so that the runtime and the
controllers decide on *what happened*, never on status codes or ``Status``
bodies. The split follows what a caller does next:

- ``Conflict`` (409): someone else wrote first, or the object already exists.
  Re-read from the cache and try again; not worth a warning.
- ``NotFound`` (404): usually fine for deletes; a bug or a race otherwise.
- ``Gone`` (410): a watch or a paginated list asked for a resourceVersion that
  etcd has compacted. The only cure is a fresh LIST.
- ``Invalid`` (422): the request body is wrong. Retrying the same body cannot
  help; the field causes say why.
- ``TooManyRequests`` (429): API Priority and Fairness pushed back; wait at
  least ``retry_after`` seconds.
- ``ServerError`` (5xx) and ``Unreachable`` (no HTTP answer at all): transient.
- ``NotLeading``: not from the server at all. With leader election, a write
  is refused before it starts once this process cannot be sure it still
  holds the lease (see ``runtime.electing``). An ``ApiError`` so that every
  caller treats it as the failed write it is.

``Retryable`` marks a failure the reconciler classified and reported; it is
retried with backoff and logged without a traceback, like API errors.

``TerminalError`` is not an API error: a reconciler raises it to say "retrying
will not help until the object changes" (controller-runtime's
``reconcile.TerminalError``). The controller logs it and does not requeue; the
reconciler is expected to have reported it in a status condition or an Event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldCause:
    """One entry of ``Status.details.causes``: which field and why."""

    field: str
    reason: str
    message: str


class ApiError(Exception):
    """Any failed request to the API server."""

    def __init__(self, *, status: int, reason: str = "", message: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" if reason else f"{status}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Unauthorized(ApiError):
    """401: the credentials were rejected."""


class Forbidden(ApiError):
    """403: RBAC does not allow the verb on the resource."""


class NotFound(ApiError):
    """404: the object (or its namespace, or its API) does not exist."""


class Conflict(ApiError):
    """409: optimistic-concurrency failure (stale resourceVersion or uid precondition)."""


class AlreadyExists(Conflict):
    """409 with reason AlreadyExists: a create lost a race with another create."""


class Gone(ApiError):
    """410: the requested resourceVersion has been compacted away; relist."""


class Invalid(ApiError):
    """422: the object failed validation; ``causes`` carries the field errors."""

    def __init__(
        self,
        *,
        status: int = 422,
        reason: str = "Invalid",
        message: str = "",
        causes: Sequence[FieldCause] = (),
    ) -> None:
        super().__init__(status=status, reason=reason, message=message)
        self.causes: tuple[FieldCause, ...] = tuple(causes)


class TooManyRequests(ApiError):
    """429: throttled by API Priority and Fairness; wait ``retry_after`` seconds."""

    def __init__(
        self,
        *,
        status: int = 429,
        reason: str = "TooManyRequests",
        message: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status=status, reason=reason, message=message)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx (and any other unexpected status): transient from our point of view."""


class Unreachable(ApiError):
    """No HTTP answer at all: connection refused, TLS failure, timeout, reset."""

    def __init__(self, *, message: str) -> None:
        super().__init__(status=0, reason="Unreachable", message=message)


class NotLeading(ApiError):
    """A write refused before it started: this process is not (or may no longer be)
    the leader. Nothing was sent; the new leader will do what is still needed."""

    def __init__(self, *, message: str) -> None:
        super().__init__(status=0, reason="NotLeading", message=message)


class TerminalError(Exception):
    """Raised by a reconciler: do not retry until the object itself changes."""


class Retryable(Exception):
    """Raised by a reconciler for a failure it has classified and reported.

    Retried with backoff like any error, but logged in one line: the reconciler
    knows what went wrong (a write the apiserver refused, say) and has said so
    in the status, so a traceback would only bury the message. Tracebacks are
    kept for exceptions nobody expected: those are bugs.

    ``requeue_after``: the reconcile is due again after that many seconds at the
    latest, however long the backoff has grown (a failure of one part of the
    object's work must not put off the rest, which its next pass does): the key is
    due at whichever comes first.
    """

    def __init__(self, *args: object, requeue_after: float | None = None) -> None:
        super().__init__(*args)
        self.requeue_after = requeue_after
