"""When to look again at a Consumer whose instance names are held by others.

A pass that finds an instance's name held by a Deployment that is not its own
(NameConflict) cannot rely on an event to say the name is free: the holder may
be a Deployment the watch never shows us (not labelled as ours: a user's). So,
as controller-runtime's ``RequeueAfter`` would, it looks again after
``BASE_S``, doubling while the conflict lasts up to ``CAP_S``, and starts over
once a pass finds no conflict. ``app.build`` also routes our labelled
Deployments' events to the Consumer their ``controller`` label names, which
wakes it at once in the common cases (a re-created Consumer, an edited
ownerReference); this timer bounds the rest. A permanent conflict costs one
pass (and one Warning Event, aggregated by the recorder) per ``CAP_S``, never a
hot loop.
"""

import random

from konsumerator.runtime.limiting import ItemExponentialLimiter

BASE_S = 2.0
CAP_S = 120.0


class ConflictRecheck:
    def __init__(self, *, rng: random.Random | None = None) -> None:
        # Jitter (up to 10 % longer) spreads the rechecks of many Consumers.
        self._delays = ItemExponentialLimiter(base=BASE_S, cap=CAP_S, rng=rng)

    def requeue_after(self, *, key: str, conflicted: bool, planned: float | None) -> float | None:
        """The delay before the next pass: the planned one (``None``: none), or sooner
        while a conflict lasts."""
        if not conflicted:
            self._delays.forget(key)
            return planned
        recheck = self._delays.when(key)
        return recheck if planned is None else min(recheck, planned)

    def forget(self, key: str) -> None:
        self._delays.forget(key)
