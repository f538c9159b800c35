"""Full garbage collections that examine what changed, not the whole watch cache.

CPython's cyclic collector examines every tracked object of a generation it collects,
and it collects the oldest one whenever the objects promoted into it since the last
time reach a quarter of it. The operator's heap is mostly its watch caches (10,000
watched Deployments, their pods and ReplicaSets), which live for the whole run; every
pass and every burst of writes promotes enough new objects to make a full collection
every few seconds while 10,000 Deployments were created, 0.4 s each: a quarter of the
operator's CPU (measured with ``gc.callbacks`` in the scale bench).

``FrozenSurvivors`` moves what survived a full collection into the permanent generation
(``gc.freeze``), so the next ones examine only what came after. A frozen object is still
freed as soon as nothing refers to it (reference counting does that, not this
collector); what freezing costs is that a reference cycle formed among frozen objects
would not be found. So every ``RESCAN_EVERY``-th full collection unfreezes first and
examines everything, which bounds how long such a cycle can stay.
"""

from __future__ import annotations

import gc
from typing import Any, Final

# One full collection in this many examines the whole heap (see the module docstring).
RESCAN_EVERY: Final = 16
_OLDEST: Final = 2


class FrozenSurvivors:
    """Install with :meth:`install`, remove with :meth:`uninstall` (which unfreezes)."""

    def __init__(self, *, rescan_every: int = RESCAN_EVERY) -> None:
        if rescan_every < 1:
            raise ValueError(f"rescan_every must be >= 1, got {rescan_every}")
        self._rescan_every = rescan_every
        self.full_collections = 0

    def install(self) -> None:
        if self._after not in gc.callbacks:
            gc.callbacks.append(self._after)

    def uninstall(self) -> None:
        if self._after in gc.callbacks:
            gc.callbacks.remove(self._after)
        gc.unfreeze()

    def _after(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info.get("generation") != _OLDEST:
            return
        self.full_collections += 1
        if self.full_collections % self._rescan_every == 0:
            # The next full collection examines everything frozen so far.
            gc.unfreeze()
        else:
            gc.freeze()
