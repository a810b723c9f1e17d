from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from gateway.alarms import AlarmsConfig
from gateway.clock import ManualClock
from gateway.storage.eventstore import EventStore
from tests.gateway.alarms.harness import START, Harness, sqlite_url


@pytest_asyncio.fixture(loop_scope="function")
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    s = EventStore(sqlite_url(tmp_path))
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest_asyncio.fixture(loop_scope="function")
async def h(store: EventStore) -> Harness:
    harness = Harness(store, ManualClock(START), AlarmsConfig(control_rooms=["main", "east"]))
    await harness.start()
    return harness
