"""One live client as the hub sees it: a cursor into the shared ring, the
readings waiting for it, and the flags its send task acts on.

No client has a queue of its own. Alarm transitions and events stay in the
hub's ring, and the client only remembers the next sequence number it must
send; readings wait in a dict keyed by point, so a client that cannot keep
up holds at most one reading per subscribed point (the latest), however long
it stalls. The hub never awaits a client: it changes these fields and sets
:attr:`LiveClient.wake`; the client's own send task does the rest.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
from collections import deque
from collections.abc import Iterable

from gateway.model import Reading

__all__ = ["LiveClient", "PointFilter"]

# Notices (error answers to bad messages) kept for a client that sends bad
# messages faster than it reads: the oldest go first.
_MAX_NOTICES = 16


class PointFilter:
    """Which points a client wants: exact names and ``fnmatch`` globs
    (``tx1.*``, ``*.temp_?``, ``*`` for everything), case-sensitive."""

    __slots__ = ("_exact", "_regex", "everything", "patterns")

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns: tuple[str, ...] = tuple(dict.fromkeys(patterns))
        self.everything = "*" in self.patterns
        globs = [p for p in self.patterns if any(c in p for c in "*?[")]
        self._exact = frozenset(p for p in self.patterns if p not in globs)
        self._regex = (
            re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs)) if globs else None
        )

    def __call__(self, point: str) -> bool:
        if self.everything or point in self._exact:
            return True
        return self._regex is not None and self._regex.match(point) is not None

    def __bool__(self) -> bool:
        return bool(self.patterns)


class LiveClient:
    """The hub's record of one connected client (see the module docstring)."""

    def __init__(self, name: str, role: str, points: PointFilter) -> None:
        self.name = name  # for logs: the principal and the peer address
        self.role = role  # decides the masking of event data
        self.filter = points
        self.cursor = 0  # the next seq to send
        self.snapshot_due = False  # send a fresh snapshot (and move the cursor to the head)
        self.welcomed = False
        self.resumed = False  # what the welcome says
        self.pending: dict[str, Reading] = {}  # latest unsent reading per subscribed point
        self._shared = False  # ``pending`` is the hub's batch of a tick, shared: copy to change
        self.flush_due = False  # the reading interval has passed: send ``pending``
        self.phase = 0  # which slice of each reading interval it is woken in
        self.pong_due = False
        self.notices: deque[str] = deque(maxlen=_MAX_NOTICES)  # rendered error messages
        self.close_code: int | None = None  # the hub asks the send task to close with this
        self.close_reason = ""
        self.wake = asyncio.Event()
        self.indexed: set[str] = set()  # points of the hub's index that list this client
        # Figures (tests and the bench read them; no timing in them).
        self.sent_messages = 0
        self.readings_replaced = 0  # a newer reading took the place of an unsent one
        self.snapshots = 0  # snapshots sent (the first one included)

    def offer(self, reading: Reading) -> None:
        """Keep ``reading`` as the latest unsent one of its point."""
        pending = self._own_pending()
        if reading.point in pending:
            self.readings_replaced += 1
        pending[reading.point] = reading

    def offer_batch(self, batch: dict[str, Reading]) -> None:
        """Take a whole tick's readings (a client of every point). A client with
        nothing pending just points at ``batch``, shared with the other such
        clients (so one rendering serves them all); one that is behind merges it."""
        if not self.pending:
            self.pending = batch
            self._shared = True
            return
        pending = self._own_pending()
        self.readings_replaced += len(pending.keys() & batch.keys())
        pending.update(batch)

    def _own_pending(self) -> dict[str, Reading]:
        if self._shared:  # copy on write: the hub's batch is read-only
            self.pending = dict(self.pending)
            self._shared = False
        return self.pending

    def keep_pending(self, keep: PointFilter) -> None:
        """Forget the pending readings of points ``keep`` no longer matches."""
        if self.pending:
            self.pending = {p: r for p, r in self.pending.items() if keep(p)}
            self._shared = False

    def take_readings(self) -> dict[str, Reading]:
        """What is pending (point -> latest reading); clears it and ``flush_due``.

        The dict may be shared with other clients: read it, do not change it."""
        self.flush_due = False
        out = self.pending
        self.pending = {}
        self._shared = False
        return out

    def notice(self, rendered: str) -> None:
        self.notices.append(rendered)
        self.wake.set()

    def ping(self) -> None:
        self.pong_due = True
        self.wake.set()

    def close(self, code: int, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self.wake.set()

    def __repr__(self) -> str:
        return f"LiveClient({self.name!r}, role={self.role!r}, cursor={self.cursor})"
