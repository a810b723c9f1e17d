"""Helpers for end-to-end tests: a site file, an MQTT publisher, historian read-back."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiomqtt

from gateway.storage import codec

N_VALUES = 5  # values per message: v0..v4
T0_MS = 1_795_000_000_000  # 2026-11-19, inside every retention window used here


def write_site(tmp: Path, site_id: str, mqtt_port: int, sink: dict[str, Any], prefix: str) -> Path:
    """A site with one MQTT subscription: ``<prefix>/<device>/data`` JSON messages
    ``{"ts": epoch_ms, "v0": .., "v4": ..}`` for devices of kind sensor."""
    site = {
        "version": 1,
        "site": {"id": site_id, "timezone": "Asia/Shanghai"},
        "data_dir": str(tmp / "var"),
        "api": {"port": 0},
        "devices": [{"id": f"d{i}", "kind": "sensor"} for i in range(4)],
        "drivers": [
            {
                "type": "mqtt",
                "id": "ingest",
                "broker": {"host": "127.0.0.1", "port": mqtt_port},
                "subscriptions": [
                    {
                        "topic": f"{prefix}/+/data",
                        "qos": 1,
                        "device": "{2}",  # prefix is two levels: t/<site>
                        "timestamp": {"path": "ts", "format": "epoch_ms"},
                        "values": [{"point": f"v{k}", "path": f"v{k}"} for k in range(N_VALUES)],
                    }
                ],
            }
        ],
        "storage": {
            "timeseries": {
                "sink": sink,
                "batch_size": 1000,
                "flush_interval_s": 0.1,
                "default_heartbeat_s": None,
            }
        },
    }
    path = tmp / "site.yaml"
    path.write_text(json.dumps(site, ensure_ascii=False))  # JSON is YAML
    return path


def expected_points(n_msgs: int, first: int = 0) -> dict[tuple[str, int], float]:
    """{(point, ts_ms): value} for messages first..first+n_msgs-1."""
    out: dict[tuple[str, int], float] = {}
    for m in range(first, first + n_msgs):
        dev, ts = f"d{m % 4}", T0_MS + m
        for k in range(N_VALUES):
            out[(f"{dev}.v{k}", ts)] = m * 10 + k + 0.25
    return out


async def publish(port: int, prefix: str, n_msgs: int, first: int = 0) -> None:
    """Publish messages at QoS 1, many in flight, each acknowledged by the broker."""
    quiet = logging.getLogger("tests.publisher")
    quiet.setLevel(logging.ERROR)  # aiomqtt warns about every publish past 10 pending
    async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=200, logger=quiet) as client:
        sem = asyncio.Semaphore(100)

        async def one(m: int) -> None:
            body = {"ts": T0_MS + m, **{f"v{k}": m * 10 + k + 0.25 for k in range(N_VALUES)}}
            async with sem:
                await client.publish(f"{prefix}/d{m % 4}/data", json.dumps(body), qos=1)

        await asyncio.gather(*(one(m) for m in range(first, first + n_msgs)))


def influx1_points(url: str, db: str, site: str) -> list[tuple[str, int, float]]:
    q = f"SELECT * FROM \"sensor\" WHERE site='{site}'"
    qs = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"})
    with urllib.request.urlopen(f"{url}/query?{qs}") as r:
        res = json.loads(r.read())["results"][0]
    out: list[tuple[str, int, float]] = []
    for series in res.get("series", []):
        cols = series["columns"]
        for row in series["values"]:
            rec = dict(zip(cols, row, strict=True))
            for k in range(N_VALUES):
                if rec.get(f"v{k}") is not None:
                    out.append((f"{rec['device']}.v{k}", rec["time"], rec[f"v{k}"]))
    return out


def vm_points(url: str, site: str) -> list[tuple[str, int, float]]:
    qs = urllib.parse.urlencode({"match[]": f'{{__name__=~"sensor_v.*",site="{site}"}}'})
    with urllib.request.urlopen(f"{url}/api/v1/export?{qs}") as r:
        lines = r.read().decode().splitlines()
    out: list[tuple[str, int, float]] = []
    for line in lines:
        s = json.loads(line)
        field = s["metric"]["__name__"].removeprefix("sensor_")
        dev = s["metric"]["device"]
        out += [
            (f"{dev}.{field}", ts, v) for ts, v in zip(s["timestamps"], s["values"], strict=True)
        ]
    return out


def embedded_points(db: Path) -> list[tuple[str, int, float]]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT p.name, s.ts, s.value FROM samples s JOIN points p ON p.id = s.point_id "
            "WHERE p.name NOT LIKE 'gateway.%'"
        ).fetchall()
    finally:
        con.close()
    return [(name, ts // 1_000_000, value) for name, ts, value in rows]


def outbox_points(db: Path, device_prefix: str = "d") -> int:
    """Points of devices ``d0``.. waiting in an outbox file (not the gateway's own)."""
    if not db.exists():
        return 0
    con = sqlite3.connect(db)
    try:
        payloads = [p for (p,) in con.execute("SELECT payload FROM outbox")]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        con.close()
    return sum(1 for p in payloads for r in codec.decode(p) if r.point.startswith(device_prefix))
