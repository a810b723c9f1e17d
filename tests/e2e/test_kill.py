"""A gateway killed with SIGKILL while points wait in the outbox delivers them on
restart, once each, with their original timestamps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.e2e import harness
from tests.fixtures.servers import Server, wait_for

pytestmark = pytest.mark.slow

N_MSGS = 1000  # 5,000 points


def _gateway(site: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", str(site), "--log-level", "info"],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _log_says(log: Path, text: str) -> bool:
    return text in log.read_text(errors="replace")


async def test_sigkill_with_points_in_the_outbox_loses_and_duplicates_nothing(
    tmp_path: Path, mosquitto: Server, influxdb1: Server
) -> None:
    site_id = f"kill-{uuid.uuid4().hex[:8]}"
    db = f"db_{site_id.replace('-', '_')}"
    prefix = f"t/{site_id}"
    site = harness.write_site(
        tmp_path,
        site_id,
        mosquitto.port,
        {"type": "influxdb1", "url": influxdb1.url, "database": db},
        prefix,
    )
    outbox = tmp_path / "var" / "outbox.db"
    log = tmp_path / "gateway.log"

    influxdb1.stop()  # the historian is down: points can only wait in the outbox
    try:
        gw = _gateway(site, log)
        try:
            wait_for(lambda: _log_says(log, "connected to"), 30, "the gateway's MQTT connection")
            await harness.publish(mosquitto.port, prefix, N_MSGS)
            wait_for(lambda: harness.outbox_points(outbox) == N_MSGS * 5, 30, "a full outbox")
        finally:
            os.kill(gw.pid, signal.SIGKILL)
            gw.wait()
        assert gw.returncode == -signal.SIGKILL
        assert harness.outbox_points(outbox) == N_MSGS * 5  # survived the kill
    finally:
        influxdb1.start()

    gw = _gateway(site, log)
    try:
        wait_for(lambda: harness.outbox_points(outbox) == 0, 60, "the outbox to drain")
        got = harness.influx1_points(influxdb1.url, db, site_id)
    finally:
        gw.send_signal(signal.SIGTERM)
        assert gw.wait(30) == 0  # a clean stop
    expected = harness.expected_points(N_MSGS)
    assert len(got) == len(expected)
    assert {(p, ts): v for p, ts, v in got} == expected
