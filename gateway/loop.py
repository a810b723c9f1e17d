"""Run the gateway's top-level coroutine on the fastest event loop available.

uvloop (libuv) roughly halves the per-message cost of the MQTT ingest path
(bench/mqtt_ingest.py); it is a core dependency on Linux. Where it is not
installed the standard asyncio loop runs the same code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run"]

T = TypeVar("T")
log = logging.getLogger("gateway.loop")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        log.info("uvloop is not installed; using the standard asyncio loop")
        return asyncio.run(main)
    return uvloop.run(main)
