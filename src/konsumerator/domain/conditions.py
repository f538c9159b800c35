"""Status conditions: one condition, how a pass's conditions replace the last ones, and
how long their messages may be.

A condition's ``lastTransitionTime`` moves only when its status flips
(:func:`merge_conditions`), as Kubernetes' own conditions do
(``k8s.io/apimachinery pkg/api/meta`` ``SetStatusCondition``). Every message is at
most ``MESSAGE_LIMIT`` characters, lists of names included, so a status stays bounded
whatever the number of instances.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from konsumerator.domain.rendering import format_time

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

# Characters of one condition message (and of an Event's, see kube.eventing).
MESSAGE_LIMIT: Final = 1024


@dataclass(frozen=True, slots=True)
class Condition:
    """One status condition; ``last_transition_time`` is RFC 3339 text, as the object holds it."""

    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str = ""
    observed_generation: int | None = None

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
        }
        if self.last_transition_time:
            body["lastTransitionTime"] = self.last_transition_time
        if self.observed_generation is not None:
            body["observedGeneration"] = self.observed_generation
        return body

    @staticmethod
    def from_body(raw: object) -> "Condition | None":
        """A condition as read back; None for something that is not one (a hand edit)."""
        if not isinstance(raw, Mapping):
            return None
        kind, status = raw.get("type"), raw.get("status")
        if not isinstance(kind, str) or not isinstance(status, str):
            return None
        since, generation = raw.get("lastTransitionTime"), raw.get("observedGeneration")
        return Condition(
            type=kind,
            status=status,
            reason=_text(raw.get("reason")),
            message=_text(raw.get("message")),
            last_transition_time=since if isinstance(since, str) else "",
            observed_generation=generation if is_int(generation) else None,
        )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def is_int(value: object) -> bool:
    """A JSON integer (a bool is not one, though Python says it is an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def merge_conditions(
    *,
    previous: Sequence[Condition],
    current: Sequence[Condition],
    now: datetime,
    generation: int,
) -> tuple[Condition, ...]:
    """``current``, keeping a previous ``lastTransitionTime`` where the status did not flip."""
    before = {c.type: c for c in previous}
    merged = []
    for c in current:
        old = before.get(c.type)
        kept = old is not None and old.status == c.status and old.last_transition_time
        since = old.last_transition_time if kept and old is not None else format_time(now)
        # Built directly, not with dataclasses.replace: this runs three times a pass.
        merged.append(
            Condition(
                type=c.type,
                status=c.status,
                reason=c.reason,
                message=c.message,
                last_transition_time=since,
                observed_generation=generation,
            )
        )
    return tuple(merged)


def bounded(text: str, *, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def listing(prefix: str, names: Sequence[str], *, limit: int = MESSAGE_LIMIT) -> str:
    """``prefix`` and as many of ``names`` as fit ``limit`` characters, then "and N more"."""
    reserve = len(f" and {len(names)} more")
    shown: list[str] = []
    # ``len(prefix + ", ".join(shown))``, kept as names are added: joining them again
    # for each name cost quadratic time (a Saturated message of a few dozen names is
    # written on every pass that has them).
    length = len(prefix)
    for name in names:
        added = len(name) + (2 if shown else 0)
        if length + added + reserve > limit:
            break
        length += added
        shown.append(name)
    text = prefix + ", ".join(shown)
    hidden = len(names) - len(shown)
    return bounded(text + (f" and {hidden} more" if hidden else ""), limit=limit)
