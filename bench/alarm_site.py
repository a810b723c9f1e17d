"""The site file of bench/alarm_latency.py: one MQTT sensor topic and one
Modbus simulator feeding limit rules whose alarms notify a webhook receiver
and an MQTT topic.

* MQTT: ``bench/<device>/t`` carries ``{"t": <value>, "sent": <ns>}``; the
  devices ``sens0000`` ... each have one point ``t`` (one device per cycle, so
  every cycle is a fresh alarm). Rule ``mqtt-hi``: ``t >= 50`` (no deadband,
  no delays), route ``mqtt``; policy ``mqtt``: level 1 (after_min 0) calls
  ``alice`` through the webhook channel ``hook``, level 2 (also after_min 0,
  so the same step) calls ``bob`` through the MQTT channel ``mq``
  (``estate/bench/notify/bob``).
* Modbus: one connection to the simulator, unit 1 = device ``mb1000``
  polled every ``period`` s, unit 2 = ``mb0500`` polled every ``period2`` s,
  ``registers`` uint16 points ``r0`` ... each. Rule ``modbus-hi``:
  ``>= 1000``, route ``modbus``; policy ``modbus``: ``alice`` through ``hook``.

Flood and chattering detection are set out of reach (a bench announces
hundreds of alarms in minutes; with the EEMUA defaults the 11th alarm in 10
minutes starts a flood and messages become one digest per person per minute),
the channels have no rate limit, and there are no reminders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MODBUS_LIMIT", "MQTT_LIMIT", "SiteSpec", "sensor", "site_document", "write_site"]

MQTT_LIMIT = 50.0
MODBUS_LIMIT = 1000
SITE = "bench"


@dataclass(frozen=True)
class SiteSpec:
    data_dir: Path
    broker_port: int
    hook_url: str
    sensors: int  # MQTT devices sens0000 ... (one per cycle)
    modbus_port: int | None  # None: no Modbus driver
    registers: int = 100
    period: float = 1.0
    period2: float = 0.5


def sensor(i: int) -> str:
    return f"sens{i:04d}"


def _modbus(spec: SiteSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if spec.modbus_port is None:
        return [], []
    points = {f"r{i}": {"address": i, "type": "uint16"} for i in range(spec.registers)}
    devices = [
        {"id": "mb1000", "kind": "sensor", "name": "bench Modbus (period 1)"},
        {"id": "mb0500", "kind": "sensor", "name": "bench Modbus (period 2)"},
    ]
    driver = {
        "type": "modbus",
        "id": "field_modbus",
        "connections": [
            {
                "id": "sim",
                "host": "127.0.0.1",
                "port": spec.modbus_port,
                "devices": [
                    {"device": "mb1000", "unit": 1, "interval_s": spec.period, "points": points},
                    {"device": "mb0500", "unit": 2, "interval_s": spec.period2, "points": points},
                ],
            }
        ],
    }
    return devices, [driver]


def site_document(spec: SiteSpec) -> dict[str, Any]:
    mb_devices, mb_drivers = _modbus(spec)
    sensors = [
        {"id": sensor(i), "kind": "sensor", "points": {"t": {"unit": "°C"}}}
        for i in range(spec.sensors)
    ]
    common_rule = {"type": "limit", "priority": "high", "category": "it"}
    rules: list[dict[str, Any]] = [
        {**common_rule, "id": "mqtt-hi", "points": ["sens*.t"], "h": MQTT_LIMIT, "route": "mqtt"}
    ]
    if mb_drivers:
        rules.append(
            {
                **common_rule,
                "id": "modbus-hi",
                "points": ["mb1000.r*", "mb0500.r*"],
                "h": MODBUS_LIMIT,
                "route": "modbus",
            }
        )
    no_limit = {"retries": 0, "rate_per_min": None, "burst": None, "concurrency": 16}
    return {
        "version": 1,
        "site": {"id": SITE, "name": "alarm latency bench", "timezone": "Asia/Shanghai"},
        "data_dir": str(spec.data_dir),
        "devices": sensors + mb_devices,
        "drivers": [
            {
                "type": "mqtt",
                "id": "field_mqtt",
                "broker": {"host": "127.0.0.1", "port": spec.broker_port},
                "subscriptions": [
                    {
                        "topic": "bench/+/t",
                        "device": "{1}",
                        "values": [{"point": "t", "path": "t", "unit": "°C"}],
                    }
                ],
            },
            *mb_drivers,
        ],
        "rules": rules,
        "alarms": {
            "chattering": {"count": 1_000_000, "window_s": 60},
            "flood": {"start_above": 1_000_000_000, "end_below": 1, "window_s": 600},
        },
        "oncall": {
            "people": {
                "alice": {"name": "Alice", "locale": "en"},
                "bob": {"name": "Bob", "locale": "en"},
            },
            "policies": {
                "default": {
                    "repeat_every_min": None,
                    "levels": [
                        {
                            "after_min": 0,
                            "notify": "people",
                            "people": ["alice"],
                            "channels": ["hook"],
                        },
                    ],
                },
                "mqtt": {
                    "repeat_every_min": None,
                    "levels": [
                        {
                            "after_min": 0,
                            "notify": "people",
                            "people": ["alice"],
                            "channels": ["hook"],
                        },
                        {"after_min": 0, "notify": "people", "people": ["bob"], "channels": ["mq"]},
                    ],
                },
                "modbus": {
                    "repeat_every_min": None,
                    "levels": [
                        {
                            "after_min": 0,
                            "notify": "people",
                            "people": ["alice"],
                            "channels": ["hook"],
                        },
                    ],
                },
            },
        },
        "notify": {
            "channels": {
                "hook": {"type": "webhook", "url": spec.hook_url, **no_limit},
                "mq": {
                    "type": "mqtt",
                    "host": "127.0.0.1",
                    "port": spec.broker_port,
                    "client_id": "bench-gw-notify",
                    "qos": 1,
                    **no_limit,
                },
            }
        },
        "api": {"enabled": False},
    }


def write_site(spec: SiteSpec, path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(site_document(spec), allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return path
