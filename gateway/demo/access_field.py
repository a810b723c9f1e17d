"""The access hardware of the demo estate, as the people of the traffic and
the incidents touch it.

- Cards at real OSDP readers: libosdp peripheral devices
  (:class:`drivers.cards.osdp.simulator.SimulatedReader`) on the socat pty
  (or TCP) line the gateway's ``osdp`` driver polls. A grant is seen the way a
  person sees it: the gateway pulses the output of the door's relay reader.
- The north gate's contact and beam counter, the south barrier's arm, loops
  and ANPR cameras: JSON on the private broker (:class:`MqttLink`), on the
  topics the site file's ``card_mqtt`` driver maps; the barrier rises when
  the gateway publishes the controller's ``open`` command.
- The power room door: its contact (``dio1.di_01``) and exit button
  (``dio1.di_03``) on the Modbus DI module of the simulated estate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.clock import Clock
from gateway.demo.access_seed import DemoHolder
from gateway.demo.access_traffic import AccessFieldError, Direction, Trip
from gateway.demo.broker import stop_process

if TYPE_CHECKING:
    import aiomqtt

    from drivers.cards.osdp.simulator import SimulatedReader
    from drivers.modbus.estate import Estate

__all__ = [
    "BARRIER",
    "CAMERAS",
    "GATE",
    "GATE_READERS",
    "MQTT_NAMES",
    "POWER_CONTACT",
    "POWER_DOOR",
    "POWER_EXIT",
    "POWER_READER",
    "READERS",
    "AccessField",
    "MqttLink",
    "ReaderRig",
    "reader_rig",
]

log = logging.getLogger("gateway.demo.access_field")

GATE, BARRIER, POWER_DOOR, POWER_READER = (
    "gate_n1",
    "barrier_s1",
    "power_room_door",
    "power_room_reader",
)
GATE_READERS: Mapping[Direction, str] = {"in": "gate_n1_in", "out": "gate_n1_out"}
CAMERAS: Mapping[Direction, str] = {"in": "anpr_s1_in", "out": "anpr_s1_out"}
# The controllers' own names on MQTT (the card_mqtt driver's `devices:` table).
MQTT_NAMES: Mapping[str, str] = {
    GATE: "N1",
    BARRIER: "S1",
    "anpr_s1_in": "CAM-S1-IN",
    "anpr_s1_out": "CAM-S1-OUT",
}
POWER_CONTACT = ("dio1", "di_01")  # 1 = open
POWER_EXIT = ("dio1", "di_03")  # the exit button inside the power room, 1 = pressed


class MqttLink:
    """The gate and barrier controllers and the ANPR cameras on the private broker:
    publishes what they report (``<root>/anpr/<cam>``, ``<root>/gate/<name>/state|count|loop``)
    and collects what the gateway commands (``<root>/gate/<name>/cmd``)."""

    def __init__(self, host: str, port: int, root: str, clock: Clock) -> None:
        self.host, self.port, self.root, self.clock = host, port, root, clock
        self.published = 0
        self._client: aiomqtt.Client | None = None
        self._commands: dict[str, asyncio.Queue[dict[str, object]]] = {}
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Stay connected (reconnecting after a loss) until cancelled."""
        import aiomqtt

        while True:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, identifier="demo-access-field", logger=log
                ) as client:
                    await client.subscribe(f"{self.root}/gate/+/cmd", qos=1)
                    self._client = client
                    self.connected.set()
                    async for msg in client.messages:
                        self._command(str(msg.topic), msg.payload)
            except aiomqtt.MqttError as e:
                log.warning("demo access field lost the broker (%s); retrying", e)
            finally:
                self._client = None
                self.connected.clear()
            await self.clock.sleep(2.0)

    def _command(self, topic: str, payload: object) -> None:
        name = topic.split("/")[-2]
        try:
            body = json.loads(payload if isinstance(payload, bytes | str) else b"")
        except ValueError:
            return
        if isinstance(body, dict):
            queue = self.queue(name)
            if queue.full():  # nobody is waiting at that barrier: forget the oldest
                queue.get_nowait()
            queue.put_nowait(body)

    def queue(self, name: str) -> asyncio.Queue[dict[str, object]]:
        return self._commands.setdefault(name, asyncio.Queue(maxsize=100))

    async def publish(self, path: str, body: Mapping[str, object]) -> None:
        import aiomqtt

        client = self._client
        if client is None:
            raise AccessFieldError("not connected to the demo broker")
        try:
            await client.publish(f"{self.root}/{path}", json.dumps(body, ensure_ascii=False), qos=1)
        except aiomqtt.MqttError as e:
            raise AccessFieldError(f"publish {path}: {e}") from e
        self.published += 1


class AccessField:
    """People at the demo's doors: cards at the OSDP readers (``readers``: reader id ->
    simulated PD), plates and loops by MQTT (``link``), the power room door on the
    Modbus DI module (``estate``). ``relays``: door id -> the reader whose output
    opens it (the site's ``access.doors[].relay.device``). One person at a door at a
    time (a lock per door), so a relay pulse belongs to the card just presented."""

    def __init__(
        self,
        readers: Mapping[str, SimulatedReader],
        relays: Mapping[str, str],
        link: MqttLink,
        estate: Estate,
        clock: Clock,
        *,
        grant_wait_s: float = 3.0,
        seed: int = 3,
    ) -> None:
        self.readers, self.relays, self.link, self.estate = readers, relays, link, estate
        self.clock = clock
        self.grant_wait_s = grant_wait_s
        self.rng = random.Random(seed)
        self.granted: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, door: str) -> asyncio.Lock:
        return self._locks.setdefault(door, asyncio.Lock())

    async def perform(self, trip: Trip) -> bool:
        if trip.mode == "walk":
            return await self.walk(trip.holder, trip.direction)
        if trip.mode == "drive":
            return await self.drive(trip.holder, trip.direction)
        return await self.visit_power_room(trip.holder)

    async def card(self, reader: str, door: str, uid: str) -> bool:
        """Present ``uid``; True when the door's relay pulses within ``grant_wait_s``."""
        from drivers.cards.osdp.simulator import SimulatorError

        relay = self.readers[self.relays[door]]
        for pd in {relay, self.readers[reader]}:  # they keep every command otherwise
            pd.clear_commands()
        try:
            self.readers[reader].present_card(uid)
        except SimulatorError as e:
            raise AccessFieldError(f"{reader}: {e}") from e
        try:
            await asyncio.to_thread(relay.wait_command, "output", self.grant_wait_s)
        except TimeoutError:
            self.refused[door] += 1
            return False
        self.granted[door] += 1
        return True

    async def walk(
        self, holder: DemoHolder, direction: Direction, *, people: int = 1, hold_s: float = 2.0
    ) -> bool:
        """Through the north gate: card, gate opens, ``people`` pass the beam, it closes."""
        assert holder.card is not None
        async with self.lock(GATE):
            if not await self.card(GATE_READERS[direction], GATE, holder.card):
                return False
            await self._contact(GATE, True)
            for i in range(people):
                await self.clock.sleep(0.2 if i == 0 else 0.8)
                await self.link.publish(
                    f"gate/{MQTT_NAMES[GATE]}/count", {"n": 1, "dir": direction}
                )
            await self.clock.sleep(hold_s)
            await self._contact(GATE, False)
        return True

    async def drive(self, holder: DemoHolder, direction: Direction) -> bool:
        """Through the south barrier: the car stops on the arming loop (``entry``), the
        camera of its lane reads the plate, the barrier rises on the gateway's
        ``open`` command, the car crosses the ``safety`` loop and leaves the
        closing loop (``exit``: the passage), the barrier falls."""
        assert holder.plate is not None
        commands = self.link.queue(MQTT_NAMES[BARRIER])
        async with self.lock(BARRIER):
            while not commands.empty():
                commands.get_nowait()
            await self._loop("entry", True)
            await self.clock.sleep(0.5)
            body = {"plate": holder.plate, "confidence": round(self.rng.uniform(0.86, 0.99), 2)}
            await self.link.publish(f"anpr/{MQTT_NAMES[CAMERAS[direction]]}", body)
            try:
                async with asyncio.timeout(self.grant_wait_s):
                    while (await commands.get()).get("cmd") != "open":
                        pass
            except TimeoutError:
                self.refused[BARRIER] += 1
                await self.clock.sleep(2.0)  # the driver reverses away
                await self._loop("entry", False)
                return False
            self.granted[BARRIER] += 1
            await self._contact(BARRIER, True)
            for here, there in (("entry", "safety"), ("safety", "exit"), ("exit", None)):
                await self.clock.sleep(0.3)
                await self._loop(here, False)
                if there is not None:
                    await self._loop(there, True)
            await self.clock.sleep(0.5)
            await self._contact(BARRIER, False)
        return True

    async def visit_power_room(self, holder: DemoHolder, *, stay_s: float | None = None) -> bool:
        """An electrician's visit: card in, work a while, leave with the exit button."""
        assert holder.card is not None
        async with self.lock(POWER_DOOR):
            if not await self.card(POWER_READER, POWER_DOOR, holder.card):
                return False
            await self.power_door(4.0)
        await self.clock.sleep(stay_s if stay_s is not None else self.rng.uniform(120, 480))
        async with self.lock(POWER_DOOR):
            self._pin(*POWER_EXIT, True)
            await self.clock.sleep(1.5)  # held long enough for the DI module's poll
            self._pin(*POWER_EXIT, False)
            await self.power_door(3.0)
        return True

    async def power_door(self, open_s: float) -> None:
        """The power room door contact opens for ``open_s`` (the caller holds the lock)."""
        self._pin(*POWER_CONTACT, True)
        try:
            await self.clock.sleep(open_s)
        finally:
            self._pin(*POWER_CONTACT, False)

    def _pin(self, device: str, point: str, value: bool) -> None:
        from drivers.modbus.estate import ControlError

        try:
            self.estate.set_point(device, point, value)
            if not value:
                self.estate.release(device, point)
        except ControlError as e:
            raise AccessFieldError(str(e)) from e

    async def _contact(self, door: str, is_open: bool) -> None:
        state = "OPEN" if is_open else "CLOSE"
        await self.link.publish(f"gate/{MQTT_NAMES[door]}/state", {"state": state})

    async def _loop(self, loop: str, occupied: bool) -> None:
        body = {"loop": loop, "occupied": int(occupied)}
        await self.link.publish(f"gate/{MQTT_NAMES[BARRIER]}/loop", body)


# --- the readers ---------------------------------------------------------------------

READERS: tuple[tuple[str, int], ...] = (("gate_n1_in", 1), ("gate_n1_out", 2), (POWER_READER, 3))
"""The OSDP readers of the site file: device id, OSDP address (one bus)."""


@dataclass(frozen=True, slots=True)
class ReaderRig:
    readers: dict[str, SimulatedReader]
    env: dict[str, str]  # what the site file needs to reach the bus
    pty: str | None  # the gateway's end of the socat pty pair, or None: TCP
    tcp_port: int | None


@contextlib.asynccontextmanager
async def reader_rig(workdir: Path, key: bytes) -> AsyncIterator[ReaderRig]:
    """The demo's OSDP readers, powered on with secure channel key ``key``: on a socat
    pty pair when socat is installed (the gateway opens ``DEMO_OSDP_PTY``), else
    behind a TCP port (``DEMO_OSDP_TCP_PORT``). Raises :class:`AccessFieldError`."""
    from drivers.cards.osdp.simulator import SimulatedReader, SimulatorError, TcpPdServer

    async with contextlib.AsyncExitStack() as stack:
        socat = shutil.which("socat")
        pty = await stack.enter_async_context(_socat_pair(socat, workdir)) if socat else None
        where: dict[str, Any]
        if pty is not None:
            env = {"DEMO_OSDP_PTY_ON": "true", "DEMO_OSDP_PTY": pty[0]}
            where, port = {"serial_port": pty[1]}, None
        else:
            server = TcpPdServer("127.0.0.1", 0)
            try:
                server.start()
            except SimulatorError as e:
                raise AccessFieldError(str(e)) from e
            stack.callback(server.stop)
            port = server.port
            env = {"DEMO_OSDP_TCP_ON": "true", "DEMO_OSDP_TCP_PORT": str(port)}
            where = {"tcp_listen": server.address}
        readers: dict[str, SimulatedReader] = {}
        for device, address in READERS:
            reader = SimulatedReader(address, scbk=key, **where)
            try:
                reader.start()
            except SimulatorError as e:
                raise AccessFieldError(f"{device}: {e}") from e
            stack.callback(reader.stop)
            readers[device] = reader
        yield ReaderRig(readers, env, pty[0] if pty else None, port)


@contextlib.asynccontextmanager
async def _socat_pair(socat: str, workdir: Path) -> AsyncIterator[tuple[str, str] | None]:
    """Two joined ptys (``<workdir>/cp``, ``<workdir>/pd``); None if socat does not make them."""
    cp, pd = await asyncio.to_thread(_pty_links, workdir)
    proc = await asyncio.create_subprocess_exec(
        socat,
        f"pty,raw,echo=0,link={cp}",
        f"pty,raw,echo=0,link={pd}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(500):
            if _exist(cp, pd) or proc.returncode is not None:
                break
            await asyncio.sleep(0.02)
        ok = _exist(cp, pd) and proc.returncode is None
        if not ok:
            log.warning("socat made no pty pair; the demo readers use TCP instead")
        yield (str(cp), str(pd)) if ok else None
    finally:
        await stop_process(proc)


def _pty_links(workdir: Path) -> tuple[Path, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    cp, pd = workdir / "cp", workdir / "pd"
    for link in (cp, pd):
        link.unlink(missing_ok=True)  # left by a demo that was killed
    return cp, pd


def _exist(*paths: Path) -> bool:
    return all(p.exists() for p in paths)
