"""Adopting an instance the adaptive predictor did not size: its size is kept while it keeps up.

An upgrade that makes ``adaptive`` the default (the CRD's default reaches every
Consumer stored without ``predictor``), or a Consumer switched from ``naive``, hands the
adaptive predictor Deployments sized by ``naive``: production at exactly
``ratePerCore``, rounded up to ``cpuIncrement``, no headroom. The headroom λ/u alone
asks every instance whose rounding left it less than 1/u − 1 to spare for a scale-up,
and all of them wait out the same ``pendingScaleUpDuration`` from the same pass: under
``Recreate`` 391 of 1,000 steady instances were restarted in one pass, 2.5 minutes after
the upgrade (``konsumerator simulate``'s replay, switched from naive mid-run), a third of
a consumer group paused at once for headroom that none of them lacked to keep up.

So an instance the adaptive predictor has not resized yet (no ``resizedAt`` in its
memory: it was never created or resized under it) is *adopted* as it is: while it keeps
up, a scale-up is asked for only once production itself (plus the backlog's need)
passes what its CPU gives, as ``naive`` would have asked.

Keeping up means every partition within one actuation's worth of its production
(``policy.drained``, λ·R: 30 s under ``Recreate``), as for every other rule; beyond it
the backlog's own term asks. But an instance already waiting for a scale-up
(``PENDING_SCALE_UP``) and behind by more than what is in flight (``policy.emptied``,
5 s) is not kept at its production: it is falling behind, and the wait runs out. Without
that an instance whose production crossed its CPU only every other sync (700 and 550
msg/s on a request consuming 600) went back to its adopted size at each low sync, which
started its ``pendingScaleUpDuration`` again, until its backlog passed 30 s: scaled up 13
minutes late. An instance reads as adopted whenever anyone removes or garbles its
``scaling-memory`` (never resized), so such an edit did that to any instance. The 5 s
apply only to a wait that began: a fleet that keeps up read through Kafka's auto-commit
(committed every 5 s by default, at the next poll: up to 5 s and a poll's batch behind)
does not start one, where a 5 s bound on keeping up restarted one instance in ten every
2 hours for headroom alone. A steady adopted instance whose production crosses its CPU
now and then leaves next to nothing behind (a sync 1 % over its CPU leaves 0.3 s), and
the next sync under its CPU ends the wait; read through auto-commit it may not (5-6.5 s
behind), and such an instance is restarted once for its headroom (docs/compatibility.md,
row 70, has the figures of that trade).

The headroom comes with the first resize that has a reason of its own (production
outgrowing the size, a lag, a template rollout), sized by the adaptive rules in full;
from then on the instance is the adaptive predictor's. A scale-down is unaffected: it
keeps the restart term (``policy.Sized.rate``), above what ``naive`` gave.
"""

import math
from collections.abc import Sequence

from konsumerator.domain.adaptive.memory import Memory
from konsumerator.domain.adaptive.policy import Sized, drained, emptied
from konsumerator.domain.metrics import MetricsSnapshot


def adopted(memory: Memory | None) -> bool:
    """Whether the instance has not been created or resized by the adaptive predictor.

    An unreadable ``resizedAt`` reads as absent too: the instance then keeps its size
    until a reason to resize it, the cautious reading.
    """
    return memory is None or memory.resized_at is None


def production_rate(sized: Sized) -> int:
    """msg/s of production and backlog, without headroom: what ``naive`` sized for.

    This sync's production, not the recent peak (``Sized.peak``): ``naive``'s sizes
    followed it through ``pendingScaleUpDuration``, and the peak of a few noisy syncs
    is above it, which asked the instances whose CPU is within the noise of their
    production (33 of the 1,000) to restart in the same pass.
    """
    d = sized.demand
    rate = d.production + d.backlog_need
    return math.ceil(rate) if math.isfinite(rate) else sized.asks


def asks(
    *,
    sized: Sized,
    memory: Memory | None,
    waiting: bool,
    snapshot: MetricsSnapshot,
    partitions: Sequence[int],
    actuation_s: float,
) -> int:
    """The rate whose CPU the current size is compared with, to scale up.

    ``Sized.asks`` unless the instance is adopted and keeps up (``drained``), and is
    not ``waiting`` for a scale-up with more than in flight behind (``emptied``): then
    no more than its production (``production_rate``).
    """
    if not adopted(memory) or not drained(
        snapshot=snapshot, partitions=partitions, actuation_s=actuation_s
    ):
        return sized.asks
    if waiting and not emptied(snapshot=snapshot, partitions=partitions):
        return sized.asks
    return min(sized.asks, production_rate(sized))


# The rule an adopted instance's explanation names while its size is kept.
HELD = (
    "sized before the adaptive predictor; while it keeps up, a scale-up waits until"
    " production passes its CPU"
)
