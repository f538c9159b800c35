"""The rate an instance must be able to sustain, under the adaptive policy.

For each partition p with production λ (msg/s) and backlog b (messages)::

    need_p = max(λ / u, λ · (1 + R / T)) + max(0, b − λ · R) / T

* ``λ / u`` (the *headroom* term): run at target utilisation ``u`` at most,
  so the instance is scaled up before lag builds, when the utilisation it
  would need passes the high-water mark ``u``;
* ``λ · (1 + R / T)`` (the *restart* term): a resize stops consumption for
  the actuation time ``R``, which leaves ``λ · R`` messages that must be
  drained within ``recoveryTime`` ``T``;
* the two are not added: the headroom that is there anyway drains the
  restart's backlog (adding them double-counts);
* the backlog term is what is behind *beyond* one actuation's worth
  (``λ · R``), which the restart term already pays for: counting it twice
  made every resize ask for the next one.

That need sizes a resize; its headroom part alone (λ/u, with the backlog
term: ``policy.headroom_share``) says whether an instance's CPU is enough,
since the restart term is the cost of a resize and must not ask for one.
A scale-up is *sized* for its own restart as well (``restart_need``,
``min(b, λ · R) / T`` per partition): the resize leaves ``b + λ · R`` behind,
and draining all of it within ``T`` takes ``λ · (1 + R / T) + b / T``. Sized
for the excess alone, the instance that comes back from the restart is short
by ``λ · R / T`` of its own backlog, which asks for the next scale-up, whose
restart adds ``λ · R`` more: a resize storm under Recreate.

The instance's need is the sum over its partitions. Partitions without a
production sample borrow the largest known partition's need, as in the naive
predictor (under-sizing because one series went missing is worse).
"""

import math
from collections.abc import Sequence
from enum import StrEnum

import msgspec

from konsumerator.domain.metrics import MetricsSnapshot


class Term(StrEnum):
    """Which term set the production need (shown in the explanation)."""

    HEADROOM = "headroom"
    RESTART = "restart"


# A msgspec Struct (frozen, hashable), built in C: see ``memory.Memory``.
class Demand(msgspec.Struct, frozen=True, gc=False):
    """What an instance needs, in msg/s, and the parts it is made of."""

    production: float  # Σ λ
    backlog: float  # Σ b (messages)
    production_need: float  # Σ max(λ/u, λ(1+R/T))
    backlog_need: float  # Σ max(0, b − λR) / T
    term: Term
    # Σ min(b, λR) / T: what a scale-up adds to be sized for its own restart.
    restart_need: float = 0.0

    @property
    def total(self) -> float:
        return self.production_need + self.backlog_need


def _finite(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) and value > 0 else 0.0


def partition_need(
    *, production: float, backlog: float, utilization: float, recovery_s: float, actuation_s: float
) -> tuple[float, float]:
    """(production need, backlog need) of one partition, in msg/s."""
    headroom = production / utilization
    restart = production * (1 + actuation_s / recovery_s)
    excess = max(0.0, backlog - production * actuation_s)
    return max(headroom, restart), excess / recovery_s


def restart_need(
    *, production: float, backlog: float, recovery_s: float, actuation_s: float
) -> float:
    """What a scale-up adds for its own restart, in msg/s: ``min(b, λ · R) / T``.

    The backlog term leaves out one actuation's worth (``λ · R``); a resize
    that is applied adds that much behind again, so the size it goes to drains
    it as well.
    """
    return min(backlog, production * actuation_s) / recovery_s


_HEADROOM = Term.HEADROOM
_RESTART = Term.RESTART
_ISFINITE = math.isfinite


def instance_demand(
    *,
    snapshot: MetricsSnapshot,
    partitions: Sequence[int],
    utilization: float,
    recovery_s: float,
    actuation_s: float,
) -> Demand:
    """The instance's need; missing partitions borrow the largest known partition's.

    Each partition's terms are ``partition_need`` and ``restart_need``, written out
    inline (every instance of every pass that refreshes metrics under the adaptive
    predictor): the same expressions in the same order, so the same floats. The
    sums are ``sum``'s, which an instance of one partition (the common case) skips:
    ``0 + x`` is ``x`` for the non-negative terms. A test compares it with the plain
    definition.
    """
    production_of, offset_of = snapshot.production.get, snapshot.offset.get
    # ``1 + actuation_s / recovery_s``, the restart term's factor, as evaluated there.
    factor = 1 + actuation_s / recovery_s
    term = _HEADROOM if 1 / utilization >= factor else _RESTART
    if len(partitions) == 1:
        rate = production_of(partitions[0])
        if rate is None:
            # No sample and nothing to borrow: every term is 0.
            return Demand(
                production=0.0,
                backlog=0.0,
                production_need=0.0,
                backlog_need=0.0,
                term=term,
                restart_need=0.0,
            )
        lam = rate if _ISFINITE(rate) and rate > 0 else 0.0
        behind = offset_of(partitions[0])
        if behind is None or not (_ISFINITE(behind) and behind > 0):
            behind = 0.0
        return Demand(
            production=0.0 + lam,
            backlog=0.0 + behind,
            production_need=0 + max(lam / utilization, lam * factor),
            backlog_need=0 + max(0.0, behind - lam * actuation_s) / recovery_s,
            term=term,
            restart_need=0 + min(behind, lam * actuation_s) / recovery_s,
        )
    needs: list[tuple[float, float, float] | None] = []
    production = backlog = 0.0
    for p in partitions:
        rate = production_of(p)
        if rate is None:
            needs.append(None)
            continue
        lam = rate if _ISFINITE(rate) and rate > 0 else 0.0
        behind = offset_of(p)
        if behind is None or not (_ISFINITE(behind) and behind > 0):
            behind = 0.0
        production += lam
        backlog += behind
        needs.append(
            (
                max(lam / utilization, lam * factor),
                max(0.0, behind - lam * actuation_s) / recovery_s,
                min(behind, lam * actuation_s) / recovery_s,
            )
        )
    known = [n for n in needs if n is not None]
    largest = max(known, key=lambda n: n[0] + n[1], default=(0.0, 0.0, 0.0))
    filled = [n if n is not None else largest for n in needs]
    return Demand(
        production=production,
        backlog=backlog,
        production_need=sum(n[0] for n in filled),
        backlog_need=sum(n[1] for n in filled),
        term=term,
        restart_need=sum(n[2] for n in filled),
    )
