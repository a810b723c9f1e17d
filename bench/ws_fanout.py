"""WebSocket fan-out: alarm transitions to 50 live clients while the gateway
ingests 5,000 readings/s.

Setup (all on 127.0.0.1, free ports, a temp dir): a private Mosquitto; the
gateway as a subprocess (``python -m gateway run site.yaml``, as in
bench/alarm_latency.py) with an MQTT driver, the embedded time-series store,
the SQLite event store and the API; an API token made with
``gateway token create`` before the start. The site has ``--devices``
devices ``dev0000`` ... with ``--values`` points ``v0`` ... each, fed by one
JSON message per device (topic ``load/<device>/v``), and a device ``trig``
whose point ``t`` has a limit rule (``t > 50``, no delays; flood and
chattering detection out of reach, as in bench/alarm_site.py).

1. ``--clients`` WebSocket clients (the ``websockets`` library, in this
   process, compression as negotiated by default, like a browser) connect
   with the token and subscribe to every point (``"*"``).
2. A publisher subprocess (paho) sends ``--rate`` readings/s spread over
   every ``dev*`` point (QoS 0, paced every 10 ms).
3. Every ``--period`` s this process publishes a trigger on ``trig/t``,
   alternately over and under the limit (each one an alarm transition:
   reactivated / cleared), with a value that identifies it, and notes the
   wall-clock time just before the publish. Each client notes the wall-clock
   time at which it receives the ``alarm`` message; the latency is the
   difference (same machine, same clock), so it holds MQTT, the driver, the
   rule engine, the alarm manager's store-then-announce and the live stream.
   "after ingest" is the receive time minus the alarm's ``updated`` time (the
   reading's timestamp, taken by the gateway when the message came in).

Printed: per-transition latency p50/p99/max over all clients (nearest-rank),
messages delivered vs expected (every client must get every transition),
``readings`` messages and reading entries received, the gateway process's
CPU % (psutil, over the measured window; 100 % = one core) and RSS, and this
process's CPU (the clients). Target: p99 < 50 ms.

Run: ``.venv/bin/python bench/ws_fanout.py`` (about a minute; ``--duration``,
``--clients``, ``--rate``, ``--devices``, ``--values``, ``--no-compression``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

import aiomqtt
import httpx
import psutil
import yaml
from websockets.asyncio.client import ClientConnection, connect

from bench.alarm_latency import free_port, start_broker, start_gateway, stop_process
from gateway.api.auth.tokens import TOKEN_PREFIX

log = logging.getLogger("bench.ws")
ROOT = Path(__file__).resolve().parents[1]
LIMIT = 50.0
TRIGGER = "trig-hi@trig.t"
RAISE_BASE = 100_000.0  # raise k: value RAISE_BASE + k; clear k: value -k


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def device(i: int) -> str:
    return f"dev{i:04d}"


# -- the site -------------------------------------------------------------------


def site_document(
    data_dir: Path, broker: int, api: int, devices: int, values: int
) -> dict[str, Any]:
    names = [f"v{j}" for j in range(values)]
    return {
        "version": 1,
        "site": {"id": "wsbench", "name": "ws fan-out bench", "timezone": "Asia/Shanghai"},
        "data_dir": str(data_dir),
        "api": {"host": "127.0.0.1", "port": api},
        "devices": [
            *({"id": device(i), "kind": "sensor"} for i in range(devices)),
            {"id": "trig", "kind": "sensor", "name": "trigger"},
        ],
        "drivers": [
            {
                "type": "mqtt",
                "id": "field_mqtt",
                "broker": {"host": "127.0.0.1", "port": broker},
                "subscriptions": [
                    {
                        "topic": "load/+/v",
                        "device": "{1}",
                        "values": [{"point": n, "path": n} for n in names],
                    },
                    {"topic": "trig/t", "device": "trig", "values": [{"point": "t", "path": "t"}]},
                ],
            }
        ],
        "rules": [
            {
                "type": "limit",
                "id": "trig-hi",
                "points": ["trig.t"],
                "h": LIMIT,
                "priority": "high",
                "category": "it",
            }
        ],
        "alarms": {
            "chattering": {"count": 1_000_000, "window_s": 60},
            "flood": {"start_above": 1_000_000_000, "end_below": 1, "window_s": 600},
        },
    }


def make_token(site: Path) -> str:
    """An API token through the CLI (``gateway token create``), on the site's store."""
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "token", "create", str(site), "ws-bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        if line.strip().startswith(TOKEN_PREFIX):
            return line.strip()
    raise SystemExit(f"no token in the output of 'gateway token create':\n{out}")


# -- the load (a subprocess) -------------------------------------------------------


def publish_load(port: int, rate: int, devices: int, values: int) -> None:
    """Publish ``rate`` readings/s until killed (runs in its own process)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="ws-bench-load")
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    per_tick = rate / values / 100  # messages per 10 ms
    topics = [f"load/{device(i)}/v" for i in range(devices)]
    names = [f"v{j}" for j in range(values)]
    n, owed, tick = 0, 0.0, time.monotonic()
    while True:
        owed += per_tick
        while owed >= 1:
            owed -= 1
            i = n % devices
            body = {name: round((n * 7 + j) % 1000 * 0.1, 1) for j, name in enumerate(names)}
            client.publish(topics[i], json.dumps(body), qos=0)
            n += 1
        tick += 0.01
        time.sleep(max(0.0, tick - time.monotonic()))


# -- the clients --------------------------------------------------------------------


@dataclass
class Client:
    n: int
    latency_ms: dict[int, float] = field(default_factory=dict)  # trigger k -> ms
    after_ingest_ms: list[float] = field(default_factory=list)
    readings_messages: int = 0
    reading_entries: int = 0
    readings_bytes: int = 0
    other: int = 0
    welcomed: asyncio.Event = field(default_factory=asyncio.Event)
    expect: set[int] = field(default_factory=set)  # the measured triggers
    complete: asyncio.Event = field(default_factory=asyncio.Event)  # all of them arrived
    error: str = ""
    extensions: str = ""  # what the server agreed to (permessage-deflate or none)


def trigger_of(value: float) -> int:
    return int(value - RAISE_BASE) if value >= RAISE_BASE else int(-value)


async def run_client(
    c: Client, url: str, token: str, compression: str | None, sent: dict[int, int]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with connect(
            url, additional_headers=headers, compression=compression, max_size=2**24
        ) as ws:
            c.extensions = ",".join(e.name for e in ws.protocol.extensions) or "none"
            await ws.send(json.dumps({"type": "hello", "resume": None, "points": ["*"]}))
            await _receive(c, ws, sent)
    except (TimeoutError, OSError) as e:
        c.error = f"{type(e).__name__}: {e}"
    finally:
        c.welcomed.set()


async def _receive(c: Client, ws: ClientConnection, sent: dict[int, int]) -> None:
    async for raw in ws:
        now = time.time_ns()
        text = raw if isinstance(raw, str) else raw.decode()
        if text.startswith('{"type":"readings"'):
            # Counted, not parsed: this process also runs 50 clients.
            c.readings_messages += 1
            c.reading_entries += text.count('{"point":')
            c.readings_bytes += len(text)
            continue
        msg = json.loads(text)
        if msg["type"] == "welcome":
            c.welcomed.set()
        elif msg["type"] == "alarm" and msg["alarm"]["id"] == TRIGGER:
            k = trigger_of(float(msg["alarm"]["value"]))
            if k in sent:
                c.latency_ms[k] = (now - sent[k]) / 1e6
                updated = msg["alarm"]["updated"]
                c.after_ingest_ms.append((now - _ns(updated)) / 1e6)
                if c.expect and c.expect <= c.latency_ms.keys():
                    c.complete.set()
        else:
            c.other += 1


def _ns(iso: str) -> int:
    from datetime import datetime

    from gateway.model import from_datetime

    return from_datetime(datetime.fromisoformat(iso.replace("Z", "+00:00")))


# -- the run --------------------------------------------------------------------------


async def wait_api(base: str, gw: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if gw.poll() is not None:
                raise SystemExit(f"the gateway exited ({gw.returncode}); see its log")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{base}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise SystemExit("the gateway's API did not come up")


async def triggers(
    mq: aiomqtt.Client, period: float, count: int, sent: dict[int, int], first: int
) -> None:
    """``count`` transitions of trig.t, one every ``period`` s (k from ``first``)."""
    tick = time.monotonic()
    for k in range(first, first + count):
        value = RAISE_BASE + k if k % 2 == 0 else -float(k)
        sent[k] = time.time_ns()
        await mq.publish("trig/t", json.dumps({"t": value}), qos=0)
        tick += period
        await asyncio.sleep(max(0.0, tick - time.monotonic()))


@dataclass
class Figures:
    clients: list[Client]
    expected: int
    gw_cpu: float
    gw_rss_mb: float
    bench_cpu: float
    duration: float


async def run(args: argparse.Namespace, workdir: Path) -> Figures:
    broker, mqtt_port = start_broker(workdir)
    api_port = free_port()
    site = workdir / "site.yaml"
    doc = site_document(workdir / "data", mqtt_port, api_port, args.devices, args.values)
    site.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    token = make_token(site)
    gw = start_gateway(site, workdir / "gateway.log", args.profile)
    load: subprocess.Popen[bytes] | None = None
    tasks: list[asyncio.Task[None]] = []
    stack = contextlib.AsyncExitStack()
    try:
        await wait_api(f"http://127.0.0.1:{api_port}", gw)
        sent: dict[int, int] = {}
        clients = [Client(i) for i in range(args.clients)]
        url = f"ws://127.0.0.1:{api_port}/api/v1/live"
        compression = None if args.no_compression else "deflate"
        tasks = [asyncio.create_task(run_client(c, url, token, compression, sent)) for c in clients]
        await asyncio.wait_for(asyncio.gather(*(c.welcomed.wait() for c in clients)), 30)
        failed = [c.error for c in clients if c.error]
        if failed:
            raise SystemExit(f"{len(failed)} clients failed to connect: {failed[0]}")
        load = await asyncio.to_thread(
            subprocess.Popen,
            [
                sys.executable,
                __file__,
                "--publish",
                str(mqtt_port),
                "--rate",
                str(args.rate),
                "--devices",
                str(args.devices),
                "--values",
                str(args.values),
            ],
            cwd=ROOT,
        )
        # Warm-up: the load settles, Mosquitto's first messages are slow (FIELD-NOTES).
        warm = max(40, int(args.warmup / args.period))
        mq = aiomqtt.Client("127.0.0.1", mqtt_port, identifier="ws-bench-trig", logger=log)
        await stack.enter_async_context(mq)
        await triggers(mq, args.period, warm, sent, first=0)
        await asyncio.sleep(0.5)
        for c in clients:
            c.latency_ms.clear()
            c.after_ingest_ms.clear()
            c.readings_messages = c.reading_entries = c.readings_bytes = 0
        count = int(args.duration / args.period)
        count += count % 2  # end cleared
        expected = set(range(warm, warm + count))
        for c in clients:
            c.expect = expected
        proc, me = psutil.Process(gw.pid), psutil.Process()
        proc.cpu_percent(None)
        me.cpu_percent(None)
        t0 = time.monotonic()
        rss = 0.0
        trig = asyncio.create_task(triggers(mq, args.period, count, sent, first=warm))
        while not trig.done():
            rss = max(rss, proc.memory_info().rss / 2**20)
            await asyncio.sleep(0.5)
        await trig
        duration = time.monotonic() - t0
        gw_cpu, bench_cpu = proc.cpu_percent(None), me.cpu_percent(None)
        with contextlib.suppress(TimeoutError):  # stragglers: 10 s more at most
            await asyncio.wait_for(asyncio.gather(*(c.complete.wait() for c in clients)), 10)
        if gw.poll() is not None:
            print(f"  the gateway stopped (exit {gw.returncode}); see its log below")
        for c in clients:
            c.latency_ms = {k: v for k, v in c.latency_ms.items() if k in expected}
        return Figures(clients, count, gw_cpu, rss, bench_cpu, duration)
    finally:
        await stack.aclose()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if load is not None:
            load.kill()
            load.wait()
        await asyncio.to_thread(stop_process, gw)
        text = (workdir / "gateway.log").read_text(errors="replace").strip()
        if text:
            lines = text.splitlines()
            print(f"  gateway log ({len(lines)} lines, last 10):")
            for line in lines[-10:]:
                print(f"    {line}")
        stop_process(broker)


def report(f: Figures, args: argparse.Namespace) -> None:
    lat = sorted(v for c in f.clients for v in c.latency_ms.values())
    ingest = sorted(v for c in f.clients for v in c.after_ingest_ms)
    delivered = sum(len(c.latency_ms) for c in f.clients)
    expected = f.expected * len(f.clients)
    worst = min(len(c.latency_ms) for c in f.clients)
    print(
        f"\n{len(f.clients)} clients, {args.rate:,} readings/s over "
        f"{args.devices * args.values:,} points, a transition every {args.period * 1000:.0f} ms, "
        f"{f.duration:.1f} s measured, compression offered "
        f"{'none' if args.no_compression else 'deflate'}, agreed "
        f"{'/'.join(sorted({c.extensions or '?' for c in f.clients}))}"
    )
    print(f"  {'alarm message latency (ms)':<34} {'n':>6} {'p50':>8} {'p99':>8} {'max':>8}")
    for name, v in (("trigger publish -> client", lat), ("gateway ingest -> client", ingest)):
        if v:
            print(
                f"  {name:<34} {len(v):>6} {percentile(v, 0.5):8.2f} "
                f"{percentile(v, 0.99):8.2f} {v[-1]:8.2f}"
            )
    target = "met" if lat and percentile(lat, 0.99) < 50 else "NOT met"
    print(f"  target p99 < 50 ms: {target}")
    print(
        f"  delivered {delivered:,} of {expected:,} alarm messages "
        f"({f.expected} per client; the worst client got {worst})"
    )
    msgs = sum(c.readings_messages for c in f.clients)
    entries = sum(c.reading_entries for c in f.clients)
    mb = sum(c.readings_bytes for c in f.clients) / 2**20
    print(
        f"  readings: {msgs:,} messages ({msgs / len(f.clients) / f.duration:.1f}/s per client), "
        f"{entries:,} point values ({entries / len(f.clients) / f.duration:,.0f}/s per client), "
        f"{mb:,.1f} MiB of JSON"
    )
    print(
        f"  gateway process: CPU {f.gw_cpu:.0f} % (100 % = one core), RSS max {f.gw_rss_mb:.0f} MiB"
    )
    print(f"  this process (the {len(f.clients)} clients, triggers): CPU {f.bench_cpu:.0f} %")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"  machine load average after the run (1 / 5 / 15 min): {load}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rate", type=int, default=5_000, help="readings per second")
    ap.add_argument("--devices", type=int, default=200, help="devices fed by the load")
    ap.add_argument("--values", type=int, default=5, help="points per device (one message each)")
    ap.add_argument("--period", type=float, default=0.2, help="seconds between transitions")
    ap.add_argument("--duration", type=float, default=40, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=5, help="seconds of unrecorded triggers")
    ap.add_argument("--no-compression", action="store_true", help="no permessage-deflate")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (site file, log)")
    ap.add_argument("--profile", help="run the gateway under cProfile, writing this file")
    ap.add_argument("--publish", type=int, help=argparse.SUPPRESS)  # the load subprocess
    args = ap.parse_args()
    if args.publish:
        publish_load(args.publish, args.rate, args.devices, args.values)
        return
    logging.basicConfig(level=logging.WARNING)
    print(f"ws fan-out bench: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    workdir = Path(tempfile.mkdtemp(prefix="ws-bench-"))
    try:
        figures = asyncio.run(run(args, workdir))
        report(figures, args)
        if args.profile:
            import pstats

            print(f"\ncProfile of the gateway: {args.profile}")
            pstats.Stats(args.profile).sort_stats("tottime").print_stats(30)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
