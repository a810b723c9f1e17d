"""The alarm chain of one site, wired from its site file:

    bus (readings, events) -> RuleService/RuleEngine -> AlarmManager (stores,
    then publishes model.Alarm) -> bus -> Escalator -> Dispatcher -> channels

plus the alarm commands (``Command(target="alarms")`` from the API, MQTT or a
signed link) and the HTTP routes of the acknowledgement links. Each part
lives in its own package (``gateway.rules``, ``gateway.alarms``,
``gateway.notify``); this module only connects them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import APIRouter

from gateway.alarms import AlarmActionError, AlarmManager, AlarmStoreUnavailable
from gateway.bus import Bus, BusClosed
from gateway.clock import Clock
from gateway.config.loader import LoadedSite
from gateway.model import Alarm, Command, Event, Reading
from gateway.notify.ack_router import AckRejected, ack_router
from gateway.notify.acklink import AckLinks, load_secret
from gateway.notify.channels import build_channels
from gateway.notify.dispatcher import Dispatcher
from gateway.notify.escalation import Escalator
from gateway.notify.roster import Roster
from gateway.rules import ConditionChange, RuleEngine, RuleService
from gateway.storage.eventstore import EventStore, EventStoreError, EventStoreUnavailable

__all__ = ["SELF_STORED_EVENTS", "Alerting"]

log = logging.getLogger("gateway.alerting")

# Event types the alarm manager writes to the event store itself (in the
# transaction of the transition) and then publishes; the recorder skips them.
# (The escalator's notify.* and oncall.* events are stored, not published.)
# access.granted / access.denied are rows of access_passages, written by the
# access service in the transaction of its decisions; so are the readers' own
# card.presented / card.decision / plate.read events, which carry the raw UID,
# QR token or PIN: the passage keeps them only as a keyed hash and a mask.
SELF_STORED_EVENTS = (
    "alarm.",
    "access.granted",
    "access.denied",
    "card.presented",
    "card.decision",
    "plate.read",
)

_DAY_NS = 86_400 * 1_000_000_000

ServiceFn = Callable[[], Coroutine[Any, Any, None]]


class Alerting:
    """Builds the chain (no I/O in the constructor); :meth:`open` loads the
    stored state; :meth:`services` are the tasks to run; :meth:`close` lets
    the notifications in flight finish."""

    def __init__(self, site: LoadedSite, bus: Bus, store: EventStore, clock: Clock) -> None:
        cfg = site.config
        self.site = site
        self.bus = bus
        self.clock = clock
        self._devices = cfg.device_map()
        declared = [f"{d.id}.{p}" for d in cfg.devices for p in d.points]
        known = list(dict.fromkeys([*(p.point for p in site.points), *declared]))
        # Units the site file declares under devices[].points, then the drivers' own.
        self._units = {
            f"{d.id}.{name}": p.unit for d in cfg.devices for name, p in d.points.items() if p.unit
        }
        self._units.update({p.point: p.unit for p in site.points if p.unit})
        self.engine = RuleEngine(
            site.rules,
            known_points=known,
            device_kinds=site.device_kinds(),
            timezone=cfg.site.timezone,
            calendar=cfg.calendar,
            start_ns=clock.time_ns(),
            units=self._units,
        )
        self.manager = AlarmManager(
            store,
            bus.publish,
            clock,
            cfg.alarms,
            self.engine.infos,
            {d.id: list(d.upstream) for d in cfg.devices},
            maintenance=[d.id for d in cfg.devices if d.maintenance],
            publish_event=bus.publish,
        )
        self.dispatcher = Dispatcher(build_channels(cfg.notify.channels, clock=clock), store, clock)
        self.roster = Roster(cfg.oncall, cfg.site.timezone)
        self.links = AckLinks.from_config(store, cfg.oncall, load_secret(site.data_dir), clock)
        self.escalator = Escalator(
            store,
            self.roster,
            cfg.oncall,
            self.dispatcher,
            self.links,
            clock,
            self.describe,
            lambda room: self.manager.flood(room).active,
            site=cfg.site.id,
        )
        # Subscribed at construction, before any driver can publish.
        self._rules_sub = bus.subscribe("rules", (Reading, Event), maxsize=100_000)
        self._commands_sub = bus.subscribe(
            "alarms.commands",
            (Command,),
            accept=lambda m: isinstance(m, Command) and m.target == "alarms",
        )
        self._alarms_sub = bus.subscribe("escalation", (Alarm,), maxsize=100_000)

    async def open(self) -> None:
        """Reload active alarms (and tell the engine which conditions stood) and
        resume the escalations that were running."""
        self.engine.seed(await self.manager.load())
        await self.escalator.load()

    def services(self) -> dict[str, ServiceFn]:
        rules = RuleService(self.engine, self._rules_sub, self.clock, self._apply)
        return {
            "rules": rules.run,
            "alarms": self.manager.run,
            "alarm-commands": self._commands,
            "escalation-feed": self._feed_escalator,
            "escalation": self.escalator.run,
            "ack-link-purge": self._purge_links,
        }

    def routers(self) -> list[APIRouter]:
        cfg = self.site.config
        return [
            ack_router(
                self.links,
                self._link_acknowledge,
                roster=self.roster,
                lookup=self._lookup,
                timezone=cfg.site.timezone,
                default_locale=cfg.site.locale,
            )
        ]

    async def close(self) -> None:
        """Stop taking work; let the deliveries in flight finish (bounded)."""
        for sub in (self._rules_sub, self._commands_sub, self._alarms_sub):
            self.bus.unsubscribe(sub)
        await self.dispatcher.close()

    # -- the links between the parts --------------------------------------------
    async def _apply(self, changes: list[ConditionChange]) -> None:
        await self.manager.apply(changes)

    async def _purge_links(self) -> None:
        """Forget acknowledgement links a day after they expired, once an hour."""
        while True:
            try:
                n = await self.links.purge(self.clock.time_ns() - _DAY_NS)
                if n:
                    log.info("purged %d expired acknowledgement links", n)
            except EventStoreError as e:
                log.warning("cannot purge expired acknowledgement links: %s", e)
            await self.clock.sleep(3600)

    async def _commands(self) -> None:
        """Bus commands to the alarms; a refusal is logged and stored by the manager."""
        while True:
            try:
                batch = await self._commands_sub.get_batch(100)
            except BusClosed:
                return
            for msg in batch:
                if isinstance(msg, Command):
                    await self.manager.handle_command(msg)

    async def _feed_escalator(self) -> None:
        while True:
            try:
                batch = await self._alarms_sub.get_batch(500)
            except BusClosed:
                return
            await self.escalator.on_alarms([m for m in batch if isinstance(m, Alarm)])

    async def _link_acknowledge(self, alarm_id: str, person: str, note: str, origin: str) -> None:
        """One tap on a signed link: the person the link was sent to acknowledges."""
        name = self.roster.people[person].name if person in self.roster.people else person
        try:
            await self.manager.acknowledge(alarm_id, name, note, origin=origin)
        except AlarmStoreUnavailable as e:
            # 503 for the person; the link stays usable for a second tap.
            raise EventStoreUnavailable(str(e)) from e
        except AlarmActionError as e:
            locale = self.roster.people[person].locale if person in self.roster.people else "en"
            raise AckRejected(e.text(locale)) from e

    async def _lookup(self, alarm_id: str) -> Mapping[str, Any] | None:
        rec = self.manager.get(alarm_id)
        if rec is None:
            return None
        return self.describe(rec.as_alarm())

    def describe(self, alarm: Alarm) -> Mapping[str, Any]:
        """The AlarmView of the messages: what, where, the value against the limit."""
        data = alarm.data
        dev = self._devices.get(alarm.device)
        return {
            "id": alarm.id,
            "rule": alarm.rule,
            "description": data.get("description") or alarm.message or alarm.rule,
            "priority": alarm.priority.value,
            "category": alarm.category,
            "state": alarm.state.value,
            "device": alarm.device,
            "device_name": (dev.name if dev else "") or alarm.device,
            "location": dev.location if dev else "",
            "source": alarm.source,
            "value": data.get("value"),
            "limit": data.get("limit"),
            "unit": data.get("unit") or self._units.get(alarm.source, ""),
            "level": data.get("level", ""),
            "ts": alarm.ts,
            "count": data.get("count", 1),
            "control_room": data.get("control_room", "main"),
        }
