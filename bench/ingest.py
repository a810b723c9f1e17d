"""MQTT telemetry -> bus -> sink, measured beside the raw ceilings in one run.

Prints, for the same broker, message size and machine:
  raw paho subscriber       msg/s of a bare paho client doing nothing per message
  raw line-protocol POST    points/s of a bare 5000-point /write loop to InfluxDB 1.x
  gateway -> embedded       msg/s and points/s, MQTT in, SQLite history written
  gateway -> influxdb1      msg/s and points/s, MQTT in, InfluxDB confirmed
  RSS of the gateway process after the runs

Messages are ~150-byte JSON objects with 4 numeric values, published at QoS 0
by a separate process as fast as it can while the subscriber is connected;
rates run from the first message received to the last point confirmed by the
sink. Run: .venv/bin/python bench/ingest.py [--messages 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.config.loader import load_site
from gateway.registry import load_registry
from gateway.runtime import Gateway
from tests.fixtures.servers import Server, free_port, wait_for

VALUES = 4


def payload(i: int) -> bytes:
    body = {"ts": 1_795_000_000_000 + i, "seq": i}
    body.update({f"v{k}": round(20 + (i % 1000) / 10 + k, 2) for k in range(VALUES)})
    body["site"] = "bench-estate-block-a"
    return json.dumps(body).encode()


def publisher(port: int, topic_prefix: str, n: int, devices: int) -> None:
    """Runs in its own process: publish n messages at QoS 0, then disconnect."""
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"pub-{os.getpid()}")
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    for i in range(n):
        info = c.publish(f"{topic_prefix}/d{i % devices}/data", payload(i), qos=0)
        if info.rc == paho.MQTT_ERR_NO_CONN:
            raise SystemExit("publisher lost the broker")
        if i % 2000 == 0:
            time.sleep(0)  # let the network thread drain the socket buffer
    time.sleep(1)
    c.loop_stop()
    c.disconnect()


def publish_in_process(port: int, prefix: str, n: int, devices: int = 50) -> mp.Process:
    p = mp.get_context("spawn").Process(target=publisher, args=(port, prefix, n, devices))
    p.start()
    return p


def raw_subscriber(port: int, n: int) -> float:
    got = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        nonlocal got, first, last
        if got == 0:
            first = time.perf_counter()
        got += 1
        last = time.perf_counter()
        if got == n:
            done.set()

    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="raw-sub")
    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.subscribe("raw/#", qos=0)
    c.loop_start()
    time.sleep(0.3)
    pub = publish_in_process(port, "raw", n)
    done.wait(120)
    pub.join()
    c.loop_stop()
    c.disconnect()
    if got < n:
        print(f"  (raw subscriber received {got} of {n}: the broker dropped QoS 0 messages)")
    return got / (last - first) if last > first else 0.0


def raw_post(url: str, points: int) -> float:
    urllib.request.urlopen(
        urllib.request.Request(f"{url}/query?q=CREATE+DATABASE+raw", method="POST")
    )
    t0 = 1_795_000_000_000_000_000
    lines = [
        f"sensor,site=raw,device=d{i % 50},kind=sensor v{i % VALUES}={i * 0.5} {t0 + i}"
        for i in range(points)
    ]
    batches = ["\n".join(lines[i : i + 5000]).encode() for i in range(0, points, 5000)]
    t = time.perf_counter()
    for b in batches:
        urllib.request.urlopen(urllib.request.Request(f"{url}/write?db=raw&precision=ns", b)).read()
    return points / (time.perf_counter() - t)


def site_file(tmp: Path, port: int, sink: dict[str, Any], prefix: str) -> Path:
    site = {
        "version": 1,
        "site": {"id": prefix},
        "data_dir": str(tmp / prefix),
        "devices": [{"id": f"d{i}", "kind": "sensor"} for i in range(50)],
        "drivers": [
            {
                "type": "mqtt",
                "id": "ingest",
                "broker": {"host": "127.0.0.1", "port": port},
                "max_queued_messages": 1_000_000,
                "subscriptions": [
                    {
                        "topic": f"{prefix}/+/data",
                        "device": "{1}",
                        "timestamp": {"path": "ts", "format": "epoch_ms"},
                        "values": [{"point": f"v{k}", "path": f"v{k}"} for k in range(VALUES)],
                    }
                ],
            }
        ],
        "storage": {"timeseries": {"sink": sink, "batch_size": 5000, "default_heartbeat_s": None}},
    }
    path = tmp / f"{prefix}.yaml"
    path.write_text(json.dumps(site))
    return path


async def gateway_run(site: Path, port: int, prefix: str, n: int) -> tuple[float, float]:
    gw = Gateway(load_site(site), load_registry(), metrics_interval=3600)
    stop = asyncio.Event()
    runner = asyncio.create_task(gw.run(stop))
    while "ingest" not in gw.health.devices:  # noqa: ASYNC110 - polling another task's state
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert gw.writer is not None
    base = gw.writer.stats().written
    want = base + n * VALUES
    pub = publish_in_process(port, prefix, n)
    first = None
    deadline = time.perf_counter() + 300
    while gw.writer.stats().written < want and time.perf_counter() < deadline:
        if first is None and gw.writer.stats().received > 0:
            first = time.perf_counter()
        await asyncio.sleep(0.005)
    end = time.perf_counter()
    written = gw.writer.stats().written - base
    stop.set()
    await runner
    await asyncio.to_thread(pub.join)
    if written < n * VALUES:
        print(f"  ({prefix}: {written} of {n * VALUES} points written before the deadline)")
    secs = end - (first or end)
    return (written / VALUES / secs, written / secs) if secs > 0 else (0.0, 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--post-points", type=int, default=500_000)
    args = ap.parse_args()
    n = args.messages
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        mport = free_port()
        (tmp / "m.conf").write_text(
            f"listener {mport} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
            "max_queued_bytes 0\nmax_inflight_messages 0\n"
        )
        broker = Server(
            "mosquitto", ["mosquitto", "-c", str(tmp / "m.conf")], mport, tmp, lambda: True
        )
        broker.start()
        wait_for(lambda: _tcp(mport), 10, "mosquitto")
        iport, rpc = free_port(), free_port()
        (tmp / "i.conf").write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
            f'[meta]\n  dir = "{tmp}/meta"\n[data]\n  dir = "{tmp}/data"\n  wal-dir = "{tmp}/wal"\n'
            f"  query-log-enabled = false\n[monitor]\n  store-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{iport}"\n  log-enabled = false\n'
            '[logging]\n  level = "error"\n'
        )
        influx = Server(
            "influxd", ["influxd", "-config", str(tmp / "i.conf")], iport, tmp, lambda: _tcp(iport)
        )
        influx.start()
        try:
            url = f"http://127.0.0.1:{iport}"
            print(f"messages: {n} x ~{len(payload(123456))} bytes JSON, {VALUES} values each")
            raw_msgs = raw_subscriber(mport, n)
            print(f"raw paho subscriber:        {raw_msgs:10,.0f} msg/s")
            raw_pts = raw_post(url, args.post_points)
            print(
                f"raw line-protocol POST:     {raw_pts:10,.0f} points/s (InfluxDB 1.x, 5000/batch)"
            )
            for name, sink in (
                ("embedded", {"type": "embedded"}),
                ("influxdb1", {"type": "influxdb1", "url": url, "database": "bench"}),
            ):
                site = site_file(tmp, mport, sink, f"gw{name}")
                msgs, pts = asyncio.run(gateway_run(site, mport, f"gw{name}", n))
                share = msgs / raw_msgs * 100 if raw_msgs else 0
                print(
                    f"gateway -> {name:<10}       {msgs:10,.0f} msg/s {pts:10,.0f} points/s"
                    f"  ({share:.0f} % of raw subscriber)"
                )
            rss = psutil.Process().memory_info().rss / 2**20
            print(f"RSS of this process:        {rss:10.0f} MB")
        finally:
            influx.stop()
            broker.stop()


def _tcp(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
