"""The alarm manager: ISA-18.2 alarms from rule conditions and operator actions,
stored before they are announced.

Every change goes the same way: under one lock the :class:`AlarmSet` computes
the transitions of a batch on its state (snapshotted first); the batch's
``alarms`` rows and ``alarm.<transition>`` events are written in ONE
transaction; only then is each :class:`~gateway.model.Alarm` published, in
order. When the store cannot be written, a batch from the rules or the clock
is retried with backoff (nothing is lost, nothing overtakes it), while an
operator action is refused at once with :class:`AlarmStoreUnavailable` and
changes nothing.

``publish`` must not call back into the manager (hand the alarm to the bus).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from gateway.alarms import lifecycle as lc
from gateway.alarms import persistence as db
from gateway.alarms.alarmset import AlarmSet
from gateway.alarms.batch import Batch
from gateway.alarms.commands import (
    CommandOutcome,
    authorize,
    check_scope,
    parse_command,
    refusal_event,
)
from gateway.alarms.config import AlarmsConfig
from gateway.alarms.errors import (
    AlarmActionError,
    AlarmConfigError,
    AlarmStoreUnavailable,
    InvalidAction,
)
from gateway.alarms.record import AlarmRecord
from gateway.alarms.topology import Topology
from gateway.alarms.trackers import FloodState
from gateway.clock import Clock
from gateway.model import Alarm, Command, Event
from gateway.rules.condition import ConditionChange, RuleInfo
from gateway.storage.eventstore import EventStore, EventStoreUnavailable, append_in

__all__ = ["AlarmManager"]

log = logging.getLogger(__name__)

_S = 1_000_000_000
_FLOOD_LOOKBACK_NS = 7 * 86_400 * _S
_DUE_SLACK_NS = 1_000_000  # a deadline within 1 ms counts as due (float clock rounding)

Step = Callable[[AlarmSet, Batch], None]


class AlarmManager:
    """Owns every alarm of the site: call :meth:`load` once, then :meth:`apply`
    rule changes, operator actions, :meth:`handle_command` and :meth:`tick`
    (or :meth:`run`)."""

    def __init__(
        self,
        store: EventStore,
        publish: Callable[[Alarm], Awaitable[None]],
        clock: Clock,
        config: AlarmsConfig,
        rules: Mapping[str, RuleInfo],
        upstream: Mapping[str, Sequence[str]],
        *,
        maintenance: Iterable[str] = (),
        publish_event: Callable[[Event], Awaitable[None]] | None = None,
    ) -> None:
        """``maintenance``: devices the site file puts in maintenance;
        ``publish_event``: where flood, maintenance and refusal events go besides
        the store (the bus), if anywhere. Raises AlarmConfigError."""
        rooms = set(config.control_rooms)
        strays = sorted(
            f"{r.id} ({r.control_room!r})" for r in rules.values() if r.control_room not in rooms
        )
        if strays:
            raise AlarmConfigError(
                f"rules name control rooms that alarms.control_rooms does not list "
                f"({', '.join(config.control_rooms)}): {', '.join(strays)}"
            )
        self._store = store
        self._publish = publish
        self._publish_event = publish_event
        self._clock = clock
        self._config = config
        self._set = AlarmSet(config, rules, Topology(upstream), maintenance)
        self._lock = asyncio.Lock()
        self._publish_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loaded = False
        self._store_down = False

    # -- state for the UI, the escalator and the runtime -------------------------

    @property
    def store_down(self) -> bool:
        """True while a batch waits for the event store to come back."""
        return self._store_down

    @property
    def maintenance(self) -> frozenset[str]:
        return self._set.maintenance

    @property
    def down_devices(self) -> frozenset[str]:
        """Devices with an active alarm of a rule that marks its device down."""
        return frozenset(self._set.down)

    def get(self, alarm_id: str) -> AlarmRecord | None:
        return self._set.records.get(alarm_id)

    def records(self) -> list[AlarmRecord]:
        """Every alarm that is not plainly normal, oldest activation first."""
        return sorted(self._set.records.values(), key=lambda r: (r.activated_ts, r.id))

    def flood(self, control_room: str) -> FloodState:
        return self._set.flood(control_room, self._clock.time_ns())

    def next_deadline(self) -> int | None:
        """UTC ns when :meth:`tick` must run next (None: nothing pending)."""
        return self._set.next_deadline()

    # -- restart ----------------------------------------------------------------

    async def load(self) -> list[tuple[str, str]]:
        """Reload the alarms from the store; returns the (rule, source) pairs whose
        condition is active, for ``RuleEngine.seed``. Raises EventStoreError."""
        now = self._clock.time_ns()
        cfg = self._config
        lookback = round(max(cfg.chattering.window_s, cfg.flood.window_s) * _S)
        records = await db.read_records(self._store)
        maintenance = await db.read_maintenance(self._store, self._set.site_maintenance)
        activations = await db.read_activations(self._store, now - lookback)
        floods = await db.read_floods(self._store, now - _FLOOD_LOOKBACK_NS)
        async with self._lock:
            fresh = AlarmSet(cfg, self._set.rules, self._set.topology, self._set.site_maintenance)
            fresh.restore(
                records, maintenance=maintenance, activations=activations, floods=floods, now=now
            )
            self._set = fresh
            self._loaded = True
        await self._system(lambda s, b: s.resuppress_all(b, now))
        log.info("alarm manager loaded %d alarms", len(self._set.records))
        return sorted(
            (r.rule, r.source) for r in self._set.records.values() if r.active and not r.orphan
        )

    # -- conditions and time -------------------------------------------------------

    async def apply(self, changes: Sequence[ConditionChange]) -> list[Alarm]:
        """Turn a batch of condition changes into transitions: stored in one
        transaction, then published. Waits (retrying with backoff) while the store
        is unavailable; returns the announced alarms."""
        if not changes:
            return []

        def step(s: AlarmSet, b: Batch) -> None:
            for ch in changes:
                s.apply_change(b, ch)

        return await self._system(step)

    async def tick(self, now_ns: int | None = None) -> list[Alarm]:
        """Shelve expiry, the end of chattering episodes and of floods."""
        now = self._clock.time_ns() if now_ns is None else now_ns
        return await self._system(lambda s, b: s.tick(b, now))

    async def run(self) -> None:
        """Call :meth:`tick` whenever a deadline is due, until cancelled."""
        while True:
            self._wake.clear()
            now = self._clock.time_ns()
            due = self.next_deadline()
            if due is not None and due <= now + _DUE_SLACK_NS:
                await self.tick(max(now, due))
                continue
            waiter = asyncio.ensure_future(self._wake.wait())
            sleeper = (
                asyncio.ensure_future(self._clock.sleep((due - now) / _S))
                if due is not None
                else None
            )
            pending = {waiter} if sleeper is None else {waiter, sleeper}
            try:
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for fut in pending:
                    fut.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await fut

    # -- operator actions -------------------------------------------------------------

    async def acknowledge(self, id: str, user: str, note: str = "", origin: str = "") -> Alarm:
        ts = self._clock.time_ns()
        return await self._one(id, lambda r: lc.acknowledge(r, user, ts), ts, user, note, origin)

    async def reset(self, id: str, user: str, note: str = "", origin: str = "") -> Alarm:
        """Release a latched alarm (acknowledged, condition gone)."""
        ts = self._clock.time_ns()
        return await self._one(id, lambda r: lc.reset(r, ts), ts, user, note, origin)

    async def shelve(
        self, id: str, user: str, reason: str, duration_s: float, origin: str = ""
    ) -> Alarm:
        """Hide an alarm for ``duration_s`` (at most ``shelve.max_hours``); it
        comes back by itself when the time is up."""
        max_s = self._config.shelve.max_hours * 3600
        if isinstance(duration_s, bool) or not isinstance(duration_s, int | float):
            raise InvalidAction("alarms.error.bad_argument", name="duration_s")
        if not 0 < duration_s <= max_s:
            raise InvalidAction(
                "alarms.error.duration",
                duration_s=duration_s,
                max_hours=self._config.shelve.max_hours,
            )
        if self._config.shelve.reason_required and not reason.strip():
            raise InvalidAction("alarms.error.reason_required", action="shelve")
        ts = self._clock.time_ns()
        until = ts + round(duration_s * _S)
        return await self._one(
            id, lambda r: lc.shelve(r, user, reason, until, ts), ts, user, reason, origin
        )

    async def unshelve(self, id: str, user: str, note: str = "", origin: str = "") -> Alarm:
        ts = self._clock.time_ns()
        return await self._one(id, lambda r: lc.unshelve(r, ts), ts, user, note, origin)

    async def comment(self, id: str, user: str, note: str, origin: str = "") -> Alarm:
        ts = self._clock.time_ns()
        return await self._one(id, lambda r: lc.comment(r, note, ts), ts, user, note, origin)

    async def out_of_service(self, id: str, user: str, reason: str, origin: str = "") -> Alarm:
        ts = self._clock.time_ns()
        return await self._one(
            id, lambda r: lc.remove_from_service(r, user, reason, ts), ts, user, reason, origin
        )

    async def return_to_service(
        self, id: str, user: str, note: str = "", origin: str = ""
    ) -> Alarm:
        ts = self._clock.time_ns()
        return await self._one(id, lambda r: lc.return_to_service(r, ts), ts, user, note, origin)

    async def set_maintenance(
        self, device: str, on: bool, user: str, reason: str = "", origin: str = ""
    ) -> list[Alarm]:
        """Put ``device`` in maintenance (every alarm of it suppressed) or take it out."""
        _check_user(user)
        ts = self._clock.time_ns()
        return await self._action(
            lambda s, b: s.set_maintenance(
                b, device, on, ts, user=user, reason=reason, origin=origin
            )
        )

    async def handle_command(self, cmd: Command) -> CommandOutcome:
        """Run a bus command (target ``"alarms"``) after the role check; a refusal
        is stored as an ``alarm.command_refused`` event and returned, never raised."""
        rec: AlarmRecord | None = None
        try:
            parsed = parse_command(cmd)
            perm = authorize(cmd.role, parsed.action)
            if parsed.id:
                rec = self._set.get(parsed.id)
                check_scope(cmd.role, perm, parsed.action, rec)
            user, origin = cmd.user, cmd.origin
            match parsed.action:
                case "acknowledge":
                    alarms = [await self.acknowledge(parsed.id, user, parsed.note, origin)]
                case "reset":
                    alarms = [await self.reset(parsed.id, user, parsed.note, origin)]
                case "shelve":
                    alarms = [
                        await self.shelve(
                            parsed.id, user, parsed.reason or parsed.note, parsed.duration_s, origin
                        )
                    ]
                case "unshelve":
                    alarms = [await self.unshelve(parsed.id, user, parsed.note, origin)]
                case "comment":
                    alarms = [await self.comment(parsed.id, user, parsed.note, origin)]
                case "out_of_service":
                    alarms = [
                        await self.out_of_service(
                            parsed.id, user, parsed.reason or parsed.note, origin
                        )
                    ]
                case "return_to_service":
                    alarms = [await self.return_to_service(parsed.id, user, parsed.note, origin)]
                case _:  # maintenance
                    alarms = await self.set_maintenance(
                        parsed.device, parsed.on, user, parsed.reason, origin
                    )
        except AlarmActionError as exc:
            await self._refused(cmd, exc, rec)
            return CommandOutcome(ok=False, error=exc)
        return CommandOutcome(ok=True, alarms=tuple(alarms))

    # -- plumbing --------------------------------------------------------------------

    async def _one(
        self,
        aid: str,
        step: Callable[[AlarmRecord], tuple[AlarmRecord, str]],
        ts: int,
        user: str,
        note: str,
        origin: str,
    ) -> Alarm:
        _check_user(user)
        alarms = await self._action(
            lambda s, b: s.action(b, aid, step, ts, user=user, note=note, origin=origin)
        )
        return next(a for a in alarms if a.id == aid)

    async def _action(self, step: Step) -> list[Alarm]:
        if self._store_down:
            raise AlarmStoreUnavailable("alarms.error.store_unavailable")
        return await self._commit(step, retry=False)

    async def _system(self, step: Step) -> list[Alarm]:
        return await self._commit(step, retry=True)

    async def _commit(self, step: Step, *, retry: bool) -> list[Alarm]:
        if not self._loaded:
            raise RuntimeError("AlarmManager.load() must run before anything else")
        async with self._lock:
            saved = self._set.copy()
            batch = Batch()
            try:
                step(self._set, batch)
                if batch.empty:
                    return []
                await self._write(batch, retry=retry)
            except BaseException:
                self._set = saved  # nothing of the batch happened
                raise
            self._wake.set()
            await self._publish_lock.acquire()  # keeps announcements in store order
        try:
            for alarm in batch.alarms:
                await self._publish(alarm)
            if self._publish_event is not None:
                for event in batch.notices:
                    await self._publish_event(event)
        finally:
            self._publish_lock.release()
        return batch.alarms

    async def _write(self, batch: Batch, *, retry: bool) -> None:
        delay = self._config.store_retry.initial_s
        while True:
            try:
                await db.write_batch(self._store, batch)
            except EventStoreUnavailable as exc:
                if not retry:
                    raise AlarmStoreUnavailable("alarms.error.store_unavailable") from exc
                if not self._store_down:
                    log.warning(
                        "alarm transitions wait for the event store (%d held, retrying): %s",
                        len(batch.events),
                        exc,
                    )
                self._store_down = True
                await self._clock.sleep(delay)
                delay = min(delay * 2, self._config.store_retry.max_s)
                continue
            if self._store_down:
                log.warning("event store writable again; held alarm transitions stored")
                self._store_down = False
            return

    async def _refused(self, cmd: Command, exc: AlarmActionError, rec: AlarmRecord | None) -> None:
        event = refusal_event(cmd, exc, rec, self._clock.time_ns())
        log.info(
            "alarm command refused: %s %s by %s (%s): %s",
            cmd.action,
            event.data["alarm"],
            cmd.user,
            cmd.role,
            exc,
        )
        if self._store_down:  # do not wait on a store known to be down; the log keeps it
            log.warning(
                "refusal of %s by %s not stored: the event store is down", cmd.action, cmd.user
            )
        else:
            try:
                async with self._store.begin() as conn:
                    await append_in(conn, [event])
            except EventStoreUnavailable as store_exc:
                log.warning("refusal of %s by %s not stored: %s", cmd.action, cmd.user, store_exc)
        if self._publish_event is not None:
            await self._publish_event(event)


def _check_user(user: str) -> None:
    if not isinstance(user, str) or not user.strip():
        raise InvalidAction("alarms.error.user_required")
