"""What a Pipeline remembers about in-place resizing between passes, per Consumer.

Planning is a pure function of what is observed; three facts about in-place
resizing are not observable on the objects, so this process keeps them
(lost on a restart, which costs at most one more refused attempt):

* which instances' resizes the server refused as invalid (a QoS class
  change, a node that cannot resize): the next pass rolls them out with the
  target size (``rules.roll_out_target``). A refusal belongs to the pods it
  was about: it is forgotten once that rollout is written, and when none of
  those pods is alive any more (an old pod patched while a rollout replaces
  it would otherwise leave a refusal that turns the instance's next, feasible,
  resize into a rollout);
* whether the server has no ``pods/resize`` (Kubernetes before 1.33): the
  Consumer then runs as ``Recreate`` for the life of the process;
* when each pod's resize was sent, so the time until its status shows the
  target (``status.containerStatuses[].resources``) can be measured
  (``konsumerator_consumer_inplace_actuation_seconds``).

It also counts the instances that fell back (``status.inPlace.fellBack``).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from konsumerator.controllers.outcomes import Outcome
from konsumerator.domain.planning import Action, Apply, Plan
from konsumerator.domain.pods import ObservedPod, PodResize
from konsumerator.domain.resources import Resources


@dataclass(slots=True)
class _Consumer:
    # instance -> (the pods whose resize was refused, why)
    refused: dict[str, tuple[frozenset[str], str]] = field(default_factory=dict)
    unsupported: bool = False
    fell_back: set[str] = field(default_factory=set)
    # pod UID -> (what it was patched to, when)
    sent: dict[str, tuple[Mapping[str, Resources], datetime]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Effects:
    """What one pass's act step meant for in-place resizing, for metrics."""

    outcomes: Mapping[str, int]
    actuation_s: tuple[float, ...]


class ResizeMemory:
    def __init__(self) -> None:
        self._consumers: dict[str, _Consumer] = {}

    def refused(self, key: str, *, pods: Iterable[ObservedPod]) -> Mapping[str, str]:
        """Why each instance's in-place resize was refused, while a refused pod lives."""
        c = self._consumers.get(key)
        if c is None or not c.refused:
            return {}
        alive = {p.uid for p in pods if not p.deleting}
        for name, (uids, _) in list(c.refused.items()):
            if not uids & alive:
                del c.refused[name]
        return {name: why for name, (_, why) in c.refused.items()}

    def unsupported(self, key: str) -> bool:
        c = self._consumers.get(key)
        return c is not None and c.unsupported

    def fell_back(self, key: str) -> int:
        c = self._consumers.get(key)
        return len(c.fell_back) if c is not None else 0

    def forget(self, key: str) -> None:
        self._consumers.pop(key, None)

    def actuated(self, key: str, *, pods: Iterable[ObservedPod], now: datetime) -> list[float]:
        """Seconds from sending to actuation of every pod whose status now shows what
        it was patched to; pods that are gone are dropped."""
        c = self._consumers.get(key)
        if c is None or not c.sent:
            return []
        seen = {p.uid: p for p in pods}
        done: list[float] = []
        for uid, (target, at) in list(c.sent.items()):
            pod = seen.get(uid)
            if pod is None or pod.deleting:
                del c.sent[uid]
            elif pod.actuated(target):
                del c.sent[uid]
                done.append(max(0.0, (now - at).total_seconds()))
        return done

    def acted(self, key: str, *, plan: Plan, outcome: Outcome, now: datetime) -> dict[str, int]:
        """Remember what the act step found; the outcome counts (``RESIZE_OUTCOMES``)."""
        c = self._consumers.setdefault(key, _Consumer())
        rolled_out = {
            item.name
            for item in outcome.done
            if isinstance(item, Apply) and item.action in (Action.ROLLOUT, Action.CREATE)
        }
        fell_back = {
            item.name for item in outcome.done if isinstance(item, Apply) and item.fell_back
        }
        for name in rolled_out:
            c.refused.pop(name, None)
        for name, why in outcome.resize_refused.items():
            if name not in rolled_out:
                uids = frozenset(r.uid for r in plan.resizes if r.instance == name)
                c.refused[name] = (uids, why)
        c.unsupported |= outcome.resize_unsupported
        c.fell_back |= fell_back
        _sent(c, outcome.resized, now=now)
        return {
            "patched": len(outcome.resized),
            "refused": len(outcome.resize_refused),
            "failed": outcome.refused.get("resize", 0),
            "unsupported": int(outcome.resize_unsupported),
            "fell_back": len(fell_back),
        }


def _sent(c: _Consumer, resized: Iterable[PodResize], *, now: datetime) -> None:
    for item in resized:
        previous = c.sent.get(item.uid)
        merged = {**(previous[0] if previous else {}), **item.containers}
        # The clock runs from the first patch not yet actuated.
        c.sent[item.uid] = (merged, previous[1] if previous else now)
