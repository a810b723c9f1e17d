"""The dispatcher: deliver one notification through a chain of channels.

For each channel of the chain, in order:

* wait for the channel's rate limit (token bucket on the clock), at most the
  channel's ``rate_wait_s``; longer -> ``rate_limited``, next channel;
* send; a retryable failure is retried ``retries`` times with exponential
  backoff and jitter on the clock (a vendor's retry-after holds the channel's
  bucket, so every message waits for it, or falls back when it is too long);
* a non-retryable failure (bad key, refused address) or a recipient without
  the address the channel needs (:class:`NoAddress`) -> next channel at once.

Each channel tried is one row of table ``deliveries``: ``queued`` when it
starts, then ``sent``, ``fell_back`` (failed, the next channel was tried),
``failed`` (failed, nothing left) or ``rate_limited``, with the attempts and
the last error. The event store being down never stops a message: the row is
skipped and counted. A delivery cancelled at shutdown leaves its row ``queued``.
:attr:`Dispatcher.counts` counts channel outcomes by status, plus
``crashes`` (a channel raised something else than ChannelError) and
``record_errors`` (the table could not be written).

:meth:`Dispatcher.submit` runs a delivery as a task (one slow SMTP server
must not delay a WeCom message); :meth:`Dispatcher.drain` waits for them all.
Logs name the notification, the person, the channel and the status; never an
address, a key or a message text.
"""

from __future__ import annotations

import asyncio
import logging
import random
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import insert, update

from gateway.clock import Clock
from gateway.notify.channels.base import Channel, ChannelError, NoAddress
from gateway.notify.message import Notification, Rendered
from gateway.notify.ratelimit import TokenBucket
from gateway.notify.templates import render
from gateway.storage.eventstore import EventStore, EventStoreError
from gateway.storage.tables import deliveries

__all__ = ["Attempt", "DeliveryResult", "Dispatcher", "Status"]

log = logging.getLogger(__name__)

Status = Literal["queued", "sent", "failed", "fell_back", "rate_limited"]
_ERROR_MAX = 1000


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened on one channel of the chain."""

    channel: str
    status: Status
    attempts: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The fate of one notification: ``sent`` (through ``channel``), ``failed``,
    or ``rate_limited`` (every channel was rate limited)."""

    status: Status
    channel: str | None
    attempts: int
    error: str | None = None
    trail: tuple[Attempt, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.status == "sent"


@dataclass(slots=True)
class _Lane:
    """Per-channel state: the rate limiter and the concurrency gate."""

    bucket: TokenBucket
    gate: asyncio.Semaphore


class Dispatcher:
    """Delivers notifications through named channels (see the module doc).

    ``store`` None: nothing is recorded (tools and benchmarks). ``rng``:
    jitter source (seed it in tests). ``grace_s``: how long past a channel's
    own ``timeout_s`` the dispatcher waits before it abandons an attempt (a
    channel that hangs).
    """

    def __init__(
        self,
        channels: Mapping[str, Channel],
        store: EventStore | None,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        grace_s: float = 5.0,
    ) -> None:
        self.channels = dict(channels)
        self._grace_s = grace_s
        self._store = store
        self._clock = clock
        self._rng = rng or random.Random()
        self._lanes = {
            name: _Lane(
                TokenBucket(ch.policy.rate_per_min, ch.policy.burst, clock),
                asyncio.Semaphore(ch.policy.concurrency),
            )
            for name, ch in self.channels.items()
        }
        self._tasks: set[asyncio.Task[DeliveryResult]] = set()
        self.counts: Counter[str] = Counter()  # statuses, record_errors, crashes

    # -- public ------------------------------------------------------------------
    def bucket(self, channel: str) -> TokenBucket:
        """The rate limiter of ``channel`` (KeyError for an unknown name)."""
        return self._lanes[channel].bucket

    @property
    def pending(self) -> int:
        """Deliveries submitted and not finished."""
        return len(self._tasks)

    def submit(
        self, n: Notification, chain: Sequence[str], *, rendered: Rendered | None = None
    ) -> asyncio.Task[DeliveryResult]:
        """Deliver in a task of its own; :meth:`drain` waits for it."""
        task = asyncio.get_running_loop().create_task(
            self.deliver(n, chain, rendered=rendered), name=f"notify-{n.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    async def drain(self) -> None:
        """Wait until every submitted delivery (also those submitted meanwhile) is done."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self, *, cancel: bool = False) -> None:
        """Drain (or, with ``cancel``, cancel what is still running), then close
        every channel. A cancelled delivery's row stays ``queued``."""
        if cancel:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.drain()
        for ch in self.channels.values():
            await ch.close()

    async def deliver(
        self, n: Notification, chain: Sequence[str], *, rendered: Rendered | None = None
    ) -> DeliveryResult:
        """Try the channels of ``chain`` in order until one sends ``n``."""
        if isinstance(chain, str):
            raise TypeError("chain must be a sequence of channel names, not a str")
        if not chain:
            log.warning("notification %s to %s: no channel to try", n.id, n.recipient.id)
            self.counts["failed"] += 1
            return DeliveryResult("failed", None, 0, "no channel in the chain")
        rendered = rendered or render(n)
        trail: list[Attempt] = []
        for i, name in enumerate(chain):
            last = i == len(chain) - 1
            outcome = await self._through(n, rendered, chain, i, last)
            trail.append(outcome)
            self.counts[outcome.status] += 1
            level = logging.INFO if outcome.status == "sent" else logging.WARNING
            log.log(
                level,
                "notification %s (%s) to %s via %s: %s after %d attempt(s)%s",
                n.id,
                n.kind,
                n.recipient.id,
                name,
                outcome.status,
                outcome.attempts,
                f": {outcome.error}" if outcome.error else "",
            )
            if outcome.status == "sent":
                break
        final = trail[-1]
        attempts = sum(a.attempts for a in trail)
        if final.status == "sent":
            return DeliveryResult("sent", final.channel, attempts, None, tuple(trail))
        status: Status = (
            "rate_limited" if all(a.status == "rate_limited" for a in trail) else "failed"
        )
        return DeliveryResult(status, None, attempts, final.error, tuple(trail))

    # -- one channel ---------------------------------------------------------------
    async def _through(
        self, n: Notification, rendered: Rendered, chain: Sequence[str], index: int, last: bool
    ) -> Attempt:
        name = chain[index]
        data: dict[str, Any] = {
            "kind": n.kind,
            "priority": n.priority.value,
            "chain": list(chain),
            "position": index,
            "errors": [],
        }
        row = await self._record_start(n, name, data)
        status, attempts, error = await self._attempts(n, rendered, name, data)
        if status == "failed" and not last:
            status = "fell_back"
        await self._record_end(row, n, name, status, attempts, error, data)
        return Attempt(name, status, attempts, error)

    async def _attempts(
        self, n: Notification, rendered: Rendered, name: str, data: dict[str, Any]
    ) -> tuple[Status, int, str | None]:
        channel = self.channels.get(name)
        if channel is None:
            return "failed", 0, f"no channel named {name!r}"
        if channel.address_kind is not None and n.recipient.address(channel.address_kind) is None:
            return "failed", 0, NoAddress(n.recipient.id, channel.address_kind).reason
        lane = self._lanes[name]
        policy = channel.policy
        attempts = 0
        while True:
            wait = lane.bucket.reserve(policy.rate_wait_s)
            if wait is None:
                reason = f"rate limited: no slot within {policy.rate_wait_s:g} s"
                return "rate_limited", attempts, reason
            if wait > 0:
                await self._clock.sleep(wait)
            attempts += 1
            try:
                async with lane.gate:
                    await asyncio.wait_for(
                        channel.send(n, rendered), policy.timeout_s + self._grace_s
                    )
                return "sent", attempts, None
            except NoAddress as exc:
                return "failed", attempts - 1, exc.reason
            except ChannelError as exc:
                error = exc
            except TimeoutError:
                error = ChannelError(
                    f"no result within {policy.timeout_s + self._grace_s:g} s", retryable=True
                )
            except Exception as exc:  # noqa: BLE001 - a channel's bug must not lose the message
                error = self._crashed(channel, exc)
            reason = channel.redact(error.reason)
            data["errors"].append({"ts": self._clock.time_ns(), "error": reason[:200]})
            if error.retry_after_s:
                lane.bucket.hold(error.retry_after_s)
                if error.retry_after_s > policy.rate_wait_s:
                    return "rate_limited", attempts, reason
            if not error.retryable or attempts > policy.retries:
                return "failed", attempts, reason
            await self._clock.sleep(self._backoff(policy.backoff_s, policy.backoff_max_s, attempts))

    def _backoff(self, base: float, cap: float, attempt: int) -> float:
        """Exponential backoff with "equal jitter": between half and all of the step."""
        step = min(cap, base * 2.0 ** (attempt - 1))
        return step / 2 + self._rng.uniform(0, step / 2)

    def _crashed(self, channel: Channel, exc: Exception) -> ChannelError:
        self.counts["crashes"] += 1
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.error(
            "channel %s crashed with %s: %s\n%s",
            channel.name,
            type(exc).__name__,
            channel.redact(str(exc))[:300],
            frames,
        )
        return ChannelError(f"internal error in the channel: {type(exc).__name__}", retryable=False)

    def _finished(self, task: asyncio.Task[DeliveryResult]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.counts["crashes"] += 1
            log.error("delivery task %s failed: %s", task.get_name(), type(exc).__name__)

    # -- the deliveries table -------------------------------------------------------
    async def _record_start(
        self, n: Notification, channel: str, data: dict[str, Any]
    ) -> int | None:
        if self._store is None:
            return None
        now = self._clock.time_ns()
        stmt = insert(deliveries).values(
            ts=now,
            updated_ts=now,
            notification=n.id,
            alarm_id=n.alarm_id,
            person=n.recipient.id,
            channel=channel,
            status="queued",
            attempts=0,
            error=None,
            data=data,
        )
        try:
            async with self._store.begin() as conn:
                result = await conn.execute(stmt)
                key = result.inserted_primary_key
                return int(key[0]) if key else None
        except EventStoreError as exc:
            self._record_failed(n, exc)
            return None

    async def _record_end(
        self,
        row: int | None,
        n: Notification,
        channel: str,
        status: Status,
        attempts: int,
        error: str | None,
        data: dict[str, Any],
    ) -> None:
        if self._store is None:
            return
        now = self._clock.time_ns()
        values: dict[str, Any] = {
            "updated_ts": now,
            "status": status,
            "attempts": attempts,
            "error": error[:_ERROR_MAX] if error else None,
            "data": data,
        }
        try:
            async with self._store.begin() as conn:
                if row is not None:
                    await conn.execute(
                        update(deliveries).where(deliveries.c.id == row).values(**values)
                    )
                else:  # the start was not recorded: record the end alone
                    await conn.execute(
                        insert(deliveries).values(
                            ts=now,
                            notification=n.id,
                            alarm_id=n.alarm_id,
                            person=n.recipient.id,
                            channel=channel,
                            **values,
                        )
                    )
        except EventStoreError as exc:
            self._record_failed(n, exc)

    def _record_failed(self, n: Notification, exc: EventStoreError) -> None:
        self.counts["record_errors"] += 1
        log.warning(
            "notification %s: cannot record the delivery (%s); sending anyway",
            n.id,
            type(exc).__name__,
        )
