"""Where aiomqtt hands the ingest its messages, and when the consumer wakes.

aiomqtt puts each incoming message into a queue of the class given as
``queue_type``. :meth:`Inbox.queue_type` makes a queue class whose
``put_nowait`` appends to this inbox's deque instead, so no future, task or
``asyncio.wait`` is spent per message.

aiomqtt reads one packet per event-loop turn, so a consumer woken for every
message costs a task step per message. The inbox wakes it at once when a
message comes after a quiet spell (latency stays that of the event loop at
low rates), but under a stream wakes it at most every ``coalesce_s``, or as
soon as ``batch`` messages wait: at 20k msg/s that is a wake-up per ~10
messages. These are event-loop timings (``loop.time()``), not the gateway's
clock: they schedule work within a millisecond and mean nothing to a
schedule.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import aiomqtt

__all__ = ["Inbox"]


class Inbox:
    def __init__(
        self,
        limit: int,
        log: logging.Logger,
        *,
        coalesce_s: float = 0.0005,
        batch: int = 256,
    ) -> None:
        self.items: deque[aiomqtt.Message] = deque()
        self.ready = asyncio.Event()
        self.limit = limit
        self.dropped = 0
        self.closing = False
        self._log = log
        self._loop = asyncio.get_running_loop()
        self._coalesce_s = coalesce_s
        self._batch = batch
        self._last_wake = -1e9
        self._timer: asyncio.TimerHandle | None = None

    # -- producer: aiomqtt's on_message callback ------------------------------------
    def push(self, msg: aiomqtt.Message) -> None:
        items = self.items
        n = len(items)
        if n >= self.limit:
            self.dropped += 1
            if self.dropped & (self.dropped - 1) == 0:  # 1, 2, 4, 8, ...: not every one
                self._log.warning(
                    "inbox full (%d messages): dropped %d so far", self.limit, self.dropped
                )
            return
        items.append(msg)
        if n == 0:
            if self._timer is None:
                due = self._last_wake + self._coalesce_s
                if self._loop.time() >= due:
                    self.ready.set()
                else:
                    self._timer = self._loop.call_at(due, self._on_timer)
        elif n + 1 >= self._batch:
            self.ready.set()

    def _on_timer(self) -> None:
        self._timer = None
        self.ready.set()

    # -- consumer --------------------------------------------------------------------
    async def wait(self) -> None:
        """Wait until there is something to take (or the inbox is closing)."""
        while not self.closing and not self.items:
            self.ready.clear()
            await self.ready.wait()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last_wake = self._loop.time()

    def close(self) -> None:
        """Let the consumer finish what is queued, then stop."""
        self.closing = True
        self.ready.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def queue_type(self) -> type[asyncio.Queue[aiomqtt.Message]]:
        """A queue class for ``aiomqtt.Client(queue_type=...)`` that feeds this inbox."""
        push = self.push

        class InboxQueue(asyncio.Queue[aiomqtt.Message]):
            # aiomqtt calls put_nowait from its on_message callback; nothing
            # reaches the queue itself, so the inherited get() waits forever.
            def put_nowait(self, item: aiomqtt.Message) -> None:
                push(item)

        return InboxQueue
