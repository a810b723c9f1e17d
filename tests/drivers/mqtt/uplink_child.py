"""An uplink in its own process, for the tests that kill it (``kill -9``).

    python -m tests.drivers.mqtt.uplink_child PORT DATA_DIR SITE EVENTS

Runs :class:`~drivers.mqtt.uplink.MqttUplinkDriver` against the broker on
PORT, emits EVENTS events ``test.tick`` (data ``{"n": i}``), prints
``queued`` once they are all in the outbox and ``connected`` once the
broker has acknowledged the retained ``online`` status, then runs until
killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from drivers.mqtt.config import MqttUplinkConfig
from drivers.mqtt.uplink import MqttUplinkDriver
from gateway.bus import Bus
from gateway.clock import SystemClock
from gateway.context import RuntimeContext
from gateway.health import Health
from gateway.model import Event


async def main(port: int, data_dir: Path, site: str, events: int) -> None:
    cfg = MqttUplinkConfig.model_validate(
        {
            "type": "mqtt_uplink",
            "id": "up",
            "broker": {
                "host": "127.0.0.1",
                "port": port,
                "reconnect_min_s": 0.05,
                "reconnect_max_s": 0.2,
                "keepalive_s": 5,
            },
        }
    )
    bus, clock = Bus(), SystemClock()
    ctx = RuntimeContext(
        driver_id="up",
        site=site,
        bus=bus,
        clock=clock,
        health=Health(clock, bus.publish),
        data_dir=data_dir,
        device_kinds={},
    )
    drv = MqttUplinkDriver(cfg)
    task = asyncio.create_task(drv.run(ctx))
    while not any(s.name == "up.uplink" for s in bus.stats()):  # noqa: ASYNC110 - polls the driver
        await asyncio.sleep(0.01)
    for i in range(events):
        await bus.publish(Event("test.tick", "child", clock.time_ns(), {"n": i}))
    said: set[str] = set()
    while not task.done():
        if events and "queued" not in said:
            items = await ctx.outbox("uplink").peek(10_000)
            if sum(b"/events/test/tick" in i.payload for i in items) == events:
                said.add("queued")
                print("queued", flush=True)
        if drv.stats().connected and "connected" not in said:
            said.add("connected")
            print("connected", flush=True)
        await asyncio.sleep(0.02)
    task.result()


if __name__ == "__main__":
    port, data_dir, site, events = sys.argv[1:5]
    asyncio.run(main(int(port), Path(data_dir), site, int(events)))
