"""The gateway command as a user runs it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def gateway(*args: str, cwd: Path = REPO, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_run_with_a_config_error_names_the_line_and_starts_nothing(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\nsite: {id: a, timezone: Mars/Olympus}\ndata_dir: var\n")
    res = gateway("run", str(site))
    assert res.returncode == 1
    assert "site.yaml:2:" in res.stderr and "site.timezone" in res.stderr
    assert "Mars/Olympus" in res.stderr  # not a secret: the user needs to see it
    assert not (tmp_path / "var").exists()  # nothing was started or created


def test_check_the_demo_site_is_valid() -> None:
    res = gateway("check", "config/demo-estate.yaml")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("site demo-estate")


def test_drivers_lists_the_mqtt_drivers() -> None:
    res = gateway("drivers")
    assert res.returncode == 0
    available = {
        line.split()[0]
        for line in res.stdout.splitlines()
        if line.strip() and "unavailable:" not in line
    }
    assert {"mqtt", "mqtt_uplink", "modbus"} <= available


@pytest.mark.slow
def test_demo_runs_the_simulated_estate_and_stores_its_history(tmp_path: Path) -> None:
    res = gateway("demo", "--duration", "6", "--data-dir", str(tmp_path), timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    con = sqlite3.connect(tmp_path / "timeseries.db")
    names = {n for (n,) in con.execute("SELECT name FROM points")}
    con.close()
    assert {"tx1.winding_temp_a", "pm1.power_factor", "pump1.outlet_pressure"} <= names
    assert {"power_room.temperature", "control_room.humidity"} <= names
    # the power room and pump room come over Modbus from the physics estate
    assert {"tx1.winding_temp_max", "pm1.daily_energy", "tank1.level_percent"} <= names
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["drivers"]["field-sensors"]["state"] == "stopped"
    assert status["devices"]["field-sensors"]["online"] is True
    assert status["devices"]["tx1"]["online"] is True and status["devices"]["pump4"]["online"]
    assert status["figures"]["ts_written"] > 0
    assert "Stopping" in res.stdout or "正在停止" in res.stdout
    shown = gateway("status", "--data-dir", str(tmp_path))
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["drivers"]["uplink"]["state"] == "stopped"


def test_status_without_a_running_gateway_says_so(tmp_path: Path) -> None:
    res = gateway("status", "--data-dir", str(tmp_path))
    assert res.returncode == 1
    assert "status.json" in res.stderr


def test_alarm_report_reads_the_store_in_the_site_language(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\nsite: {id: a, locale: en}\ndata_dir: var\n")
    res = gateway("alarm-report", str(site), "--days", "7")
    assert res.returncode == 0, res.stderr
    assert "EEMUA 191" in res.stdout and "flood" in res.stdout
    res = gateway("alarm-report", str(site), "--locale", "zh-CN")
    assert res.returncode == 0 and "泛滥" in res.stdout
