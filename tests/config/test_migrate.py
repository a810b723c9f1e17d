"""The migration chain, with a version-0 format registered for the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import migrate as migrate_mod
from gateway.config import site as site_mod
from gateway.config.check import run_check
from gateway.config.loader import ConfigError, load_site
from gateway.config.migrate import MIGRATIONS, MigrationError, migrate
from gateway.registry import DriverRegistry


def v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 0 had 'site_id:' at the top instead of a 'site:' block."""
    data["site"] = {"id": data.pop("site_id")}
    return data


@pytest.fixture
def with_v0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MIGRATIONS, 0, v0_to_v1)


def test_no_migration_needed() -> None:
    assert migrate({"version": 1, "x": 1}, 1) == {"version": 1, "x": 1}


def test_chain_runs_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(site_mod, "CURRENT_VERSION", 3)
    monkeypatch.setitem(MIGRATIONS, 1, lambda d: {**d, "steps": [*d.get("steps", []), 1]})
    monkeypatch.setitem(MIGRATIONS, 2, lambda d: {**d, "steps": [*d["steps"], 2]})
    assert migrate_mod.current_version() == 3
    assert migrate({"version": 1}, 1) == {"version": 3, "steps": [1, 2]}


def test_newer_version_is_refused() -> None:
    with pytest.raises(MigrationError, match="written for a newer gateway"):
        migrate({"version": 2}, 2)


def test_version_without_migration_is_too_old() -> None:
    with pytest.raises(MigrationError, match="too old"):
        migrate({"version": 0}, 0)


def test_failing_step_is_reported(with_v0: None) -> None:
    with pytest.raises(MigrationError, match="cannot migrate from version 0 to 1: KeyError"):
        migrate({"version": 0}, 0)


def test_old_file_loads_through_the_chain(
    tmp_path: Path, registry: DriverRegistry, with_v0: None
) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text("version: 0\nsite_id: old-site\n", encoding="utf-8")
    site = load_site(site_file, registry, {})
    assert site.config.version == 1
    assert site.config.site.id == "old-site"
    assert site_file.read_text(encoding="utf-8").startswith("version: 0")  # file untouched


def test_error_after_migration_points_at_nearest_node(
    tmp_path: Path, registry: DriverRegistry, with_v0: None
) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text("version: 0\nsite_id: bad id\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_site(site_file, registry, {})
    (problem,) = e.value.problems
    assert problem.path == "site.id"
    assert problem.line == 1  # the migrated 'site' block has no position: the file's start


def test_check_of_old_file_without_migration(tmp_path: Path, registry: DriverRegistry) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text("version: 0\nsite_id: x\n", encoding="utf-8")
    code, text = run_check(site_file, registry, {})
    assert code == 1
    assert "site.yaml:1:10: version: format version 0 is too old to migrate" in text
