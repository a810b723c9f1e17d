"""load_site and run_check: LoadedSite, secrets, unreadable files, what each bad input does."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.check import run_check
from gateway.config.loader import ConfigError, LoadedSite, load_site
from gateway.config.problems import Problem, UnreadableConfigError, format_problems
from gateway.driver import PointSpec
from gateway.registry import DriverRegistry

SITE = """\
version: 1
site: {id: s, name: "${SITE_NAME}", timezone: Europe/Berlin}
data_dir: state
devices:
  - id: tx1
    kind: transformer
    points:
      temp: {unit: "°C", deadband: 0.5, heartbeat_s: 60, description: winding}
  - id: gate1
    kind: gate
drivers:
  - type: testdev
    id: field
    device_ids: [tx1]
    point_names: [temp, load]
  - type: testdev
    id: spare
    enabled: false
    device_ids: [gate1]
    point_names: [open]
  - type: testout
    id: up
    broker: {host: "${MQTT_HOST}", port: "${MQTT_PORT:-1883}"}
    password: ${MQTT_PASSWORD}
rules:
  - {id: hot, point: tx1.temp, high: 100}
  - {id: gate, point: gate1.open, high: 1}  # its driver is disabled: still a known point
"""
ENV = {"SITE_NAME": "Secret Estate", "MQTT_HOST": "broker", "MQTT_PASSWORD": "hunter22"}


@pytest.fixture
def site(tmp_path: Path, registry: DriverRegistry) -> LoadedSite:
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    return load_site(path, registry, ENV)


def test_loaded_site(site: LoadedSite, tmp_path: Path) -> None:
    assert site.path == tmp_path / "site.yaml"
    assert site.base_dir == tmp_path
    assert site.data_dir == tmp_path / "state"
    assert site.device_kinds() == {"tx1": "transformer", "gate1": "gate"}
    up = site.config.drivers[2]
    assert up.broker.port == 1883  # type: ignore[attr-defined]  # "${...:-1883}" became an int
    assert up.password.get_secret_value() == "hunter22"  # type: ignore[attr-defined]
    assert site.from_env == frozenset(
        {"site.name", "drivers[2].broker.host", "drivers[2].password"}
    )


def test_points_catalogue_applies_device_overrides(site: LoadedSite) -> None:
    assert site.points == [
        PointSpec("tx1", "temp", unit="°C", deadband=0.5, heartbeat=60, description="winding"),
        PointSpec("tx1", "load", unit="u"),
    ]  # the disabled driver's points are not in the catalogue


def test_resolve(site: LoadedSite, tmp_path: Path) -> None:
    assert site.resolve("{data_dir}/x.db") == tmp_path / "state/x.db"
    assert site.resolve("sqlite+aiosqlite:///{data_dir}/gateway.db") == (
        f"sqlite+aiosqlite:///{tmp_path}/state/gateway.db"
    )
    assert site.resolve_path("logs/a.txt") == tmp_path / "logs/a.txt"
    assert site.resolve_path("/abs/a.txt") == Path("/abs/a.txt")


def test_absolute_data_dir(tmp_path: Path, registry: DriverRegistry) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("version: 1\nsite: {id: s}\ndata_dir: /srv/gw\n", encoding="utf-8")
    assert load_site(path, registry, {}).data_dir == Path("/srv/gw")


def test_summary_hides_values_from_env(tmp_path: Path, registry: DriverRegistry) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    code, text = run_check(path, registry, ENV)
    assert code == 0
    assert text == (
        'site s "***" (Europe/Berlin): 2 devices, 2 points, '
        "2 drivers (testdev x1, testout x1), 1 disabled, 3 rules; time series -> embedded"
    )


def test_default_env_is_os_environ(
    tmp_path: Path, registry: DriverRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GW_TEST_SITE_ID", "from-env")
    path = tmp_path / "site.yaml"
    path.write_text("version: 1\nsite: {id: '${GW_TEST_SITE_ID}'}\n", encoding="utf-8")
    assert load_site(path, registry).config.site.id == "from-env"


def test_unreadable_file_exit_2(tmp_path: Path, registry: DriverRegistry) -> None:
    code, text = run_check(tmp_path / "nope.yaml", registry, {})
    assert code == 2
    assert text == "nope.yaml: cannot read the site file: No such file or directory\n1 error"
    with pytest.raises(UnreadableConfigError):
        load_site(tmp_path / "nope.yaml", registry, {})
    code, _ = run_check(tmp_path, registry, {})  # a directory
    assert code == 2


def test_not_utf8_exit_2(tmp_path: Path, registry: DriverRegistry) -> None:
    path = tmp_path / "site.yaml"
    path.write_bytes(b"version: 1\nsite: {id: \xff}\n")
    code, text = run_check(path, registry, {})
    assert code == 2 and "cannot read the site file" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "the file must be a mapping"),
        ("version: one\nsite: {id: s}\n", "version: expected a whole number, got the text 'one'"),
        ("version: true\nsite: {id: s}\n", "version: expected a whole number, got true"),
    ],
)
def test_bad_top_level(tmp_path: Path, registry: DriverRegistry, text: str, message: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    code, out = run_check(path, registry, {})
    assert code == 1 and message in out


def test_unset_variable_is_reported_once(tmp_path: Path, registry: DriverRegistry) -> None:
    """The empty string left by an unset ${VAR} is not reported again by validation."""
    path = tmp_path / "site.yaml"
    path.write_text("version: 1\nsite: {id: '${ID}'}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_site(path, registry, {})
    assert [p.message for p in e.value.problems] == ["environment variable 'ID' is not set"]


def test_secret_field_input_never_echoed(tmp_path: Path, registry: DriverRegistry) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "version: 1\nsite: {id: s}\ndrivers:\n"
        "  - {type: testout, id: up, broker: {host: h}, password: 123456789}\n",
        encoding="utf-8",
    )
    code, text = run_check(path, registry, {})
    assert code == 1
    assert "123456789" not in text
    assert "drivers[0].password: expected text, got a secret (not shown)" in text


def test_no_drivers_installed(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "version: 1\nsite: {id: s}\ndrivers:\n  - {type: mqtt, id: m, broker: x}\n",
        encoding="utf-8",
    )
    code, text = run_check(path, DriverRegistry(), {})
    assert code == 1
    assert (
        "drivers[0].type: unknown driver type 'mqtt'\n  hint: installed driver types: none" in text
    )


def test_config_error_str_lists_every_problem() -> None:
    problems = [Problem("b.yaml", 2, 1, "x", "second"), Problem("a.yaml", 9, 3, "", "first", "do")]
    err = ConfigError(problems)
    assert [p.file for p in err.problems] == ["a.yaml", "b.yaml"]
    assert str(err) == "a.yaml:9:3: first\n  hint: do\nb.yaml:2:1: x: second\n2 errors"
    assert format_problems([]) == "0 errors"


def test_short_env_value_is_scrubbed_from_validator_message(
    tmp_path: Path, registry: DriverRegistry
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("version: 1\nsite: {id: s, timezone: '${TZ}'}\n", encoding="utf-8")
    code, text = run_check(path, registry, {"TZ": "ab"})
    assert code == 1
    assert "site.timezone: unknown time zone '***'; use an IANA name" in text
    assert "'ab'" not in text
