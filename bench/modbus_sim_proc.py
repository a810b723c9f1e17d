"""One Modbus TCP simulator process for bench/modbus_poll.py.

Serves ``--units`` (unit ids, e.g. ``1-250``) with ``--registers`` holding
registers each (addresses 0..n-1) on one port, prints ``PORT <n>`` and serves
until SIGTERM/SIGINT. Two server kinds, so the bench can show which one is
the limit:

* ``sim``: the gateway's own :class:`~drivers.modbus.simulator.ModbusSimulator`
  (fault-injecting request handler, one :class:`SimulatedDevice` per unit);
* ``plain``: a bare pymodbus ``ModbusTcpServer`` with one ``SimDevice`` per unit.

Both answer the same registers: ``--layout uint16`` fills each unit with
``unit * 100 + i`` in register ``i``; ``--layout float32`` holds
``registers / 2`` float32 values ``unit + i / 10`` (ABCD order).

Run: ``.venv/bin/python bench/modbus_sim_proc.py --units 1-250 --registers 20``
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as PmDataType
from pymodbus.simulator import SimData, SimDevice

from drivers.modbus.codec import encode
from drivers.modbus.datatypes import DataType, ValueSpec
from drivers.modbus.planner import Table
from drivers.modbus.simulator import ModbusSimulator, SimPoint, SimulatedDevice
from gateway.loop import run as run_loop

LAYOUTS = ("uint16", "float32")
SERVERS = ("sim", "plain")


def parse_units(text: str) -> list[int]:
    """``1-250`` or ``1,2,5-9`` -> unit ids."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def points(unit: int, registers: int, layout: str) -> list[SimPoint]:
    """The simulated points of one unit; together they cover registers 0..registers-1."""
    if layout == "uint16":
        spec = ValueSpec(DataType.UINT16)
        return [
            SimPoint(f"r{i}", Table.HOLDING, i, spec, (unit * 100 + i) % 65536)
            for i in range(registers)
        ]
    if registers % 2:
        raise SystemExit("--layout float32 needs an even --registers")
    spec = ValueSpec(DataType.FLOAT32)
    return [
        SimPoint(f"f{i}", Table.HOLDING, 2 * i, spec, unit + i / 10) for i in range(registers // 2)
    ]


def register_values(unit: int, registers: int, layout: str) -> list[int]:
    """The same registers as :func:`points`, as raw words (for the plain server)."""
    words: list[int] = []
    for p in points(unit, registers, layout):
        words.extend(encode(p.value, p.spec))
    return words


async def serve(args: argparse.Namespace) -> None:
    units = parse_units(args.units)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.server == "sim":
        devices = [SimulatedDevice(u, points(u, args.registers, args.layout)) for u in units]
        sim = ModbusSimulator(devices, "127.0.0.1", args.port)
        await sim.start()
        print(f"PORT {sim.port}", flush=True)
        await stop.wait()
        await sim.stop()
        return
    port = args.port
    server = ModbusTcpServer(
        [
            SimDevice(
                id=u,
                simdata=[
                    SimData(
                        0,
                        values=register_values(u, args.registers, args.layout),
                        datatype=PmDataType.REGISTERS,
                    )
                ],
            )
            for u in units
        ],
        address=("127.0.0.1", port),
    )
    await server.serve_forever(background=True)
    listener: Any = server.transport  # an asyncio (or uvloop) listening Server
    print(f"PORT {listener.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    await server.shutdown()  # type: ignore[no-untyped-call]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--units", default="1-250", help="unit ids, e.g. 1-250 or 1,2,7-9")
    ap.add_argument("--registers", type=int, default=20)
    ap.add_argument("--layout", choices=LAYOUTS, default="uint16")
    ap.add_argument("--server", choices=SERVERS, default="sim")
    ap.add_argument("--port", type=int, default=0, help="0: any free port")
    run_loop(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
