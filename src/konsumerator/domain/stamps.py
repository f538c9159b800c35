"""The times a Deployment carries, read against the operator's clock.

The scaling annotations hold wall-clock times: ``resizedAt`` and ``peakAt`` in
``scaling-memory``, and ``scaling-status-change``, the start of a pending period.
Whoever led when they were written wrote them with its own clock, so one can be ahead
of ours: a failover to a replica whose clock is behind, an NTP step back, or a hand
edit. Read as it is, such a time has a negative age until the clock gets there. A
``resizedAt`` a day ahead then held back every resize of the instance for a day,
``urgent`` ones included (the minimum gap between resizes never passed), a pending
period that began a day ahead never ended, and a ``peakAt`` a day ahead kept sizing
the instance for that peak.

So a time at most ``SKEW_S`` ahead reads as now: the clocks of two replicas differ by
that much at most, and counting from now makes a gap or a pending period at most
``SKEW_S`` longer. A time further ahead is not a time this operator can measure from,
and reads as unknown: as long ago as a missing one (the codecs read an unreadable time
the same way), so no scale-up waits for it. (The Prometheus cache treats a sync time in
the future as stale for the same reason: ``domain.metrics``.)

But for the start of a pending scale-down (``ahead``): long ago, it would let a dip
shorter than ``pendingScaleDownDuration`` resize the instance at the next pass, which
is what that period is for (a failover from a replica whose clock ran two minutes
ahead restarted the pods three times for a 2.5-minute dip under Recreate). That wait
starts again from now instead (``scaling.restarted``), and the time is written.
"""

from datetime import datetime
from typing import Final

# How far ahead of the operator's clock a written time may be and still count as now.
SKEW_S: Final = 60.0


def ahead(moment: datetime | None, *, now: datetime) -> bool:
    """Whether ``moment`` is more than ``SKEW_S`` ahead of ``now``: not measurable."""
    return moment is not None and (moment - now).total_seconds() > SKEW_S


def age_s(moment: datetime | None, *, now: datetime) -> float:
    """Seconds since ``moment`` at ``now``: infinite for None or a time more than
    ``SKEW_S`` ahead, 0 for one less far ahead."""
    if moment is None:
        return float("inf")
    age = (now - moment).total_seconds()
    if age >= 0:
        return age
    return 0.0 if age >= -SKEW_S else float("inf")
