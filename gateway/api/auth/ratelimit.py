"""The failed-login limit: at most N failures per username and per address in a window.

Both keys count, so guessing one user's password from many addresses and
guessing many users' passwords from one address are slowed alike. A success
clears the username's count (the address keeps its own: one right password
does not excuse a hundred wrong ones for other users). The window slides:
a failure stops counting ``window_s`` seconds after it happened.

Memory is bounded: keys whose failures have all aged out are forgotten, and
beyond ``max_keys`` the least recently failed key goes first. The state is
per process and kept in memory; a restart forgets it (acceptable: a restart
is rarer than the window is long).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

from gateway.clock import Clock

__all__ = ["DEFAULT_MAX_KEYS", "LoginLimiter"]

DEFAULT_MAX_KEYS = 10_000


class LoginLimiter:
    def __init__(
        self,
        clock: Clock,
        max_failures: int,
        window_s: float,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if max_failures < 1 or window_s <= 0 or max_keys < 2:
            raise ValueError("max_failures >= 1, window_s > 0 and max_keys >= 2 are needed")
        self.clock = clock
        self.max_failures = max_failures
        self.window_s = float(window_s)
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    @staticmethod
    def _keys(username: str, client: str) -> tuple[str, str]:
        # Case-folded: "Admin" and "admin" must not be two budgets.
        return f"u:{username.strip().casefold()}", f"a:{client}"

    def _live(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, username: str, client: str) -> int | None:
        """Seconds until another attempt is allowed, or None when it is allowed now."""
        now = self.clock.monotonic()
        wait = 0.0
        for key in self._keys(username, client):
            times = self._live(key, now)
            if times is not None and len(times) >= self.max_failures:
                # Allowed again when enough of the oldest failures have aged out.
                oldest_counting = times[len(times) - self.max_failures]
                wait = max(wait, oldest_counting + self.window_s - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failure(self, username: str, client: str) -> None:
        """Count a failed attempt against the username and the address."""
        now = self.clock.monotonic()
        for key in self._keys(username, client):
            times = self._live(key, now) or deque()
            times.append(now)
            # Only the newest max_failures ever matter.
            while len(times) > self.max_failures:
                times.popleft()
            self._failures[key] = times
            self._failures.move_to_end(key)
        self._forget(now)

    def success(self, username: str) -> None:
        """A right password: the username's count starts again."""
        self._failures.pop(self._keys(username, "")[0], None)

    def clear(self) -> None:
        """Forget every failure (an operator lifting a lock-out; tests)."""
        self._failures.clear()

    def _forget(self, now: float) -> None:
        # Drop aged-out keys from the least recent end, then the oldest beyond the bound.
        while self._failures:
            key = next(iter(self._failures))
            times = self._failures[key]
            if times and times[-1] > now - self.window_s and len(self._failures) <= self.max_keys:
                break
            del self._failures[key]

    def __len__(self) -> int:
        return len(self._failures)
