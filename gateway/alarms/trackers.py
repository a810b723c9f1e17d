"""Sliding windows for chattering and flood detection (pure functions).

A window is a tuple of activation timestamps (UTC ns, oldest first) holding
the activations in ``(now - window, now]``. Tuples keep the manager's state
cheap to snapshot: a failed write restores the previous state as it was.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

__all__ = [
    "FloodState",
    "add",
    "deadline_below",
    "prune",
]


@dataclass(frozen=True, slots=True)
class FloodState:
    """Whether a control room is in an alarm flood (for the UI and the escalator)."""

    active: bool = False
    since_ns: int | None = None  # when the present flood started
    count: int = 0  # alarms annunciated within the flood window


def prune(window: tuple[int, ...], now_ns: int, width_ns: int) -> tuple[int, ...]:
    """Drop the activations at or before ``now - width``."""
    cut = bisect_right(window, now_ns - width_ns)
    return window[cut:] if cut else window


def add(window: tuple[int, ...], ts: int, width_ns: int) -> tuple[int, ...]:
    """Add an activation at ``ts`` (kept sorted even when ``ts`` is out of order)."""
    window = prune(window, max(ts, window[-1] if window else ts), width_ns)
    if not window or ts >= window[-1]:
        return (*window, ts)
    i = bisect_right(window, ts)
    return (*window[:i], ts, *window[i:])


def deadline_below(window: tuple[int, ...], threshold: int, width_ns: int) -> int:
    """When the window will hold fewer than ``threshold`` activations (if no new
    ones arrive): the moment the ``len - threshold``-th oldest one expires. A
    window already below the threshold is due at once (returns its oldest
    timestamp or 0)."""
    index = len(window) - threshold
    if index < 0:
        return window[0] if window else 0
    return window[index] + width_ns
