"""MQTT ingest throughput: the gateway's ingest loop vs a bare paho subscriber.

Starts a private Mosquitto that queues QoS 0 messages for offline persistent
sessions, so each subscriber meets a pre-published burst (default 100k
~150-byte JSON messages) the moment it connects: the figure is how fast a
subscriber drains it, not how fast a publisher can produce it.

Subscribers, each timed from its connect call to its last message, in the same run:

* ``paho``: bare paho-mqtt, ``loop()`` in this thread, a counting on_message;
* ``aiomqtt``: plain ``async for message in client.messages`` (counting);
* ``ingest``: :class:`drivers.mqtt.ingest.MqttIngestDriver` mapping each
  message (JSON, one value) to a Reading on the bus, drained by a sink task.

Run: ``.venv/bin/python bench/mqtt_ingest.py [--messages 100000] [--rounds 3] [--uvloop]``

``--uvloop`` runs the asyncio subscribers on uvloop (if importable). The
ingest parses JSON with orjson when that is importable (see
``drivers.mqtt.payload.JSON_LIBRARY``); both are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from drivers.mqtt.config import MqttIngestConfig
from drivers.mqtt.ingest import MqttIngestDriver
from drivers.mqtt.payload import JSON_LIBRARY
from gateway.bus import Bus
from gateway.clock import SystemClock
from gateway.context import RuntimeContext
from gateway.health import Health

TOPIC = "bench/{n}/env"
log = logging.getLogger("bench.mqtt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "queue_qos0_messages true\nmax_queued_messages 0\nmax_queued_bytes 0\n"
        "log_dest none\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def payloads(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        doc = {
            "t": round(20 + (i % 100) / 10, 1),
            "h": 55.5,
            "seq": i,
            "site": "bench-estate",
            "fw": "1.4.2",
            "rssi": -61,
            "pad": "",
        }
        raw = json.dumps(doc)
        doc["pad"] = "x" * max(0, 150 - len(raw))
        out.append(json.dumps(doc).encode())
    return out


def paho_client(client_id: str, port: int) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.connect("127.0.0.1", port)
    return c


def register(client_id: str, port: int) -> None:
    """Create the persistent session with its subscription, then go offline."""
    c = paho_client(client_id, port)
    c.subscribe("bench/+/env", 0)
    for _ in range(20):
        c.loop(0.05)
    c.disconnect()


def publish_burst(port: int, data: list[bytes]) -> None:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub")
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    for i, payload in enumerate(data):
        c.publish(TOPIC.format(n=i % 50), payload, 0)
    while c.want_write():
        time.sleep(0.01)
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()


def run_paho(client_id: str, port: int, n: int) -> float:
    count = 0
    t1 = 0.0

    def on_message(_c: paho.Client, _u: object, _m: paho.MQTTMessage) -> None:
        nonlocal count, t1
        count += 1
        if count == n:
            t1 = time.perf_counter()

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.on_message = on_message
    t0 = time.perf_counter()
    c.connect("127.0.0.1", port)
    deadline = time.monotonic() + 120
    while count < n and time.monotonic() < deadline:
        c.loop(0.5)
    c.disconnect()
    return n / (t1 - t0) if count >= n else count / (time.perf_counter() - t0)


async def run_aiomqtt(client_id: str, port: int, n: int) -> float:
    count = 0
    t0 = time.perf_counter()
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=client_id, clean_session=False, logger=log
    ) as client:
        async for _ in client.messages:
            count += 1
            if count == n:
                break
    return n / (time.perf_counter() - t0)


async def run_ingest(client_id: str, port: int, n: int) -> float:
    cfg = MqttIngestConfig.model_validate(
        {
            "type": "mqtt",
            "id": "bench",
            "broker": {
                "host": "127.0.0.1",
                "port": port,
                "client_id": client_id,
                "clean_session": False,
            },
            "subscriptions": [
                {
                    "topic": "bench/+/env",
                    "device": "dev{1}",
                    "values": [{"point": "t", "path": "t"}],
                }
            ],
            "max_queued_messages": 1_000_000,
        }
    )
    bus = Bus()
    clock = SystemClock()
    sink = bus.subscribe("sink", maxsize=100_000)
    with tempfile.TemporaryDirectory() as d:
        ctx = RuntimeContext(
            driver_id="bench",
            site="bench",
            bus=bus,
            clock=clock,
            health=Health(clock, bus.publish),
            data_dir=Path(d),
            device_kinds={},
        )
        drv = MqttIngestDriver(cfg)
        t0 = time.perf_counter()
        task = asyncio.create_task(drv.run(ctx))
        count = 0
        while count < n:
            batch = await sink.get_batch(10_000)
            count += sum(1 for m in batch if type(m).__name__ == "Reading")
        t1 = time.perf_counter()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert drv.stats().malformed == 0, drv.stats()
    return n / (t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--only",
        nargs="*",
        default=["paho", "aiomqtt", "ingest"],
        help="subscribers to run (paho aiomqtt ingest)",
    )
    ap.add_argument("--uvloop", action="store_true", help="run asyncio on uvloop")
    args = ap.parse_args()
    loop = "asyncio"
    if args.uvloop:
        import uvloop  # only for this measurement; not a gateway dependency

        uvloop.install()
        loop = f"uvloop {uvloop.__version__}"
    data = payloads(args.messages)
    print(
        f"{args.messages} messages of {len(data[0])} bytes, QoS 0, {args.rounds} round(s); "
        f"event loop: {loop}; ingest JSON: {JSON_LIBRARY}"
    )
    results: dict[str, list[float]] = {"paho": [], "aiomqtt": [], "ingest": []}
    runners: dict[str, Callable[[str, int, int], float]] = {
        "paho": run_paho,
        "aiomqtt": lambda c, p, n: asyncio.run(run_aiomqtt(c, p, n)),
        "ingest": lambda c, p, n: asyncio.run(run_ingest(c, p, n)),
    }
    with tempfile.TemporaryDirectory() as d:
        proc, port = start_broker(Path(d))
        try:
            for r in range(args.rounds):
                for name, fn in runners.items():
                    if name not in args.only:
                        continue
                    cid = f"bench-{name}-{r}"
                    register(cid, port)
                    publish_burst(port, data)
                    rate = fn(cid, port, args.messages)
                    results[name].append(rate)
                    print(f"  round {r + 1} {name:8s} {rate:10,.0f} msg/s", flush=True)
        finally:
            proc.terminate()
            proc.wait()
    med = {k: statistics.median(v) for k, v in results.items() if v}
    print("median msg/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in med.items()))
    if len(med) < 3:
        return
    print(
        f"ingest / paho = {med['ingest'] / med['paho']:.0%} (target >= 75 %); "
        f"aiomqtt / paho = {med['aiomqtt'] / med['paho']:.0%}"
    )


if __name__ == "__main__":
    main()
