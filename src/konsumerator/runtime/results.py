"""What a reconcile returns to its controller (``Result``), apart from the controller.

``controllers.reconciling`` returns it, and ``konsumerator simulate`` runs that module
without a controller: importing ``runtime.controlling`` for this one class loaded
structlog (and with it ``rich``, where installed) into every replay.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Result:
    """What a successful reconcile wants next: nothing, another look later, or another
    pass as soon as the keys waiting longer have had theirs (``requeue``)."""

    requeue_after: float | None = None
    requeue: bool = False
