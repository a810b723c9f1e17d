"""Per-device circuit breaker: skip a failing device, probe it now and then.

One :class:`CircuitBreaker` per device (a unit id on a link). While the
device answers, the breaker is ``closed`` and every request goes out. A
failure opens it: the device is skipped until a backoff delay passes, then
one probe request is allowed (``half_open``). A good probe closes the
breaker; a failed one opens it again with a longer delay.

Delays grow exponentially from ``min_delay_s`` to ``max_delay_s`` and are
jittered (each delay is drawn from ``[delay * (1 - jitter), delay]``) so
that many devices that failed together do not probe together. Time comes
from the injectable :class:`~gateway.clock.Clock`; randomness from an
injectable :class:`random.Random`.
"""

from __future__ import annotations

import enum
import random

from gateway.clock import Clock, SystemClock

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # healthy: every request goes out
    OPEN = "open"  # failing: skipped until next_try
    HALF_OPEN = "half_open"  # one probe in flight


class CircuitBreaker:
    """Backoff state of one device."""

    def __init__(
        self,
        *,
        min_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < min_delay_s <= max_delay_s:
            raise ValueError(
                f"breaker delays need 0 < min_delay_s <= max_delay_s, "
                f"got {min_delay_s!r} and {max_delay_s!r}"
            )
        if factor < 1:
            raise ValueError(f"breaker factor must be >= 1, got {factor!r}")
        if not 0 <= jitter < 1:
            raise ValueError(f"breaker jitter must be in [0, 1), got {jitter!r}")
        self.min_delay_s = min_delay_s
        self.max_delay_s = max_delay_s
        self.factor = factor
        self.jitter = jitter
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self.state = BreakerState.CLOSED
        self.failures = 0  # consecutive failures
        self.next_try = 0.0  # clock.monotonic() when the next probe may go
        self.last_error: BaseException | None = None

    def allow(self) -> bool:
        """May a request go to the device now? In ``open`` state a True starts the probe."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN:
            return False  # the probe is still out
        if self._clock.monotonic() >= self.next_try:
            self.state = BreakerState.HALF_OPEN
            return True
        return False

    def success(self) -> None:
        """The device answered: close the breaker and forget the failures."""
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.last_error = None

    def failure(self, error: BaseException | None = None) -> float:
        """The device failed: open the breaker; returns the backoff delay in seconds."""
        self.failures += 1
        self.last_error = error
        delay = self.delay_for(self.failures)
        self.state = BreakerState.OPEN
        self.next_try = self._clock.monotonic() + delay
        return delay

    def delay_for(self, failures: int) -> float:
        """Jittered backoff after ``failures`` consecutive failures."""
        exponent = min(failures - 1, 64)  # no float overflow on long outages
        base = min(self.max_delay_s, self.min_delay_s * self.factor**exponent)
        return base * (1.0 - self.jitter * self._rng.random())

    @property
    def is_open(self) -> bool:
        return self.state is not BreakerState.CLOSED

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self.state.value}, failures={self.failures}, "
            f"next_try={self.next_try:.3f})"
        )
