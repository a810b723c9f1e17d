"""The generated reference (docs/config.md, docs/site.schema.json) and its drift check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.config.docs import DOCS_DIR, main, render_markdown, render_schema
from gateway.registry import DriverRegistry, load_registry


def test_committed_docs_are_up_to_date() -> None:
    registry = load_registry()
    for name, text in [
        ("config.md", render_markdown(registry)),
        ("site.schema.json", render_schema(registry)),
    ]:
        path = DOCS_DIR / name
        assert path.exists() and path.read_text(encoding="utf-8") == text, (
            f"docs/{name} is out of date: run `python -m gateway.config.docs`"
        )


def test_markdown_covers_site_and_drivers(registry: DriverRegistry) -> None:
    text = render_markdown(registry)
    for needle in [
        "### SiteConfig",
        "### DeviceConfig",
        "### LimitRuleConfig",
        "### InfluxDBSinkConfig",
        "Where: `drivers[]` with `type: testdev`",
        "| `device_ids` | list of text | `[]` | Device ids it reads. |",
        "| `port` | integer (>= 1, <= 65535) | `502` | TCP port of the test device. |",
        "| `broker` | [TestBroker](#testbroker) | required | Where to connect. |",
        "| `password` | secret text or null | `null` | Broker password. |",
        "Where: `drivers[].broker`",
        "Where: `devices[].points.<name>`",
    ]:
        assert needle in text


def test_schema_is_json_with_every_driver(registry: DriverRegistry) -> None:
    schema = json.loads(render_schema(registry))
    assert {"TestDevConfig", "TestOutConfig", "DeviceConfig"} <= set(schema["$defs"])
    assert schema["additionalProperties"] is False
    assert "version" in schema["required"]


def test_write_then_check(
    tmp_path: Path, registry: DriverRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check", "--out", str(tmp_path)], registry) == 1  # nothing written yet
    assert main(["--out", str(tmp_path)], registry) == 0
    assert main(["--check", "--out", str(tmp_path)], registry) == 0
    md = tmp_path / "config.md"
    md.write_text(md.read_text(encoding="utf-8").replace("Device ids", "Devices"), "utf-8")
    capsys.readouterr()
    assert main(["--check", "--out", str(tmp_path)], registry) == 1
    err = capsys.readouterr().err
    assert "-| `device_ids` | list of text | `[]` | Devices it reads. |" in err
    assert "run `python -m gateway.config.docs`" in err
