"""Rate limiters and backoffs, after client-go's ``workqueue`` rate limiters.

Two questions get two answers:

- *How long should this key wait before its next retry?* Per-key exponential
  backoff, 5 ms doubling up to 1000 s, with a little jitter so that a burst of
  keys failing together does not retry in lockstep
  (``ItemExponentialLimiter``).
- *How fast may the whole controller retry?* A token bucket (10 qps, burst
  100) shared by every key, so that a systemic failure (the API server is
  down, Prometheus is down) cannot turn into a retry storm (``TokenBucket``).

``MaxOfLimiter`` combines both as client-go's ``DefaultControllerRateLimiter``
does: a key waits for whichever is later. ``Backoff`` is the simpler jittered
exponential backoff used by the reflector and the leader elector for their own
retries (client-go's reflector: 800 ms doubling up to 30 s).
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import Protocol

from konsumerator.runtime.clocks import Clock, loop_clock


class RateLimiter(Protocol):
    def when(self, key: Hashable) -> float:
        """Seconds this key should wait before it is retried (records a failure)."""
        ...

    def forget(self, key: Hashable) -> None:
        """The key succeeded: its next failure starts from the base delay again."""
        ...

    def num_requeues(self, key: Hashable) -> int: ...


class ItemExponentialLimiter:
    """Per-key ``base * 2**failures``, capped, with multiplicative jitter.

    Jitter only ever lengthens the delay (by up to ``jitter`` of it) and the
    cap applies after it, so the delay stays within [base, cap].
    """

    def __init__(
        self,
        *,
        base: float = 0.005,
        cap: float = 1000.0,
        jitter: float = 0.1,
        rng: random.Random | None = None,
    ) -> None:
        self._base = base
        self._cap = cap
        self._jitter = jitter
        self._rng = rng or random.Random()
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        # 2**failures overflows float long after the cap is reached; clamp first.
        delay = self._base * 2.0 ** min(failures, 64)
        delay *= 1.0 + self._jitter * self._rng.random()
        return min(delay, self._cap)

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: Hashable) -> int:
        return self._failures.get(key, 0)


class TokenBucket:
    """Tokens refill at ``qps`` up to ``burst``; taking one may mean waiting.

    Like Go's ``rate.Limiter.Reserve``: the token is always granted, the bucket
    may go negative, and the returned delay is how long until that token would
    have existed. Callers must honour the delay, not retry the reservation.
    """

    def __init__(self, *, qps: float = 10.0, burst: int = 100, clock: Clock = loop_clock) -> None:
        self._qps = qps
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last: float | None = None

    def reserve(self) -> float:
        now = self._clock()
        if self._last is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._qps

    def try_take(self) -> bool:
        """Take a token only if one is available now (for dropping, not delaying)."""
        now = self._clock()
        if self._last is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class MaxOfLimiter:
    """A key waits for the later of its own backoff and the shared bucket."""

    def __init__(self, *, item: ItemExponentialLimiter, bucket: TokenBucket) -> None:
        self._item = item
        self._bucket = bucket

    def when(self, key: Hashable) -> float:
        return max(self._item.when(key), self._bucket.reserve())

    def forget(self, key: Hashable) -> None:
        self._item.forget(key)

    def num_requeues(self, key: Hashable) -> int:
        return self._item.num_requeues(key)


def default_controller_rate_limiter(
    *, rng: random.Random | None = None, clock: Clock = loop_clock
) -> MaxOfLimiter:
    """client-go's ``DefaultControllerRateLimiter``: 5 ms→1000 s per key, 10 qps/100 burst."""
    return MaxOfLimiter(
        item=ItemExponentialLimiter(base=0.005, cap=1000.0, rng=rng),
        bucket=TokenBucket(qps=10.0, burst=100, clock=clock),
    )


class Backoff:
    """Jittered exponential backoff for a single retrying loop.

    ``next()`` returns ``initial * factor**n`` capped at ``cap``, multiplied by
    a random factor in [1, 1 + jitter); ``reset()`` after a success.
    """

    def __init__(
        self,
        *,
        initial: float = 0.8,
        cap: float = 30.0,
        factor: float = 2.0,
        jitter: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self._initial = initial
        self._cap = cap
        self._factor = factor
        self._jitter = jitter
        self._rng = rng or random.Random()
        self._attempts = 0

    @property
    def attempts(self) -> int:
        return self._attempts

    def next(self) -> float:
        delay = min(self._initial * self._factor ** min(self._attempts, 64), self._cap)
        self._attempts += 1
        return delay * (1.0 + self._jitter * self._rng.random())

    def reset(self) -> None:
        self._attempts = 0
