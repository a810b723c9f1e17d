"""Shared pieces of the MQTT driver tests: a real runtime context around a
driver task, a collector on the bus, a publisher, and a private Mosquitto
for the tests that stop or restart the broker (the session one is shared
with other tests and must stay up)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.fixtures.servers import Server, _need, mosquitto_server

log = logging.getLogger("tests.mqtt")


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@contextlib.asynccontextmanager
async def publisher(port: int, **kwargs: Any) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client("127.0.0.1", port, logger=log, **kwargs) as client:
        yield client


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool


class Watcher:
    """A test subscriber that records everything under a topic filter."""

    def __init__(self, port: int, topic: str, *, qos: int = 1, **kwargs: Any) -> None:
        self.port, self.topic, self.qos, self.kwargs = port, topic, qos, kwargs
        self.got: list[Received] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> Watcher:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, logger=log, **self.kwargs) as c:
                    await c.subscribe(self.topic, self.qos)
                    self._ready.set()
                    async for m in c.messages:
                        assert isinstance(m.payload, bytes)
                        self.got.append(Received(m.topic.value, m.payload, m.retain))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)  # the broker restarts: come back

    def payloads(self, suffix: str = "") -> list[bytes]:
        return [r.payload for r in self.got if r.topic.endswith(suffix)]

    async def until(self, check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; got {self.got!r}")


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[Server]:
    """A private broker this test may stop and restart, persisting sessions."""
    _need("mosquitto")
    srv = mosquitto_server(tmp_path, persist=True)
    srv.start()
    yield srv
    srv.stop()
