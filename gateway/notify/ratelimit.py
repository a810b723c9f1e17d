"""A token bucket on the injectable clock, one per channel.

``rate_per_min`` tokens flow in per minute up to ``burst``; a message takes
one. :meth:`TokenBucket.reserve` books the next token and says how long to
wait for it (booked tokens make later callers wait behind earlier ones, in
order), or refuses when the wait would exceed a bound, so the dispatcher can
fall back to another channel instead. :meth:`TokenBucket.hold` stops the
bucket for a while when the other side said "too many requests".
"""

from __future__ import annotations

from gateway.clock import Clock

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate_per_min`` None: unlimited (only :meth:`hold` can make it wait)."""

    def __init__(self, rate_per_min: float | None, burst: int | None, clock: Clock) -> None:
        if rate_per_min is not None and rate_per_min <= 0:
            raise ValueError(f"rate_per_min must be positive, got {rate_per_min}")
        if burst is not None and burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate_per_min = rate_per_min
        self.burst = burst or (max(1, int(rate_per_min // 4)) if rate_per_min else 1)
        self._clock = clock
        self._tokens = float(self.burst)
        self._stamp = clock.monotonic()
        self._held_until = float("-inf")

    def _refill(self) -> float:
        now = self._clock.monotonic()
        if self.rate_per_min is not None:
            rate = self.rate_per_min / 60.0
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * rate)
        self._stamp = now
        return now

    @property
    def tokens(self) -> float:
        """Tokens available now (negative: booked ahead)."""
        self._refill()
        return self._tokens

    def wait_time(self) -> float:
        """Seconds until a token would be free (0: now)."""
        now = self._refill()
        hold = max(0.0, self._held_until - now)
        if self.rate_per_min is None or self._tokens >= 1:
            return hold
        return max(hold, (1 - self._tokens) * 60.0 / self.rate_per_min)

    def reserve(self, max_wait_s: float) -> float | None:
        """Book a token: the seconds to wait for it (0: go now), or None (and
        nothing booked) when that would be more than ``max_wait_s``."""
        wait = self.wait_time()
        if wait > max_wait_s:
            return None
        if self.rate_per_min is not None:
            self._tokens -= 1
        return wait

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a vendor's retry-after)."""
        now = self._refill()
        self._held_until = max(self._held_until, now + max(0.0, seconds))
