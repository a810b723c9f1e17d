"""The access service: card reads in, door commands and passages out.

It subscribes at construction (before any driver can publish) to the card
and door events and to the readings of the doors' input points, and runs one
loop (:meth:`AccessService.run`):

- **decide** doors: a batch of reads (up to ``access.decision_batch``) is
  decided in memory (:class:`~gateway.access.decision.Decider`), then written
  in ONE transaction (passages, presence, visitor uses). Only after the
  commit does a door open: the relay command first, then the reader's
  feedback, then ``access.granted``/``access.denied`` and the decisions'
  alarm events. If the store fails, nothing of the batch is acted on (fail
  secure): every read gets a deny feedback, the memory is put back as it
  was, ``access.store_down`` is published, and the next batch tries again.
- **monitor** doors: a controller's ``card.decision`` is recorded as it
  decided (reason ``controller``, its own words in data), and presence
  follows its grants; no command is sent. A batch that cannot be stored is
  kept and retried (these passages happened).
- door inputs (contact, exit button, passage counter, barrier loops) go to
  each door's :class:`~gateway.access.supervision.DoorSupervisor`, which is
  told of every grant. A batch is split at an input, so a door's grant is
  known before the opening that follows it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.access.cards import (
    CardHasher,
    CardValueError,
    ValueClass,
    canonical_plate,
    canonical_uid,
    load_access_key,
)
from gateway.access.config import DoorConfig, ReaderBinding
from gateway.access.credentials import CredentialStore
from gateway.access.decision import CardRead, Decider, Decision, Reason, mask_read
from gateway.access.passages import UNKNOWN_KIND, Passage, PassageLog
from gateway.access.presence import Presence, PresenceEntry
from gateway.access.supervision import INPUT_EVENTS, DoorInputs, DoorSupervisor
from gateway.bus import Bus, BusClosed
from gateway.clock import Clock
from gateway.model import Command, Event, Message, Reading, split_point
from gateway.storage.eventstore import EventStore, EventStoreError

if TYPE_CHECKING:
    from gateway.config.loader import LoadedSite

__all__ = ["CARRY_MAX", "EVENT_TYPES", "AccessService", "AccessServiceError"]

log = logging.getLogger("gateway.access")

_READS = frozenset({"card.presented", "plate.read", "card.decision", "card.read_error"})
EVENT_TYPES = _READS | INPUT_EVENTS
CARRY_MAX = 10_000  # monitor passages kept for a retry while the store is down
STORE_DOWN = "access.store_down"


class AccessServiceError(Exception):
    """The service cannot start (no key for the card hashes, store unreadable)."""


@dataclass(slots=True)
class _Item:
    """One read waiting for its batch: what was read where, and its decision."""

    door: DoorConfig
    binding: ReaderBinding
    ts: int
    cls: ValueClass | None  # None: a read error
    value: str
    fmt: str
    controller: Mapping[str, Any] | None = None  # monitor mode: the card.decision data
    decision: Decision | None = None

    @property
    def read(self) -> CardRead:
        assert self.cls is not None
        b = self.binding
        return CardRead(b.device, self.door, b.direction, self.ts, self.cls, self.value, self.fmt)


@dataclass(slots=True)
class _Undo:
    presence: dict[str, PresenceEntry | None] = field(default_factory=dict)
    uses: dict[str, int | None] = field(default_factory=dict)


class AccessService:
    """Decides, records and supervises the doors of one site. The constructor
    subscribes (no I/O); :meth:`open` loads credentials and presence;
    :meth:`run` is the loop; :meth:`close` drains and stops it."""

    def __init__(self, site: LoadedSite, bus: Bus, store: EventStore, clock: Clock) -> None:
        self.site = site
        self.cfg = site.config.access
        self.bus, self.store, self.clock = bus, store, clock
        self.passages = PassageLog(store)
        self.presence = Presence()
        self.credentials: CredentialStore | None = None
        self.decider: Decider | None = None
        self.supervisors = {d.id: DoorSupervisor(d, clock, bus.publish) for d in self.cfg.doors}
        self._readers: dict[tuple[str, int | None], tuple[DoorConfig, ReaderBinding]] = {}
        self.inputs = DoorInputs(self.cfg.doors, self.supervisors)
        self._bind()
        self._pending: list[_Item] = []
        self._carry: list[_Item] = []
        self._unbound_seen: set[tuple[str, int | None]] = set()
        self.unbound = 0  # card events from readers bound to no door
        self.store_failures = 0
        self.lost = 0  # monitor passages dropped after CARRY_MAX while the store was down
        self.decided = 0
        self._running = False
        self._sub = bus.subscribe("access", (Reading, Event), maxsize=20_000, accept=self._wants)

    def _bind(self) -> None:
        for door in self.cfg.doors:
            for b in door.readers:
                self._readers[(b.device, b.reader_no)] = (door, b)

    def _wants(self, msg: Message) -> bool:
        if isinstance(msg, Reading):
            return msg.point in self.inputs.points
        return isinstance(msg, Event) and msg.type in EVENT_TYPES

    # -- lifecycle --------------------------------------------------------------------
    async def open(self) -> None:
        """Load the site's card key, the credentials and where everyone is."""
        try:
            hasher = CardHasher(load_access_key(self.site.data_dir))
        except (OSError, ValueError) as e:
            raise AccessServiceError(f"access control: cannot load the card key: {e}") from e
        self.credentials = CredentialStore(self.store, hasher, self.clock)
        try:
            await self.credentials.load()
            await self.presence.load(self.store)
        except EventStoreError as e:
            raise AccessServiceError(f"access control: cannot load credentials: {e}") from e
        site = self.site.config
        self.decider = Decider(
            self.cfg, site.calendar, site.site.timezone, self.credentials, self.presence
        )
        log.info(
            "access control: %d doors, %d credentials", len(self.cfg.doors), len(self.credentials)
        )

    def services(self) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
        return {"access": self.run, "access-credentials": self.watch_credentials}

    async def watch_credentials(self) -> None:
        """Pick up credentials another process changed (the CLI's import, a second
        gateway on a shared PostgreSQL) every ``access.reload_s``."""
        while True:
            await self.clock.sleep(self.cfg.reload_s)
            if self.credentials is None:
                continue
            try:
                if await self.credentials.reload_if_changed():
                    log.info(
                        "access credentials changed elsewhere: %d loaded", len(self.credentials)
                    )
            except EventStoreError as e:
                log.warning("cannot check the access credentials for changes: %s", e)

    async def run(self) -> None:
        self._running = True
        try:
            while True:
                try:
                    batch = await self._sub.get_batch(self.cfg.decision_batch)
                except BusClosed:
                    await self._flush()
                    return
                await self._handle(batch)
        finally:
            self._running = False

    async def close(self, task: asyncio.Task[None] | None = None) -> None:
        """Stop taking messages; what is already queued is still decided and
        stored: by ``task`` (running :meth:`run`, awaited here) or, without
        one, right here."""
        self.bus.unsubscribe(self._sub)  # run() drains the queue, then returns
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        elif not self._running:
            while batch := self._sub.get_nowait(self.cfg.decision_batch):
                await self._handle(batch)
            await self._flush()
        for sup in self.supervisors.values():
            await sup.close()

    # -- one batch from the bus ------------------------------------------------------
    async def _handle(self, batch: list[Message]) -> None:
        """Reads are collected; an input first flushes the reads before it."""
        for msg in batch:
            if isinstance(msg, Event) and msg.type in _READS:
                item = self._item(msg)
                if item is not None:
                    self._pending.append(item)
                    if len(self._pending) >= self.cfg.decision_batch:
                        await self._flush()
            else:
                await self._flush()
                if isinstance(msg, Reading):
                    await self.inputs.reading(msg)
                elif isinstance(msg, Event):
                    await self.inputs.event(msg)
        await self._flush()

    def _item(self, e: Event) -> _Item | None:
        raw_no = e.data.get("reader_no")
        key = (e.source, raw_no if isinstance(raw_no, int) else None)
        bound = self._readers.get(key) or self._readers.get((e.source, None))
        if bound is None:
            self.unbound += 1
            if key not in self._unbound_seen:
                self._unbound_seen.add(key)
                log.warning("%s from %s (reader %s): no door has this reader", e.type, *key)
            return None
        door, binding = bound
        monitor = door.mode == "monitor"
        if (e.type == "card.decision") != monitor and e.type != "card.read_error":
            return None  # a decide door's own decisions, or a monitor door's raw reads
        if e.type == "card.read_error":
            return _Item(door, binding, e.ts, None, "", str(e.data.get("reason", "")))
        if e.type == "plate.read" and not door.vehicle:
            return None
        fmt = str(e.data.get("format", "plate" if "plate" in e.data else ""))
        try:
            if "plate" in e.data:
                cls: ValueClass = "plate"
                value = canonical_plate(str(e.data["plate"]))
            elif fmt in ("qr", "pin"):
                cls, value = ("qr" if fmt == "qr" else "pin"), str(e.data.get("value", ""))
                if not value:
                    raise CardValueError(f"empty {fmt}")
            else:
                cls, value = "card", canonical_uid(str(e.data.get("uid", "")))
        except CardValueError:
            return _Item(door, binding, e.ts, None, "", "format")
        return _Item(door, binding, e.ts, cls, value, fmt, e.data if monitor else None)

    # -- decide, store, act --------------------------------------------------------
    async def _flush(self) -> None:
        items, self._pending = self._carry + self._pending, []
        self._carry = []
        if not items:
            return
        undo = _Undo()
        for item in items:
            if item.decision is None:
                item.decision = self._decide(item, undo)
        entries = [e for it in items if (e := self._moved(it)) is not None]
        try:
            async with self.store.begin(write=True) as conn:
                await self.passages.write_in(conn, [self._passage(it) for it in items])
                await self.presence.write_in(conn, entries)
                assert self.credentials is not None
                for it in items:
                    d = it.decision
                    if d is not None and d.uses_left is not None and d.credential is not None:
                        await self.credentials.consume_in(conn, d.credential.id, d.uses_left)
        except EventStoreError as e:
            await self._store_failed(items, undo, e)
            return
        self.decided += len(items)
        await self._act(items)

    def _decide(self, item: _Item, undo: _Undo) -> Decision:
        creds, decider = self.credentials, self.decider
        assert creds is not None and decider is not None
        if item.cls is None:
            return Decision(False, Reason.READ_ERROR, None, None, "")
        card_hash = creds.hash_of(item.cls, item.value)
        cred = creds.by_hash(card_hash)
        if cred is not None:  # what to put back should the batch not be stored
            undo.presence.setdefault(cred.id, self.presence.entry(cred.id))
            undo.uses.setdefault(cred.id, cred.uses_left)
        if item.controller is None:
            return decider.decide(item.read, (card_hash, cred))
        masked = mask_read(item.cls, item.value)
        granted = item.controller.get("granted") is True
        area = None
        if granted and cred is not None:
            b = item.binding
            area = item.door.area if b.direction == "in" else item.door.from_area
            self.presence.set(cred.id, area, item.door.id, item.ts)
        return Decision(granted, Reason.CONTROLLER, cred, card_hash, masked, area_after=area)

    def _moved(self, item: _Item) -> PresenceEntry | None:
        d = item.decision
        if d is None or not d.granted or d.area_after is None or d.credential is None:
            return None
        return PresenceEntry(d.credential.id, d.area_after, item.door.id, item.ts)

    def _passage(self, item: _Item) -> Passage:
        d = item.decision
        assert d is not None
        cred = d.credential
        data: dict[str, Any] = {"format" if item.cls else "error": item.fmt}
        if cred is not None:
            data["holder"] = cred.holder
        if d.area_after is not None:
            data["area"] = d.area_after
        if d.alarms:
            data["alarms"] = list(d.alarms)
        if item.controller is not None:
            data["controller_reason"] = str(item.controller.get("reason", ""))
        plate = item.value if item.cls == "plate" else (cred.plate if cred else None)
        return Passage(
            ts=item.ts, door=item.door.id, reader=item.binding.device,
            direction=item.binding.direction, granted=d.granted, reason=d.reason.value,
            credential_id=cred.id if cred else None, kind=cred.kind if cred else UNKNOWN_KIND,
            card_hash=d.card_hash, card_masked=d.masked, plate=plate, mode=item.door.mode,
            data=data,
        )  # fmt: skip

    async def _act(self, items: list[_Item]) -> None:
        """After the commit: commands (relay, then feedback), then the events."""
        commands: list[Command] = []
        events: list[Event] = []
        for it in items:
            d, door = it.decision, it.door
            assert d is not None
            if door.mode == "decide":
                if d.granted and door.relay is not None:
                    commands.append(_relay_command(door))
                if door.feedback:
                    commands.append(_feedback(it, d.granted))
            if d.granted:
                self.supervisors[door.id].grant()
            if it.cls is not None:
                events.extend(self._events(it, d))
        await self.bus.publish_many(commands)
        await self.bus.publish_many(events)

    def _events(self, it: _Item, d: Decision) -> list[Event]:
        cred, door = d.credential, it.door
        b = it.binding
        data: dict[str, Any] = {
            "door": door.id, "reader": b.device, "direction": b.direction,
            "credential": cred.id if cred else None, "kind": cred.kind if cred else UNKNOWN_KIND,
            "holder": cred.holder if cred else "", "card": d.masked, "card_hash": d.card_hash,
            "plate": it.value if it.cls == "plate" else (cred.plate if cred else None),
            "reason": d.reason.value, "mode": door.mode,
            "area": d.area_after or (door.area if b.direction == "in" else door.from_area),
        }  # fmt: skip
        if it.controller is not None:
            data["controller_reason"] = str(it.controller.get("reason", ""))
        out = [Event("access.granted" if d.granted else "access.denied", door.id, it.ts, data)]
        for alarm in d.alarms:
            extra: dict[str, Any] = {}
            if alarm == "access.antipassback":
                extra["mode"] = "soft" if d.granted else "hard"
            out.append(Event(alarm, door.id, it.ts, {**data, **extra}))
        return out

    async def _store_failed(self, items: list[_Item], undo: _Undo, err: EventStoreError) -> None:
        """Fail secure: nothing opens, every reader says no, memory as before."""
        self.store_failures += 1
        for cid, entry in undo.presence.items():
            if entry is None:
                self.presence.forget(cid)
            else:
                self.presence.set(cid, entry.area, entry.door, entry.ts)
        assert self.credentials is not None
        for cid, uses in undo.uses.items():
            if uses is not None:
                self.credentials.set_uses_left(cid, uses)
        decide = [it for it in items if it.door.mode == "decide"]
        monitor = [it for it in items if it.door.mode == "monitor"]
        for it in monitor:
            it.decision = None
        self._carry = monitor[-CARRY_MAX:]
        self.lost += len(monitor) - len(self._carry)
        log.error(
            "access control: %d reads not stored, doors kept locked (%d monitor passages "
            "kept for a retry): %s", len(decide), len(self._carry), err,
        )  # fmt: skip
        await self.bus.publish_many([_feedback(it, False) for it in decide if it.door.feedback])
        doors = sorted({it.door.id for it in items})
        data = {"reads": len(decide), "kept": len(self._carry), "doors": doors, "error": str(err)}
        await self.bus.publish(Event(STORE_DOWN, "access", self.clock.time_ns(), data))


def _relay_command(door: DoorConfig) -> Command:
    relay = door.relay
    assert relay is not None
    if relay.point is not None:
        device, name = split_point(relay.point)
        args: dict[str, Any] = {"point": name, "value": True}
        return Command(target=device, action="write", args=args, role="access", origin="access")
    args = {"output": relay.output, "seconds": relay.seconds}
    return Command(target=relay.device, action="pulse", args=args, origin="access")


def _feedback(item: _Item, granted: bool) -> Command:
    args: dict[str, Any] = {"result": "grant" if granted else "deny"}
    if item.binding.reader_no is not None:
        args["reader_no"] = item.binding.reader_no
    return Command(target=item.binding.device, action="feedback", args=args, origin="access")
