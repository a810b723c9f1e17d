"""Access control: card at the reader to relay command at the reader, and
sustained decisions per second with 100k credentials and 200 doors.

One site for both parts (a temp dir, 127.0.0.1 only): 200 doors ``door000`` ...
with an entry and an exit reader each (400 readers), one area with soft
anti-passback, a residents group allowed everywhere, and ``--credentials``
(100,000) residents with cards, written into the SQLite event store before
the gateway starts. Door ``door000``'s entry reader is a real OSDP reader:
a libosdp peripheral device (the repository's simulator) on one end of a
socat pty pair, the gateway's ``osdp`` driver on the other, secure channel on.

1. Latency (the gateway as a subprocess, ``python -m gateway run``): this
   process presents ``--reads`` cards at the simulated reader, one every
   50-250 ms (random, so reads fall anywhere in libosdp's 50 ms poll cycle),
   and notes ``time.perf_counter()`` just before; the simulator notes the
   moment its command callback receives the relay (output) command. Both
   clocks are CLOCK_MONOTONIC of one machine. The path holds the OSDP poll,
   the driver, the bus, the decision, the SQLite commit of the passage and
   presence, and the command back over OSDP. Target: p99 < 50 ms.
2. Throughput (the gateway in this process; no drivers): ``--burst`` card
   reads are published on the bus as a driver would, spread over the 400
   readers and random credentials (5 % unknown cards), as fast as the bus
   takes them; the figure is reads until the last passage is committed,
   divided by the time. Printed with the commands published and the CPU.
   Also a plain loop over ``Decider.decide`` (no storage) for the ceiling.

Run: ``.venv/bin/python bench/access.py`` (about 2 minutes; ``--reads``,
``--burst``, ``--credentials``, ``--doors``, ``--skip-latency``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil
import yaml

from drivers.cards.events import card_presented
from drivers.cards.osdp.simulator import SimulatedReader
from gateway.access.cards import CardHasher, load_access_key
from gateway.access.credentials import Credential, CredentialStore
from gateway.access.decision import CardRead
from gateway.clock import SystemClock
from gateway.config.loader import load_site
from gateway.model import Command
from gateway.registry import load_registry
from gateway.runtime import Gateway
from gateway.storage.eventstore import EventStore

KEY_HEX = "00112233445566778899aabbccddeeff"
OSDP_ADDRESS = 1


def site_document(data_dir: Path, pty: str, doors: int) -> dict[str, object]:
    devices: list[dict[str, str]] = []
    access_doors: list[dict[str, object]] = []
    for i in range(doors):
        door = f"door{i:03d}"
        devices.append({"id": door, "kind": "gate"})
        devices += [
            {"id": f"{door}_in", "kind": "card_reader"},
            {"id": f"{door}_out", "kind": "card_reader"},
        ]
        access_doors.append(
            {
                "id": door,
                "area": "estate",
                "readers": [
                    {"device": f"{door}_in", "direction": "in"},
                    {"device": f"{door}_out", "direction": "out"},
                ],
                "relay": {"device": f"{door}_in", "output": 0, "seconds": 1},
            }
        )
    return {
        "version": 1,
        "site": {"id": "bench-access", "timezone": "Asia/Shanghai"},
        "data_dir": str(data_dir),
        "devices": devices,
        "drivers": [
            {
                "type": "osdp",
                "id": "osdp-bench",
                "serial": {"port": pty, "baud": 115200},
                "readers": [
                    {"device": "door000_in", "address": OSDP_ADDRESS, "key_env": "BENCH_OSDP_KEY"}
                ],
            }
        ],
        "storage": {"timeseries": {"sink": {"type": "embedded"}}},
        "api": {"enabled": False},
        "access": {
            "areas": [{"id": "estate", "anti_passback": "soft"}],
            "doors": access_doors,
            "groups": {"residents": {"doors": ["*"]}, "visitors": {"doors": ["*"]}},
        },
    }


def uid_of(i: int) -> str:
    """A 24-bit card number (what a 26-bit Wiegand reader reports), distinct per i."""
    return f"{0x100000 + i * 13:06X}"


async def seed(data_dir: Path, n: int) -> float:
    store = EventStore(f"sqlite+aiosqlite:///{data_dir / 'gateway.db'}")
    await store.open()
    try:
        creds = CredentialStore(store, CardHasher(load_access_key(data_dir)), SystemClock())
        await creds.load()
        if len(creds) >= n:
            return 0.0
        t0 = time.perf_counter()
        batch: list[Credential] = []
        for i in range(n):
            batch.append(
                creds.make(
                    id=f"R{i:06d}",
                    kind="resident",
                    holder=f"resident {i}",
                    group="residents",
                    card=uid_of(i),
                )
            )
        await creds.upsert(batch)
        return time.perf_counter() - t0
    finally:
        await store.close()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def latency(site_path: Path, pd_port: str, reads: int, n_creds: int, log: Path) -> None:
    env = {**os.environ, "BENCH_OSDP_KEY": KEY_HEX}
    cmd = [sys.executable, "-m", "gateway", "run", str(site_path), "--log-level", "warning"]
    with log.open("wb") as out:
        gw = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    pd = SimulatedReader(OSDP_ADDRESS, scbk=bytes.fromhex(KEY_HEX), serial_port=pd_port)
    pd.start()
    try:
        deadline = time.monotonic() + 60
        while not pd.sc_active:
            if time.monotonic() > deadline or gw.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise SystemExit(f"the reader never came online; the gateway said:\n{tail}")
            time.sleep(0.1)
        rng = random.Random(7)
        lat: list[float] = []
        missed = 0
        proc = psutil.Process(gw.pid)
        proc.cpu_percent()
        for k in range(reads + 20):  # the first 20 warm up
            pd.clear_commands()
            i = rng.randrange(n_creds)
            t0 = pd.present_card(uid_of(i), bits=26)
            try:
                got = pd.wait_command("output", timeout=2.0)
            except TimeoutError:
                missed += 1
                continue
            if k >= 20:
                lat.append((float(got["t"]) - t0) * 1000)
            time.sleep(rng.uniform(0.05, 0.25))
        cpu = proc.cpu_percent()
    finally:
        pd.stop()
        gw.terminate()
        try:
            gw.wait(30)
        except subprocess.TimeoutExpired:
            gw.kill()
    print(f"card at reader -> relay command at reader, {len(lat)} reads ({missed} without a pulse)")
    if lat:
        print(
            f"  p50 {pct(lat, 50):.1f} ms  p90 {pct(lat, 90):.1f} ms  p99 {pct(lat, 99):.1f} ms"
            f"  max {max(lat):.1f} ms   gateway CPU {cpu:.0f} % during the reads"
        )


async def throughput(site_path: Path, burst: int, n_creds: int) -> None:
    site = load_site(site_path, env={**os.environ, "BENCH_OSDP_KEY": KEY_HEX})
    cfg = site.config.model_copy(update={"drivers": []})
    site = dataclasses.replace(site, config=cfg)
    gw = Gateway(site, load_registry(), metrics_interval=60)
    await gw.start()
    commands = gw.bus.subscribe("bench.commands", (Command,), maxsize=1_000_000)
    try:
        assert gw.access is not None and gw.access.decider is not None
        doors = cfg.access.doors
        rng = random.Random(11)
        # Plain decisions, no storage: the ceiling of the decision logic.
        decider = gw.access.decider
        reads = []
        for _ in range(50_000):
            door = rng.choice(doors)
            b = rng.choice(door.readers)
            reads.append(
                CardRead(
                    b.device,
                    door,
                    b.direction,
                    time.time_ns(),
                    "card",
                    uid_of(rng.randrange(n_creds)),
                    "wiegand26",
                )
            )
        t0 = time.perf_counter()
        for r in reads:
            decider.decide(r)
        dt = time.perf_counter() - t0
        print(f"Decider.decide alone: {len(reads) / dt:,.0f} decisions/s ({len(reads)} reads)")

        before = gw.access.decided
        proc = psutil.Process()
        proc.cpu_percent()
        t0 = time.perf_counter()
        for k in range(burst):
            door = doors[k % len(doors)]
            b = door.readers[(k // len(doors)) % 2]
            i = rng.randrange(n_creds) if rng.random() > 0.05 else n_creds + k
            await gw.bus.publish(card_presented(b.device, time.time_ns(), uid_of(i), "wiegand26"))
        while gw.access.decided - before < burst:  # noqa: ASYNC110 (a counter, polled)
            await asyncio.sleep(0.01)
        dt = time.perf_counter() - t0
        cpu = proc.cpu_percent()
        n_cmd = len(commands.get_nowait(10_000_000))
        print(
            f"sustained through the service (decide, commit passages and presence, publish): "
            f"{burst / dt:,.0f} decisions/s ({burst} reads in {dt:.1f} s, {n_cmd} commands, "
            f"CPU {cpu:.0f} %)"
        )
    finally:
        await gw.stop()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reads", type=int, default=300)
    ap.add_argument("--burst", type=int, default=50_000)
    ap.add_argument("--credentials", type=int, default=100_000)
    ap.add_argument("--doors", type=int, default=200)
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the bench's alarms reach nobody on call
    if shutil.which("socat") is None:
        raise SystemExit("socat is missing: run 'make test' once (it installs the Debian packages)")
    from tests.fixtures.serial import socat_pty_pair

    with tempfile.TemporaryDirectory(prefix="bench-access-") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir()
        with socat_pty_pair(work) as (cp_port, pd_port):
            site_path = work / "site.yaml"
            site_path.write_text(yaml.safe_dump(site_document(data, cp_port, args.doors)))
            took = asyncio.run(seed(data, args.credentials))
            print(
                f"{args.credentials:,} credentials written in {took:.1f} s; "
                f"{args.doors} doors, {2 * args.doors} readers"
            )
            if not args.skip_latency:
                latency(site_path, pd_port, args.reads, args.credentials, work / "gateway.log")
            asyncio.run(throughput(site_path, args.burst, args.credentials))


if __name__ == "__main__":
    main()
