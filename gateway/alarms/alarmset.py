"""The alarms in memory and the synchronous rules that change them.

:class:`AlarmSet` is the manager's state: records, the devices in maintenance,
the devices that are down, and the chattering and flood windows. Its methods
apply one ConditionChange, one operator action or the passing of time, and
append every resulting transition to a :class:`Batch` (table rows, events, the
:class:`~gateway.model.Alarm` objects to announce). It does no I/O: the
manager snapshots it with :meth:`AlarmSet.copy`, lets it compute a batch,
stores the batch and only then announces it (or restores the snapshot).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from gateway.alarms import lifecycle as lc
from gateway.alarms import trackers
from gateway.alarms.batch import Batch
from gateway.alarms.config import AlarmsConfig
from gateway.alarms.errors import ActionNotAllowed, AlarmNotFound, InvalidAction
from gateway.alarms.record import AlarmRecord
from gateway.alarms.topology import Topology
from gateway.alarms.trackers import FloodState
from gateway.model import AlarmState, Category, Priority
from gateway.rules.condition import ConditionChange, RuleInfo, alarm_id

__all__ = ["FLOOD_ENDED", "FLOOD_STARTED", "MAINTENANCE", "AlarmSet"]

log = logging.getLogger(__name__)

FLOOD_STARTED = "alarm.flood_started"
FLOOD_ENDED = "alarm.flood_ended"
MAINTENANCE = "alarm.maintenance"
_ACTIVATIONS = (lc.ACTIVATED, lc.REACTIVATED)
_S = 1_000_000_000


class AlarmSet:
    def __init__(
        self,
        config: AlarmsConfig,
        rules: Mapping[str, RuleInfo],
        topology: Topology,
        maintenance: Iterable[str] = (),
    ) -> None:
        self.config = config
        self.rules = rules
        self.topology = topology
        self.site_maintenance = frozenset(maintenance)  # what the site file says
        self.records: dict[str, AlarmRecord] = {}
        self.maintenance: frozenset[str] = self.site_maintenance
        self.down: dict[str, frozenset[str]] = {}  # device -> active alarms marking it down
        self.chatter: dict[str, tuple[int, ...]] = {}
        self.chattering: frozenset[str] = frozenset()
        self.flood_windows: dict[str, tuple[int, ...]] = {}
        self.floods: dict[str, FloodState] = {}
        self._chatter_ns = round(config.chattering.window_s * _S)
        self._flood_ns = round(config.flood.window_s * _S)
        self._unknown_rules: dict[str, RuleInfo] = {}

    def copy(self) -> AlarmSet:
        """A snapshot: the containers are copied, their values are immutable."""
        other = copy.copy(self)
        other.records = dict(self.records)
        other.down = dict(self.down)
        other.chatter = dict(self.chatter)
        other.flood_windows = dict(self.flood_windows)
        other.floods = dict(self.floods)
        return other

    # -- lookups ---------------------------------------------------------------

    def info(self, rule: str) -> RuleInfo:
        known = self.rules.get(rule)
        if known is not None:
            return known
        info = self._unknown_rules.get(rule)
        if info is None:
            log.warning("condition of unknown rule %r: handled as a medium IT alarm", rule)
            info = RuleInfo(rule, "unknown", Priority.MEDIUM, Category.IT, "it")
            self._unknown_rules[rule] = info
        return info

    def get(self, aid: str) -> AlarmRecord:
        rec = self.records.get(aid)
        if rec is None:
            raise AlarmNotFound("alarms.error.not_found", id=aid)
        return rec

    def suppressors(self, rec: AlarmRecord) -> tuple[str, ...]:
        """Why ``rec`` is suppressed by design (empty: it is not)."""
        if not rec.device:
            return ()
        out: list[str] = []
        if rec.device in self.maintenance:
            out.append(f"maintenance:{rec.device}")
        info = self.rules.get(rec.rule)
        inhibitable = rec.level in ("L", "LL") or (
            info is not None and info.inhibit_on_upstream_down
        )
        if inhibitable:
            out.extend(
                f"upstream:{up}"
                for up in sorted(self.topology.upstream_of(rec.device))
                if self.down.get(up)
            )
        return tuple(out)

    def flood(self, room: str, now_ns: int) -> FloodState:
        state = self.floods.get(room, FloodState())
        window = trackers.prune(self.flood_windows.get(room, ()), now_ns, self._flood_ns)
        return replace(state, count=len(window))

    # -- conditions ------------------------------------------------------------

    def apply_change(self, batch: Batch, ch: ConditionChange) -> None:
        aid = alarm_id(ch.rule, ch.source)
        rec = self.records.get(aid)
        info = self.info(ch.rule)
        before = rec.state if rec is not None else AlarmState.NORMAL
        if ch.active:
            result = lc.activate(rec, ch, info, latch_critical=self.config.latch_critical)
        else:
            result = lc.clear(rec, ch)
        if result is None:
            return
        new, transition = result
        activation = transition in _ACTIVATIONS
        if activation:
            new = replace(
                new, suppressed_by=self.suppressors(new), chattering=aid in self.chattering
            )
        higher = (
            transition == lc.LEVEL_CHANGED
            and rec is not None
            and lc.PRIORITY_RANK[new.priority] > lc.PRIORITY_RANK[rec.priority]
        )
        new = self._emit(batch, before, new, transition, ch.ts, annunciate=True if higher else None)
        if not activation:
            self._resuppress_one(batch, new, ch.ts)
        if activation:
            self._count_activation(batch, new, ch.ts)
        if info.marks_device_down and new.device and transition in (*_ACTIVATIONS, lc.CLEARED):
            self._set_down(batch, new.device, aid, new.active, ch.ts)

    def _count_activation(self, batch: Batch, rec: AlarmRecord, ts: int) -> None:
        window = trackers.add(self.chatter.get(rec.id, ()), ts, self._chatter_ns)
        self.chatter[rec.id] = window
        cfg = self.config
        if len(window) >= cfg.chattering.count and rec.id not in self.chattering:
            self.chattering = self.chattering | {rec.id}
            new, transition = lc.set_chattering(self.records.get(rec.id, rec), True, ts)
            self._emit(batch, new.state, new, transition, ts, extra={"activations": len(window)})
        if rec.state is not AlarmState.UNACKNOWLEDGED:
            return  # hidden at activation: not presented, not part of a flood
        room = rec.control_room
        flood_window = trackers.add(self.flood_windows.get(room, ()), ts, self._flood_ns)
        self.flood_windows[room] = flood_window
        state = self.floods.get(room, FloodState())
        if not state.active and len(flood_window) > cfg.flood.start_above:
            self.floods[room] = FloodState(True, ts, len(flood_window))
            batch.notice(FLOOD_STARTED, room, ts, control_room=room, count=len(flood_window))

    def _set_down(self, batch: Batch, device: str, aid: str, active: bool, ts: int) -> None:
        ids = self.down.get(device, frozenset())
        was_down = bool(ids)
        ids = ids | {aid} if active else ids - {aid}
        if ids:
            self.down[device] = ids
        else:
            self.down.pop(device, None)
        if was_down != bool(ids):
            self._resuppress(batch, self.topology.dependants_of(device), ts)

    # -- operator actions --------------------------------------------------------

    def action(
        self,
        batch: Batch,
        aid: str,
        step: Callable[[AlarmRecord], tuple[AlarmRecord, str]],
        ts: int,
        *,
        user: str,
        note: str,
        origin: str,
    ) -> None:
        """Apply one operator action (a :mod:`lifecycle` step) to alarm ``aid``."""
        rec = self.get(aid)
        new, transition = step(rec)
        self._emit(batch, rec.state, new, transition, ts, user=user, note=note, origin=origin)

    def set_maintenance(
        self, batch: Batch, device: str, on: bool, ts: int, *, user: str, reason: str, origin: str
    ) -> None:
        if not device:
            raise InvalidAction("alarms.error.bad_argument", name="device")
        if on == (device in self.maintenance):
            key = "alarms.error.already_maintenance" if on else "alarms.error.not_maintenance"
            raise ActionNotAllowed(key, device=device)
        if on and not reason.strip():
            raise InvalidAction("alarms.error.reason_required", action="maintenance")
        self.maintenance = self.maintenance | {device} if on else self.maintenance - {device}
        batch.notice(
            MAINTENANCE,
            device,
            ts,
            device=device,
            on=on,
            user=user,
            reason=reason,
            origin=origin,
            site_file=device in self.site_maintenance,
        )
        self._resuppress(batch, frozenset({device}), ts, user=user, note=reason, origin=origin)

    # -- time ------------------------------------------------------------------

    def tick(self, batch: Batch, now: int) -> None:
        for rec in list(self.records.values()):
            if rec.shelved_until is not None and rec.shelved_until <= now:
                new, transition = lc.expire_shelve(rec, now)
                self._emit(batch, rec.state, new, transition, now)
        cfg = self.config
        for aid, window in list(self.chatter.items()):
            kept = trackers.prune(window, now, self._chatter_ns)
            if kept:
                self.chatter[aid] = kept
            else:
                del self.chatter[aid]
        for aid in sorted(self.chattering):
            if len(self.chatter.get(aid, ())) >= cfg.chattering.count:
                continue
            self.chattering = self.chattering - {aid}
            chatterer = self.records.get(aid)
            if chatterer is not None:
                new, transition = lc.set_chattering(chatterer, False, now)
                self._emit(batch, chatterer.state, new, transition, now)
        for room, window in list(self.flood_windows.items()):
            kept = trackers.prune(window, now, self._flood_ns)
            self.flood_windows[room] = kept
            state = self.floods.get(room, FloodState())
            if state.active and len(kept) < cfg.flood.end_below:
                self.floods[room] = FloodState(False, None, len(kept))
                since = state.since_ns if state.since_ns is not None else now
                batch.notice(
                    FLOOD_ENDED,
                    room,
                    now,
                    control_room=room,
                    count=len(kept),
                    since_ns=since,
                    duration_s=round((now - since) / _S, 3),
                )

    def next_deadline(self) -> int | None:
        """UTC ns when :meth:`tick` has work (None: nothing is pending)."""
        due = [r.shelved_until for r in self.records.values() if r.shelved_until is not None]
        cfg = self.config
        due.extend(
            trackers.deadline_below(
                self.chatter.get(aid, ()), cfg.chattering.count, self._chatter_ns
            )
            for aid in self.chattering
        )
        due.extend(
            trackers.deadline_below(
                self.flood_windows.get(room, ()), cfg.flood.end_below, self._flood_ns
            )
            for room, state in self.floods.items()
            if state.active
        )
        return min(due) if due else None

    # -- restart ---------------------------------------------------------------

    def restore(
        self,
        records: Iterable[AlarmRecord],
        *,
        maintenance: frozenset[str],
        activations: Iterable[tuple[str, str, int, bool]],
        floods: Mapping[str, int],
        now: int,
    ) -> None:
        """Install what a restart found in the store: records, the maintenance
        set, recent activations ``(alarm id, control room, ts, annunciated)``
        and the floods still running ``{room: since_ns}``."""
        self.maintenance = maintenance
        for rec in records:
            orphan = rec.rule not in self.rules
            if orphan != rec.orphan:
                rec = replace(rec, orphan=orphan)
            self.records[rec.id] = rec
            info = self.rules.get(rec.rule)
            if rec.active and rec.device and info is not None and info.marks_device_down:
                self.down[rec.device] = self.down.get(rec.device, frozenset()) | {rec.id}
        for aid, room, ts, annunciated in activations:
            if ts > now - self._chatter_ns:
                self.chatter[aid] = trackers.add(self.chatter.get(aid, ()), ts, self._chatter_ns)
            if annunciated and ts > now - self._flood_ns:
                self.flood_windows[room] = trackers.add(
                    self.flood_windows.get(room, ()), ts, self._flood_ns
                )
        self.chattering = frozenset(aid for aid, rec in self.records.items() if rec.chattering)
        for room, since in floods.items():
            count = len(self.flood_windows.get(room, ()))
            self.floods[room] = FloodState(True, since, count)
            self.flood_windows.setdefault(room, ())

    def resuppress_all(self, batch: Batch, now: int) -> None:
        """Bring every record's suppression in line with the present topology,
        maintenance and down devices (after a restart)."""
        self._resuppress(batch, None, now)

    # -- plumbing ----------------------------------------------------------------

    def _resuppress(
        self,
        batch: Batch,
        devices: frozenset[str] | None,
        ts: int,
        *,
        user: str = "",
        note: str = "",
        origin: str = "",
    ) -> None:
        for rec in list(self.records.values()):
            if devices is None or rec.device in devices:
                self._resuppress_one(batch, rec, ts, user=user, note=note, origin=origin)

    def _resuppress_one(
        self,
        batch: Batch,
        rec: AlarmRecord,
        ts: int,
        *,
        user: str = "",
        note: str = "",
        origin: str = "",
    ) -> None:
        new, transition = lc.set_suppression(rec, self.suppressors(rec), ts)
        if transition is not None:
            self._emit(batch, rec.state, new, transition, ts, user=user, note=note, origin=origin)
        elif new is not rec:
            self._put(batch, new)

    def _put(self, batch: Batch, rec: AlarmRecord) -> None:
        if rec.removable:
            self.records.pop(rec.id, None)
            batch.rows[rec.id] = None
        else:
            self.records[rec.id] = rec
            batch.rows[rec.id] = rec

    def _emit(
        self,
        batch: Batch,
        before: AlarmState,
        rec: AlarmRecord,
        transition: str,
        ts: int,
        *,
        user: str = "",
        note: str = "",
        origin: str = "",
        annunciate: bool | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> AlarmRecord:
        rec = lc.mark_annunciated(rec)
        after = rec.state
        if annunciate is None:
            annunciate = (
                after is AlarmState.UNACKNOWLEDGED and before is not AlarmState.UNACKNOWLEDGED
            )
        self._put(batch, rec)
        batch.announce(
            rec,
            transition,
            ts,
            user=user,
            note=note,
            origin=origin,
            annunciate=annunciate,
            extra=extra,
        )
        return rec
