"""Escalation: who is called about an alarm, and when, until someone acknowledges.

The :class:`Escalator` is fed the alarm manager's transitions
(:meth:`Escalator.on_alarm`) and drives one escalation per unacknowledged
alarm through the policy of its route: level 1 at once to who is on duty
(only people holding the certification the category needs), level 2 after N
minutes, level 3 after M, then reminders; it stops at the first
acknowledgement (or shelving, suppression, out of service), and when the
alarm returns to normal unacknowledged it sends one "cleared" notice to those
already called. Nobody qualified on duty: an ``oncall.nobody_qualified`` event
and the next level at once.

Every step is stored (row in ``escalations``, events, ack links) in one
transaction BEFORE its messages are handed to the dispatcher; when the store
is down the step waits in memory and is retried with backoff. A restart
resumes running escalations from the table (:meth:`Escalator.load`), on time.
During a flood in the alarm's control room, messages are grouped per person
(:mod:`gateway.notify.digest`).

Events: ``notify.escalated`` (level, people, channels), ``notify.reminded``,
``notify.cleared_notice``, ``notify.escalation_stopped`` (by, reason),
``notify.digest``, ``oncall.nobody_qualified``. Their source is the alarm id.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.clock import Clock
from gateway.model import Alarm, AlarmState, Event, Priority
from gateway.notify.acklink import AckLinks, IssuedLink
from gateway.notify.digest import Digest, DigestBuffer, DigestItem
from gateway.notify.escalation_state import (
    RUNNING,
    STOPPED,
    EscalationState,
    load_running,
    write_in,
)
from gateway.notify.message import Kind, Notification, Recipient, dumps, new_id
from gateway.notify.oncall_config import OnCallConfig, PolicyConfig
from gateway.notify.roster import Person, Roster
from gateway.storage.eventstore import (
    EventStore,
    EventStoreError,
    EventStoreUnavailable,
    InvalidEvent,
    append_in,
)
from gateway.storage.tables import SOURCE_MAX_LEN

__all__ = [
    "RUNNING",
    "STOPPED",
    "Describe",
    "EscalationState",
    "Escalator",
    "FloodCheck",
    "Submitter",
]

log = logging.getLogger(__name__)

Describe = Callable[[Alarm], Mapping[str, Any]]
FloodCheck = Callable[[str], bool]

_NS = 1_000_000_000
_EPS_NS = 1_000_000  # a step due within a millisecond is due (float clocks round)
START = frozenset({"activated", "reactivated", "level_changed"})
ANNUNCIATE = frozenset({"unshelved", "shelve_expired", "unsuppressed", "returned_to_service"})
STOP = frozenset({"acknowledged", "reset", "shelved", "suppressed", "out_of_service"})
QUIET = frozenset(
    {
        AlarmState.NORMAL,
        AlarmState.ACKNOWLEDGED,
        AlarmState.SHELVED,
        AlarmState.SUPPRESSED,
        AlarmState.OUT_OF_SERVICE,
    }
)
CALLING_KINDS = ("alarm", "escalated", "reminder")  # dropped once the escalation stops


class Submitter(Protocol):
    """What the escalator needs of :class:`gateway.notify.dispatcher.Dispatcher`."""

    def submit(self, n: Notification, chain: Sequence[str]) -> object: ...


@dataclass(frozen=True, slots=True)
class _Out:
    alarm_id: str
    notification: Notification
    chain: tuple[str, ...]
    digest: bool


class Escalator:
    """Escalations of every unacknowledged alarm (see the module doc).

    ``describe(alarm)`` gives the AlarmView the messages show (device name,
    location, value, limit ...); ``flood(control_room)`` says whether that
    control room is in flood now. Call :meth:`load` once before feeding
    transitions, then run :meth:`run` as a task (or drive :meth:`tick` at
    :meth:`next_deadline` yourself).
    """

    def __init__(
        self,
        store: EventStore,
        roster: Roster,
        config: OnCallConfig,
        dispatcher: Submitter,
        links: AckLinks,
        clock: Clock,
        describe: Describe,
        flood: FloodCheck | None = None,
        *,
        site: str = "",
        retry_s: float = 5.0,
        max_retry_s: float = 60.0,
    ) -> None:
        self._store = store
        self._roster = roster
        self._config = config
        self._dispatcher = dispatcher
        self._links = links
        self._clock = clock
        self._describe = describe
        self._flood = flood or (lambda _room: False)
        self._site = site
        self._timezone = roster.tz.key
        self._retry_ns = (round(retry_s * _NS), round(max_retry_s * _NS))
        self._esc: dict[str, EscalationState] = {}  # running, by alarm id
        self._dirty: dict[str, EscalationState] = {}  # rows to write (running or stopped)
        self._events: list[Event] = []
        self._new_links: list[IssuedLink] = []
        self._outbox: list[_Out] = []
        self._digests = DigestBuffer(config.digest_window_s)
        self._failures = 0
        self._retry_at: int | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    # -- public API -------------------------------------------------------

    async def load(self) -> int:
        """Resume the running escalations stored in ``escalations``; returns how many."""
        resumed = await load_running(self._store)
        async with self._lock:
            for esc in resumed:
                self._esc[esc.alarm_id] = esc
        self._wake.set()
        log.info("resumed %d running escalations", len(self._esc))
        return len(self._esc)

    async def on_alarm(self, alarm: Alarm) -> None:
        """Feed one alarm transition (after the alarm manager stored it)."""
        await self.on_alarms([alarm])

    async def on_alarms(self, alarms: Sequence[Alarm]) -> None:
        """Feed transitions in order; their steps are stored in one transaction
        (a flood of activations costs one commit, not one per alarm)."""
        async with self._lock:
            now = self._clock.time_ns()
            for alarm in alarms:
                self._apply(alarm, now)
            self._advance(now)
            await self._commit(now)
        self._wake.set()

    async def tick(self, now_ns: int | None = None) -> None:
        """Take every step due by ``now_ns`` (default: the clock's now)."""
        async with self._lock:
            now = self._clock.time_ns() if now_ns is None else now_ns
            self._advance(now)
            await self._commit(now)

    def next_deadline(self) -> int | None:
        """UTC ns when :meth:`tick` must run next (None: nothing pending)."""
        due = [e.next_ts for e in self._esc.values() if e.next_ts is not None]
        digest = self._digests.next_due()
        if digest is not None:
            due.append(digest)
        if self._retry_at is not None and self._pending():
            due.append(self._retry_at)
        return min(due, default=None)

    async def run(self) -> None:
        """Tick at every deadline (and when a transition arrives) until cancelled."""
        while True:
            self._wake.clear()
            deadline = self.next_deadline()
            if deadline is None:
                await self._wake.wait()
            elif deadline - self._clock.time_ns() > _EPS_NS:
                await self._sleep_or_wake((deadline - self._clock.time_ns()) / _NS)
            await self.tick()

    def status(self, alarm_id: str) -> EscalationState | None:
        """The running escalation of an alarm (a copy), for the control room."""
        esc = self._esc.get(alarm_id)
        return None if esc is None else EscalationState.from_record(esc.record())

    @property
    def running(self) -> Sequence[str]:
        """Ids of the alarms being escalated."""
        return tuple(self._esc)

    @property
    def busy(self) -> bool:
        """A step is being stored and handed over right now (for an orderly stop)."""
        return self._lock.locked()

    # -- transitions ------------------------------------------------------

    def _apply(self, alarm: Alarm, now: int) -> None:
        t, state = alarm.transition, alarm.state
        esc = self._esc.get(alarm.id)
        if state is AlarmState.UNACKNOWLEDGED and (
            (t in START and not (esc is not None and t == "reactivated"))
            or (t in ANNUNCIATE and esc is None)
        ):
            self._start(alarm, esc, now)
            return
        if esc is None:
            return
        esc.view = self._view(alarm)
        if t == "cleared" and state is AlarmState.RTN_UNACKNOWLEDGED:
            self._stop(esc, alarm.user, "cleared", now)
            self._cleared_notice(esc, now)
        elif t in STOP or state in QUIET:
            self._stop(esc, alarm.user, t or state.value, now)
        else:  # a comment, a latched alarm's condition clearing: keep going
            self._dirty[esc.alarm_id] = esc

    def _start(self, alarm: Alarm, previous: EscalationState | None, now: int) -> None:
        policy, _ = self._config.policy_for(alarm.route, alarm.category)
        esc = EscalationState(
            alarm_id=alarm.id,
            source=alarm.source,
            policy=policy,
            team=self._config.team_for(alarm.route, alarm.category),
            category=alarm.category,
            control_room=str(alarm.data.get("control_room") or "main"),
            priority=alarm.priority.value,
            view=self._view(alarm),
            started_ts=now,
            next_ts=now,
        )
        if previous is not None:  # restarted (a higher level): keep who was called
            esc.notified, esc.history = previous.notified, previous.history
        self._esc[alarm.id] = esc
        self._dirty[alarm.id] = esc

    def _stop(self, esc: EscalationState, by: str, reason: str, now: int) -> None:
        esc.status, esc.next_ts = STOPPED, None
        esc.stopped_by, esc.stopped_reason, esc.stopped_ts = by, reason, now
        del self._esc[esc.alarm_id]
        self._dirty[esc.alarm_id] = esc
        self._outbox = [
            o
            for o in self._outbox
            if not (o.alarm_id == esc.alarm_id and o.notification.kind in CALLING_KINDS)
        ]
        self._digests.discard(esc.alarm_id, CALLING_KINDS)
        self._event("notify.escalation_stopped", esc, now, by=by, reason=reason, level=esc.level)

    def _cleared_notice(self, esc: EscalationState, now: int) -> None:
        people = [self._roster.people[p] for p in esc.notified if p in self._roster.people]
        if not people:
            return
        flood = self._flood(esc.control_room)
        for person in people:
            self._queue(esc, person, "cleared", esc.notified[person.id]["channels"], now, flood)
        self._event("notify.cleared_notice", esc, now, people=[p.id for p in people])

    # -- steps ------------------------------------------------------------

    def _advance(self, now: int) -> None:
        for esc in list(self._esc.values()):
            while esc.next_ts is not None and esc.next_ts <= now + _EPS_NS:
                self._step(esc, now)
        for digest in self._digests.pop_due(now + _EPS_NS):
            self._flush_digest(digest, now)

    def _policy(self, esc: EscalationState) -> PolicyConfig:
        return self._config.policies.get(esc.policy) or self._config.policies["default"]

    def _step(self, esc: EscalationState, now: int) -> None:
        policy = self._policy(esc)
        self._dirty[esc.alarm_id] = esc
        if esc.level >= len(policy.levels):  # past the last level: a reminder
            esc.repeats += 1
            people = [self._roster.people[p] for p in esc.notified if p in self._roster.people]
            flood = self._flood(esc.control_room)
            for person in people:
                channels = esc.notified[person.id]["channels"]
                self._queue(esc, person, "reminder", channels, now, flood)
            self._event(
                "notify.reminded", esc, now, repeat=esc.repeats, people=[p.id for p in people]
            )
            esc.next_ts = self._reminder_ts(esc, policy, now)
            return
        esc.level += 1
        level = policy.levels[esc.level - 1]
        cert = self._config.certifications_required.get(esc.category)
        people, why = self._roster.callable(level, esc.team, cert, now)
        if people:
            chain = list(level.channels or self._config.default_channels)
            flood = self._flood(esc.control_room)
            kind: Kind = "alarm" if esc.level == 1 else "escalated"
            for person in people:
                self._queue(esc, person, kind, chain, now, flood)
                esc.notified[person.id] = {"level": esc.level, "channels": chain}
            ids = [p.id for p in people]
            esc.history = [*esc.history[-49:], {"level": esc.level, "ts": now, "people": ids}]
            self._event(
                "notify.escalated",
                esc,
                now,
                level=esc.level,
                people=ids,
                kind=kind,
                team=level.team or esc.team,
                channels=chain,
                digest=flood,
            )
        else:
            self._event("oncall.nobody_qualified", esc, now, level=esc.level, **why)
        if esc.level < len(policy.levels):
            scheduled = esc.started_ts + round(policy.levels[esc.level].after_min * 60 * _NS)
            esc.next_ts = scheduled if people else min(scheduled, now)  # nobody: go on at once
        else:
            esc.next_ts = self._reminder_ts(esc, policy, now)
            if not esc.notified:
                log.warning(
                    "alarm %s: no level of policy %s reached anybody", esc.alarm_id, esc.policy
                )

    @staticmethod
    def _reminder_ts(esc: EscalationState, policy: PolicyConfig, now: int) -> int | None:
        if policy.repeat_every_min is None or esc.repeats >= policy.max_repeats or not esc.notified:
            return None
        return now + round(policy.repeat_every_min * 60 * _NS)

    def _queue(
        self,
        esc: EscalationState,
        person: Person,
        kind: Kind,
        chain: Sequence[str],
        now: int,
        flood: bool,
    ) -> None:
        ack_url = ""
        if kind != "cleared":
            link = self._links.mint(esc.alarm_id, person.id, now)
            self._new_links.append(link)
            ack_url = link.url
        n = Notification(
            id=new_id(),
            kind=kind,
            recipient=_recipient(person),
            alarm=dict(esc.view),
            ack_url=ack_url,
            ts=now,
            priority=Priority(esc.priority),
            timezone=self._timezone,
            level=esc.level,
            site=self._site,
        )
        self._outbox.append(_Out(esc.alarm_id, n, tuple(chain), flood))

    def _flush_digest(self, digest: Digest, now: int) -> None:
        if not digest.items:
            return
        top = digest.top()
        if len(digest.items) == 1:
            self._outbox.append(_Out(top.alarm_id, top.notification, top.chain, False))
            return
        n = digest.notification(now, timezone=self._timezone, site=self._site)
        alarms = [i.alarm_id for i in digest.items]
        self._events.append(
            Event(
                "notify.digest",
                "oncall",
                now,
                {
                    "person": digest.person,
                    "notification": n.id,
                    "count": len(alarms),
                    "alarms": alarms,
                },
            )
        )
        self._outbox.append(_Out("", n, top.chain, False))

    # -- persistence ------------------------------------------------------

    def _event(self, etype: str, esc: EscalationState, now: int, **data: Any) -> None:
        source = esc.alarm_id if len(esc.alarm_id) <= SOURCE_MAX_LEN else esc.source
        self._events.append(
            Event(etype, source, now, {"alarm_id": esc.alarm_id, "policy": esc.policy, **data})
        )

    def _pending(self) -> bool:
        return bool(self._dirty or self._events or self._new_links or self._outbox)

    async def _commit(self, now: int) -> None:
        """Store the queued steps, then hand their messages over (or keep them for a retry)."""
        if not self._pending():
            return
        if self._retry_at is not None and now + _EPS_NS < self._retry_at:
            return
        while True:
            dirty, events, links = list(self._dirty.values()), self._events, self._new_links
            try:
                async with self._store.begin() as conn:
                    await write_in(conn, dirty)
                    await self._links.store_in(conn, links)
                    await append_in(conn, events)
            except InvalidEvent as exc:  # cannot ever be stored: drop it, keep the rest
                log.error("escalation event %s dropped: %s", events[exc.index].type, exc.reason)
                del events[exc.index]
                continue
            except EventStoreError as exc:
                self._failures += 1
                first, most = self._retry_ns
                self._retry_at = now + min(first * 2 ** (self._failures - 1), most)
                level = logging.WARNING if isinstance(exc, EventStoreUnavailable) else logging.ERROR
                log.log(level, "escalation steps not stored (%s: %s)", type(exc).__name__, exc)
                return
            break
        self._failures, self._retry_at = 0, None
        self._dirty.clear()
        self._events.clear()
        self._new_links.clear()
        outbox, self._outbox = self._outbox, []
        for out in outbox:
            if out.digest:
                item = DigestItem(out.alarm_id, out.notification, out.chain)
                self._digests.add(out.notification.recipient.id, item, now)
            else:
                self._dispatcher.submit(out.notification, out.chain)

    def _view(self, alarm: Alarm) -> dict[str, Any]:
        view = {"id": alarm.id, **self._describe(alarm)}
        # Stored in the row's JSON record: keep only what JSON holds (NaN as "nan").
        return dict(json.loads(dumps(view)))

    async def _sleep_or_wake(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()


def _recipient(person: Person) -> Recipient:
    return Recipient(
        id=person.id, name=person.name, locale=person.locale, addresses=dict(person.addresses)
    )
