"""DeviceValues: the inline 16-bit path agrees with the codec; bitfields fan out."""

from __future__ import annotations

from drivers.modbus.codec import decode
from drivers.modbus.config import ModbusDriverConfig
from drivers.modbus.device_values import DeviceValues
from gateway.model import Quality, Reading

POINTS = {
    "u": {"address": 0, "type": "uint16"},
    "s": {"address": 1, "type": "int16"},
    "swapped": {"address": 2, "type": "int16", "order": "BA"},  # codec path
    "scaled": {"address": 3, "type": "int16", "scale": 0.1},  # codec path
    "status": {"address": 4, "type": "bitfield", "bits": {"run": 0, "fault": 15}},
}


def device_values() -> DeviceValues:
    cfg = ModbusDriverConfig.model_validate(
        {
            "type": "modbus",
            "id": "m",
            "connections": [{"host": "h", "devices": [{"device": "d", "points": POINTS}]}],
        }
    )
    return DeviceValues(cfg.resolved[0])


def test_every_16_bit_value_decodes_as_the_codec_does() -> None:
    dv = device_values()
    (request,) = dv.device.plan
    specs = dv.device.specs
    for raw in range(0, 0x10000, 7):
        words = [raw, raw, raw, raw, 0x8001]
        got = {m.point: m.value for m in dv.messages(request, words, 1) if isinstance(m, Reading)}
        for name in ("u", "s", "swapped", "scaled"):
            assert got[f"d.{name}"] == decode([raw], specs[name]), (name, raw)
        assert got["d.run"] is True and got["d.fault"] is True
        assert "d.status" not in got


def test_out_of_range_register_is_a_bad_value_event_not_a_crash() -> None:
    dv = device_values()
    (request,) = dv.device.plan
    out = dv.messages(request, [70000, 1, 2, 3, 0], 5)
    bad = [m for m in out if not isinstance(m, Reading)]
    assert [e.data["point"] for e in bad] == ["u"]
    assert bad[0].type == "device.bad_value" and bad[0].data["raw"] == [70000]
    assert all(m.quality is Quality.GOOD for m in out if isinstance(m, Reading))
