"""A private Mosquitto for the demo: a free loopback port, a temporary config."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

__all__ = ["BrokerMissing", "private_mosquitto", "stop_process"]


class BrokerMissing(RuntimeError):
    pass


def _prepare(workdir: Path) -> tuple[str, int, Path]:
    """Find the binary, pick a port and write the config (blocking, run in a thread)."""
    binary = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    if binary is None:
        raise BrokerMissing("mosquitto")
    workdir.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    return binary, port, conf


async def _wait_listening(port: int, proc: asyncio.subprocess.Process, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"mosquitto exited with code {proc.returncode}")
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        w.close()
        return
    raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{port} within {within} s")


@contextlib.asynccontextmanager
async def private_mosquitto(workdir: Path) -> AsyncIterator[int]:
    """Run Mosquitto on 127.0.0.1 (loopback only) and yield its port."""
    binary, port, conf = await asyncio.to_thread(_prepare, workdir)
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-c",
        str(conf),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _wait_listening(port, proc, within=10)
        yield port
    finally:
        await stop_process(proc)


async def stop_process(proc: asyncio.subprocess.Process, grace_s: float = 5.0) -> None:
    """Terminate a helper process of the demo (a broker, socat); kill it after ``grace_s``."""
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
