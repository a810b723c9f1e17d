"""Device availability is announced once per change."""

from gateway.clock import ManualClock
from gateway.health import Health
from gateway.model import Event


async def test_offline_announced_once_then_online_once() -> None:
    clock = ManualClock()
    events: list[Event] = []

    async def emit(e: Event) -> None:
        events.append(e)

    h = Health(clock, emit)
    await h.device_online("pump1", "modbus")
    for _ in range(5):
        await h.device_offline("pump1", "timeout", "modbus")
        await clock.advance(10)
    await h.device_online("pump1", "modbus")
    await h.device_online("pump1", "modbus")
    assert [e.type for e in events] == ["device.online", "device.offline", "device.online"]
    assert events[-1].data["offline_s"] == 50
    assert h.snapshot()["devices"]["pump1"]["online"] is True
