"""Commands to the readers of one bus: one in libosdp per reader at a time, with a deadline.

libosdp queues commands per reader and reports each one's completion
(ACK, NAK, flushed) with a copy of the command, not a handle. Keeping a
single command per reader inside libosdp makes every completion belong to
exactly one request. A request may have several steps (``feedback`` is an
LED and a buzzer command); the next step goes in when the previous one is
acknowledged.

Stale commands are dangerous at a door: a ``pulse`` that waited in a queue
while its reader was unreachable must not open the door minutes later.
So a request fails at once when its reader is offline, requests past
their deadline fail, and whenever we give up on a reader's request its
libosdp queue is flushed.

Everything here runs on the panel's refresh thread.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import osdp_sys

from drivers.cards.osdp.messages import CommandOutcome

__all__ = ["CommandQueues", "Job"]

log = logging.getLogger("drivers.cards.osdp.panel")

_COMPLETION_OK = getattr(osdp_sys, "COMPLETION_OK", 0)
_COMPLETION = {
    getattr(osdp_sys, "COMPLETION_FAILED", 1): "nak",
    getattr(osdp_sys, "COMPLETION_FLUSHED", 2): "flushed",
    getattr(osdp_sys, "COMPLETION_ABORTED", 3): "aborted",
}


@dataclass(slots=True)
class Job:
    """One request: libosdp command dicts sent in order, answered once through ``done``."""

    index: int
    steps: list[dict[str, Any]]
    deadline: float  # time.monotonic()
    done: Callable[[CommandOutcome], None]
    step: int = 0
    awaiting: bool = False  # a step is in libosdp, not yet completed
    sent_at: float | None = None


@dataclass(slots=True)
class _Reader:
    queue: deque[Job] = field(default_factory=deque)
    current: Job | None = None


class CommandQueues:
    """The requests of every reader on one bus."""

    def __init__(self, count: int, name: str) -> None:
        self.name = name
        self._readers = [_Reader() for _ in range(count)]

    def add(self, job: Job) -> None:
        self._readers[job.index].queue.append(job)

    def pump(self, ctx: Any) -> bool:
        """Hand libosdp the next step of each idle reader; True when one went in."""
        submitted = False
        for i, r in enumerate(self._readers):
            job = r.current
            if job is None:
                if not r.queue:
                    continue
                job = r.current = r.queue.popleft()
            if job.awaiting:
                continue
            if not ctx.submit_command(i, job.steps[job.step]):
                self._finish(i, CommandOutcome(False, "refused", job.sent_at))
                continue
            job.awaiting = True
            if job.sent_at is None:
                job.sent_at = time.perf_counter()
            submitted = True
        return submitted

    def completed(self, index: int, command: dict[str, Any], status: int) -> None:
        """libosdp's completion callback for reader ``index``."""
        job = self._readers[index].current
        if (
            job is None
            or not job.awaiting
            or job.steps[job.step].get("command") != command.get("command")
        ):
            # a command we already gave up on (timed out, then flushed or finally sent)
            log.debug("%s: completion of a command nobody waits for: %r", self.name, command)
            return
        job.awaiting = False
        if status != _COMPLETION_OK:
            reason = _COMPLETION.get(status, "nak")
            self._finish(index, CommandOutcome(False, reason, job.sent_at))
            return
        job.step += 1
        if job.step == len(job.steps):
            self._finish(index, CommandOutcome(True, "", job.sent_at))

    def expire(self, ctx: Any, now: float) -> None:
        """Fail requests past their deadline; flush what libosdp still holds of them."""
        for i, r in enumerate(self._readers):
            job = r.current
            if job is not None and now > job.deadline:
                log.warning("%s: reader #%d did not acknowledge a command in time", self.name, i)
                self._finish(i, CommandOutcome(False, "timeout", job.sent_at))
                ctx.flush_commands(i)
            while r.queue and now > r.queue[0].deadline:
                r.queue.popleft().done(CommandOutcome(False, "timeout"))

    def fail(self, ctx: Any | None, index: int, reason: str) -> None:
        """Fail every request of reader ``index`` (it went offline, the panel stops)."""
        r = self._readers[index]
        if r.current is not None:
            self._finish(index, CommandOutcome(False, reason, r.current.sent_at))
        while r.queue:
            r.queue.popleft().done(CommandOutcome(False, reason))
        if ctx is not None:
            ctx.flush_commands(index)

    def ready(self) -> bool:
        """Whether a reader has a step to hand to libosdp now."""
        return any(
            (r.current is not None and not r.current.awaiting) or (r.current is None and r.queue)
            for r in self._readers
        )

    def _finish(self, index: int, outcome: CommandOutcome) -> None:
        r = self._readers[index]
        job, r.current = r.current, None
        if job is not None:
            job.done(outcome)
