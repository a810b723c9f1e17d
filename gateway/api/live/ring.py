"""The last N sequence-numbered messages of the live stream.

A fixed list indexed by ``seq % size``: appending and reading any seq still
held are O(1), so a hundred clients at different cursors cost nothing to
serve, and the memory is fixed however many messages pass.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Ring"]

T = TypeVar("T")


class Ring(Generic[T]):
    """Messages with seq ``first`` .. ``head`` (1-based, contiguous)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("the ring needs room for at least one message")
        self.size = size
        self.head = 0  # the seq of the newest message; 0 before the first
        self._slots: list[T | None] = [None] * size

    @property
    def first(self) -> int:
        """The oldest seq still held (``head + 1`` when the ring is empty)."""
        return max(1, self.head - self.size + 1)

    def __len__(self) -> int:
        return min(self.head, self.size)

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, int) and self.first <= seq <= self.head

    def append(self, item: T) -> int:
        """Store ``item`` as the next seq (dropping the oldest when full); return its seq."""
        self.head += 1
        self._slots[self.head % self.size] = item
        return self.head

    def get(self, seq: int) -> T:
        if seq not in self:
            raise KeyError(seq)
        item = self._slots[seq % self.size]
        assert item is not None
        return item

    def since(self, start: int, limit: int) -> list[tuple[int, T]]:
        """Up to ``limit`` messages from seq ``start`` on (``start`` must be held
        or be ``head + 1``)."""
        if start < self.first:
            raise KeyError(start)
        end = min(self.head, start + limit - 1)
        slots, size = self._slots, self.size
        out: list[tuple[int, T]] = []
        for seq in range(start, end + 1):
            item = slots[seq % size]
            assert item is not None
            out.append((seq, item))
        return out
