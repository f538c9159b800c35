"""What the act step did (``Outcome``), apart from how it does it (``acting``).

The pipeline, the reporters and ``konsumerator simulate`` read an outcome; only the
operator's actuator (``acting.KubeActuator``) talks to the API server to make one. Kept
here, without the Kubernetes client, so that ``simulate`` does not load it.
"""

from collections import Counter
from dataclasses import dataclass, field

from konsumerator.domain.planning import Action, Apply, Delete
from konsumerator.domain.pods import PodResize


@dataclass(slots=True)
class Outcome:
    """What one act step did: the writes done, failed and left for the next pass."""

    done: list[Apply | Delete] = field(default_factory=list)
    # The creations among ``done``: name -> the UID of the Deployment made (or found ours).
    created: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    # Failed writes by kind (``write_kind``), for the per-Consumer error counters.
    refused: Counter[str] = field(default_factory=Counter)
    # Conflicts of the optimistic kind (409 on a write): a retry will do.
    retry: bool = False
    # In-place mode: the pod resizes done; why one was refused, by instance; and
    # whether the server has no ``pods/resize`` at all.
    resized: list[PodResize] = field(default_factory=list)
    resize_refused: dict[str, str] = field(default_factory=dict)
    resize_unsupported: bool = False
    # Writes of the plan left for the next pass (beyond ``SLICE``).
    deferred: int = 0


def write_kind(item: Apply | Delete) -> str:
    """``create``, ``update`` or ``delete``: the Go operator's kinds of Deployment write."""
    if isinstance(item, Delete):
        return "delete"
    return "create" if item.action is Action.CREATE else "update"
