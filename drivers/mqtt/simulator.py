"""A simulated estate's MQTT field sensors, for ``gateway demo`` and tests.

It publishes what real devices on a property send, in the formats the ingest
driver maps (see ``config/demo-estate.yaml``):

* ``sim/<site>/tx1/temperature`` - dry-type transformer temperature
  controller, JSON ``{"a": 71.2, "b": 70.8, "c": 72.5, "fan": false}``;
* ``tele/pm1/SENSOR`` - a Tasmota-style power meter (``ENERGY`` block);
* ``sim/<site>/pump1/pressure`` and ``sim/<site>/tank1/level`` - plain numbers;
* ``sim/<site>/env/<room>`` - JSON room climate from several rooms;
* ``sim/<site>/door/<door>`` - door contact changes, mapped to events.

Values follow smooth daily curves with noise and occasional excursions (a
transformer running hot in the afternoon, power factor dipping below 0.9),
so a demo shows something worth looking at.
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass
from datetime import UTC

import aiomqtt

from gateway.clock import Clock, SystemClock

__all__ = ["EstateSimulator", "SimulatorSettings"]

log = logging.getLogger("drivers.mqtt.simulator")

ROOMS = ("power_room", "pump_room", "control_room")
DOORS = ("power_room_door", "pump_room_door")


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    site: str = "demo-estate"
    interval_s: float = 1.0
    seed: int = 7


class EstateSimulator:
    def __init__(self, settings: SimulatorSettings, clock: Clock | None = None) -> None:
        self.s = settings
        self.clock = clock or SystemClock()
        self.rng = random.Random(settings.seed)
        self.published = 0
        self._doors = dict.fromkeys(DOORS, "closed")
        self._energy_kwh = 12_345.0

    def messages(self) -> list[tuple[str, bytes]]:
        """One round of messages for the current clock time."""
        now = self.clock.now()
        hour = now.hour + now.minute / 60 + now.second / 3600
        day = math.sin((hour - 8) / 24 * 2 * math.pi)  # peaks mid-afternoon
        rnd = self.rng.gauss
        root = f"sim/{self.s.site}"
        out: list[tuple[str, bytes]] = []

        base = 68 + 12 * day + rnd(0, 0.4)
        out.append(
            (
                f"{root}/tx1/temperature",
                _json(
                    a=round(base + rnd(0, 0.3), 1),
                    b=round(base - 0.6 + rnd(0, 0.3), 1),
                    c=round(base + 1.1 + rnd(0, 0.3), 1),
                    fan=base > 80,
                ),
            )
        )
        power = max(5.0, 180 + 90 * day + rnd(0, 6))
        self._energy_kwh += power * self.s.interval_s / 3600
        factor = min(0.99, max(0.80, 0.93 + 0.04 * math.sin(hour) + rnd(0, 0.01)))
        out.append(
            (
                "tele/pm1/SENSOR",
                _json(
                    Time=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    ENERGY={
                        "Total": round(self._energy_kwh, 3),
                        "Power": round(power, 1),
                        "Voltage": round(400 + rnd(0, 2), 1),
                        "Current": round(power / 400 / 1.732 * 1000 / max(factor, 0.1), 1),
                        "Factor": round(factor, 3),
                    },
                ),
            )
        )
        out.append((f"{root}/pump1/pressure", f"{0.42 + 0.05 * day + rnd(0, 0.01):.3f}".encode()))
        out.append((f"{root}/tank1/level", f"{3.2 + 0.6 * math.cos(hour / 3):.2f}".encode()))
        for room in ROOMS:
            out.append(
                (
                    f"{root}/env/{room}",
                    _json(
                        temperature=round(24 + 4 * day + rnd(0, 0.2), 1),
                        humidity=round(55 - 10 * day + rnd(0, 0.5), 1),
                    ),
                )
            )
        for door in DOORS:
            if self.rng.random() < 0.02:
                self._doors[door] = "open" if self._doors[door] == "closed" else "closed"
                out.append((f"{root}/door/{door}", _json(state=self._doors[door])))
        return out

    async def run(self) -> None:
        """Publish a round every ``interval_s`` until cancelled; reconnects if the broker goes."""
        while True:
            try:
                async with aiomqtt.Client(
                    self.s.host, self.s.port, identifier=f"sim-{self.s.site}", logger=log
                ) as client:
                    while True:
                        for topic, payload in self.messages():
                            await client.publish(topic, payload)
                            self.published += 1
                        await self.clock.sleep(self.s.interval_s)
            except aiomqtt.MqttError as e:
                log.warning("simulator lost the broker (%s); retrying", e)
                await self.clock.sleep(2)


def _json(**fields: object) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode()
