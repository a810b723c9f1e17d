"""Golden cases: tests/config/cases/<name>/site.yaml -> expected.txt.

Each case folder holds site.yaml (plus any files it includes) and optionally
an ``env`` file of KEY=VALUE lines, which is the whole environment of the
run. expected.txt is what ``gateway check`` prints, then ``# exit N``.

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/config   # rewrite them; review the diff by eye
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.config.check import run_check
from gateway.registry import DriverRegistry

CASES = Path(__file__).parent / "cases"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "site.yaml").is_file())

REQUIRED = {
    "unknown_key",
    "wrong_type",
    "bad_enum",
    "missing_include",
    "include_cycle",
    "undefined_env_var",
    "env_secret_not_leaked",
    "duplicate_device_id",
    "duplicate_driver_id",
    "rule_unknown_point",
    "driver_unknown_device",
    "bad_timezone",
    "missing_version",
    "future_version",
    "unknown_driver_type",
    "yaml_syntax_error",
    "duplicate_yaml_key",
    "several_errors",
    "valid",
}


def read_env(case: Path) -> dict[str, str]:
    env_file = case / "env"
    if not env_file.exists():
        return {}
    env: dict[str, str] = {}
    for line in env_file.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value
    return env


def test_every_required_case_exists() -> None:
    assert set(NAMES) >= REQUIRED


@pytest.mark.parametrize("name", NAMES)
def test_golden(name: str, registry: DriverRegistry) -> None:
    case = CASES / name
    env = read_env(case)
    code, text = run_check(case / "site.yaml", registry, env)
    actual = f"{text}\n# exit {code}\n"
    expected_file = case / "expected.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        expected_file.write_text(actual, encoding="utf-8")
    else:
        assert expected_file.exists(), f"no expected.txt: run UPDATE_GOLDEN=1 pytest {__file__}"
        assert actual == expected_file.read_text(encoding="utf-8")
    # No value from the environment is ever printed, whatever the case.
    for key, value in env.items():
        if len(value) >= 4:
            assert value not in text, f"${{{key}}} leaked into the output"
    assert (code == 0) == (name == "valid")
