"""Jittered exponential backoff for reconnect loops (drivers' links, sockets).

Each delay is drawn from [d/2, d] for the current step ``d``, which doubles
from ``min_s`` up to ``max_s``, so many gateways (or readers) that lost one
peer do not come back in lock-step.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if min_s <= 0 or max_s < min_s:
            raise ValueError("backoff needs 0 < min_s <= max_s")
        self.min_s, self.max_s = min_s, max_s
        self._rng = rng or random.Random()
        self.attempt = 0

    def next(self) -> float:
        step = min(self.max_s, self.min_s * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return self._rng.uniform(step / 2, step)

    def reset(self) -> None:
        self.attempt = 0
