"""MQTT telemetry -> bus -> sink, measured beside the raw ceilings in one run.

Prints, on the same broker, messages and machine:
  raw paho subscriber       msg/s of a bare paho client doing nothing per message
  raw line-protocol POST    points/s of a bare 5000-point /write loop to InfluxDB 1.x
  gateway -> embedded       msg/s and points/s: MQTT in, SQLite history committed
  gateway -> influxdb1      msg/s and points/s: MQTT in, InfluxDB confirmed
  RSS of this process after the runs, and the peak RSS (VmHWM) of a separate
  `gateway run` process draining the same burst (status.json every 10 s)

Method (as bench/mqtt_ingest.py): a private Mosquitto queues QoS 0 messages for
offline persistent sessions, so every subscriber meets the same pre-published
burst (~150-byte JSON, 2 never-repeating values each) the moment it connects; the figure is
how fast it drains the burst, not how fast a publisher produces it. The
gateway runs in full (runtime, bus, deadband, outbox, sink) and is timed from
its MQTT connection to the moment every point is accounted for: confirmed by
the sink, or dropped by report-by-exception as an exact repeat.

Run: .venv/bin/python bench/ingest.py [--messages 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from mqtt_ingest import publish_burst, register, run_paho, start_broker

from gateway.config.loader import load_site
from gateway.loop import run as run_loop
from gateway.registry import load_registry
from gateway.runtime import Gateway
from tests.fixtures.servers import influxd_server

VALUES = ("t", "h")


def payloads(n: int) -> list[bytes]:
    """~150-byte JSON messages whose values never repeat, so every point is written
    (report-by-exception would drop exact repeats)."""
    out = []
    for i in range(n):
        doc = {"t": round(i * 0.01, 2), "h": round(40 + i * 0.001, 3), "seq": i}
        doc.update(site="bench-estate", fw="1.4.2", rssi=-61, pad="")
        doc["pad"] = "x" * max(0, 150 - len(json.dumps(doc)))
        out.append(json.dumps(doc).encode())
    return out


def raw_post(url: str, points: int) -> float:
    create = urllib.request.Request(f"{url}/query?q=CREATE+DATABASE+raw", method="POST")
    urllib.request.urlopen(create).read()
    t0 = 1_795_000_000_000_000_000
    lines = [
        f"sensor,site=raw,device=d{i % 50},kind=sensor t={i * 0.5} {t0 + i}" for i in range(points)
    ]
    batches = ["\n".join(lines[i : i + 5000]).encode() for i in range(0, points, 5000)]
    t = time.perf_counter()
    for b in batches:
        urllib.request.urlopen(urllib.request.Request(f"{url}/write?db=raw&precision=ns", b)).read()
    return points / (time.perf_counter() - t)


def site_file(tmp: Path, port: int, sink: dict[str, Any], client_id: str) -> Path:
    site = {
        "version": 1,
        "site": {"id": client_id},
        "data_dir": str(tmp / client_id),
        "api": {"enabled": False},
        "devices": [{"id": str(i), "kind": "sensor"} for i in range(50)],
        "drivers": [
            {
                "type": "mqtt",
                "id": "ingest",
                "broker": {
                    "host": "127.0.0.1",
                    "port": port,
                    "client_id": client_id,
                    "clean_session": False,
                },
                "max_queued_messages": 1_000_000,
                "subscriptions": [
                    {
                        "topic": "bench/+/env",
                        "device": "{1}",
                        "values": [{"point": v, "path": v} for v in VALUES],
                    }
                ],
            }
        ],
        "storage": {
            "timeseries": {
                "sink": sink,
                "batch_size": 5000,
                "flush_interval_s": 0.2,
                "default_heartbeat_s": None,
            }
        },
    }
    path = tmp / f"{client_id}.yaml"
    path.write_text(json.dumps(site))
    return path


async def gateway_drain(site: Path, n: int) -> tuple[float, float]:
    gw = Gateway(load_site(site), load_registry(), metrics_interval=3600)
    stop = asyncio.Event()
    runner = asyncio.create_task(gw.run(stop))
    # The burst pours in as soon as the MQTT session resumes: start the clock at the
    # first reading the bus carries (polled every millisecond).
    while gw.writer is None or (gw.writer.stats().received == 0 and _ts_depth(gw) == 0):  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    t0 = time.perf_counter()
    assert gw.writer is not None
    want = n * len(VALUES)
    deadline = t0 + 300
    while time.perf_counter() < deadline:
        st = gw.writer.stats()
        done = st.written + st.filtered_by_deadband
        if done >= want and st.pending_points == 0 and st.buffered_points == 0:
            break
        await asyncio.sleep(0.002)
    secs = time.perf_counter() - t0
    st = gw.writer.stats()
    stop.set()
    await runner
    done = st.written + st.filtered_by_deadband
    if done < want:
        print(f"  (only {done} of {want} points accounted for before the deadline)")
    return done / len(VALUES) / secs, st.written / secs


def gateway_process_peak_rss(site: Path, n: int) -> tuple[float, float]:
    """Run ``gateway run`` as its own process on the burst; return (peak RSS MB, seconds)."""
    data_dir = json.loads(site.read_text())["data_dir"]
    status = Path(data_dir) / "status.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", str(site), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ps = psutil.Process(proc.pid)
    t0 = time.perf_counter()
    written = 0
    try:
        while written < n * len(VALUES) and time.perf_counter() - t0 < 300:
            time.sleep(0.5)
            if status.exists():
                try:
                    written = int(json.loads(status.read_text())["figures"]["ts_written"])
                except (ValueError, KeyError):
                    continue  # caught mid-replace
        hwm = _peak_rss_mb(ps)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return hwm, time.perf_counter() - t0


def _peak_rss_mb(ps: psutil.Process) -> float:
    for line in Path(f"/proc/{ps.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float(ps.memory_info().rss) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--post-points", type=int, default=500_000)
    args = ap.parse_args()
    n = args.messages
    data = payloads(n)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker, mport = start_broker(tmp)
        influx = influxd_server(tmp, max_body_size=25_000_000)
        influx.start()
        url = influx.url
        try:
            print(f"burst: {n} messages x ~{len(data[0])} bytes JSON, {len(VALUES)} values each")
            register("raw", mport)
            publish_burst(mport, data)
            raw_msgs = run_paho("raw", mport, n)
            print(f"raw paho subscriber:     {raw_msgs:10,.0f} msg/s")
            raw_pts = raw_post(url, args.post_points)
            print(f"raw line-protocol POST:  {raw_pts:10,.0f} points/s (InfluxDB 1.x, 5000/batch)")
            for name, sink in (
                ("embedded", {"type": "embedded"}),
                ("influxdb1", {"type": "influxdb1", "url": url, "database": "bench"}),
            ):
                client_id = f"gw-{name}"
                register(client_id, mport)
                publish_burst(mport, data)
                msgs, pts = run_loop(gateway_drain(site_file(tmp, mport, sink, client_id), n))
                share = msgs / raw_msgs * 100 if raw_msgs else 0
                print(
                    f"gateway -> {name:<10}    {msgs:10,.0f} msg/s {pts:10,.0f} points/s written"
                    f"  ({share:.0f} % of the raw subscriber)"
                )
            rss = psutil.Process().memory_info().rss / 2**20
            print(f"RSS of this process:     {rss:10.0f} MB (holds the burst and a paho client)")
            register("gw-proc", mport)
            publish_burst(mport, data)
            site = site_file(tmp, mport, {"type": "embedded"}, "gw-proc")
            peak, secs = gateway_process_peak_rss(site, n)
            print(
                f"`gateway run` peak RSS:  {peak:10.0f} MB"
                f" (embedded sink, burst drained in {secs:.0f} s)"
            )
        finally:
            influx.stop()
            broker.terminate()
            broker.wait()


def _ts_depth(gw: Gateway) -> int:
    return sum(s.depth for s in gw.bus.stats() if s.name == "timeseries")


if __name__ == "__main__":
    main()
