"""``gateway access ...`` on a temporary site with a gate (no gateway running).

The commands run in-process through typer's CliRunner; afterwards the event
store is opened and read directly: what was imported (or, with a bad row,
that nothing was), that a visitor's token is not stored, and the audit trail.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner, Result

from gateway.access.cards import CardHasher, load_access_key
from gateway.access.credentials import Credential, CredentialStore
from gateway.api.audit import AuditLog, AuditRecord
from gateway.cli import app
from gateway.clock import SystemClock
from gateway.i18n import t
from gateway.storage.eventstore import EventStore
from gateway.storage.tables import access_credentials, audit

T = TypeVar("T")
HEADER = (
    "id,kind,holder,group,card,card_format,plate,valid_from,valid_until,uses_left,"
    "blacklisted,disabled,certifications,phone,unit,note"
)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    doc = {
        "version": 1,
        "site": {"id": "cliaccess", "timezone": "Europe/London"},
        "data_dir": "var",
        "devices": [
            {"id": "gate1", "kind": "gate", "name": "Gate"},
            {"id": "rdr1", "kind": "card_reader"},
        ],
        "access": {
            "areas": [{"id": "estate"}],
            "doors": [
                {
                    "id": "gate1",
                    "area": "estate",
                    "readers": [{"device": "rdr1", "direction": "in"}],
                    "relay": {"device": "rdr1"},
                }
            ],
            "groups": {"residents": {"doors": ["*"]}, "visitors": {"doors": ["gate1"]}},
        },
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def gw(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def in_store(site: Path, fn: Callable[[EventStore], Awaitable[T]]) -> T:
    async def main() -> T:
        async with EventStore(f"sqlite+aiosqlite:///{site.parent / 'var' / 'gateway.db'}") as s:
            return await fn(s)

    return asyncio.run(main())


def credentials(site: Path) -> dict[str, Credential]:
    async def load(s: EventStore) -> dict[str, Credential]:
        hasher = CardHasher(load_access_key(site.parent / "var"))
        store = CredentialStore(s, hasher, SystemClock())
        await store.load()
        return {c.id: c for c in store}

    return in_store(site, load)


def trail(site: Path) -> list[AuditRecord]:
    return in_store(site, lambda s: AuditLog(s, SystemClock()).query())


def test_import_refuses_every_bad_line_then_imports(site: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "\n".join(
            [
                HEADER,
                "R-1,resident,Ann,residents,0A0B0C,hex,,,,,false,false,,,,",
                "R-2,alien,Bob,residents,0A0B0D,hex,,,,,false,false,,,,",
                "R-3,resident,Cy,residents,nothex,hex,,,,,false,false,,,,",
            ]
        ),
        encoding="utf-8",
    )
    res = gw("access", "import", site, bad)
    assert res.exit_code == 1, res.output
    assert "line 3" in res.stderr and "line 4" in res.stderr and "line 2" not in res.stderr
    assert credentials(site) == {}  # nothing imported
    (rec,) = trail(site)
    assert (rec.action, rec.outcome, rec.auth) == ("credential.import", "failed", "cli")

    good = tmp_path / "good.csv"
    good.write_text(
        "\n".join(
            [
                HEADER,
                "R-1,resident,Ann,residents,0A0B0C,hex,,,,,false,false,,,,",
                "V-1,vehicle,Bob,residents,,hex,沪A12345,,,,false,false,,,,",
            ]
        ),
        encoding="utf-8",
    )
    res = gw("access", "import", site, good)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == t(
        "accessapi.cli.import.done", "en", created=2, replaced=0, total=2
    )
    creds = credentials(site)
    assert set(creds) == {"R-1", "V-1"} and creds["R-1"].card_uid == "0A0B0C"
    assert gw("access", "import", site, good).stdout.strip().endswith("0 new, 2 replaced.")
    assert gw("access", "import", site, tmp_path / "missing.csv").exit_code == 1


def test_export_with_and_without_uid(site: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(HEADER + "\nR-7,resident,Eve,residents,DEADBEEF,hex,,,,,false,false,,,,\n")
    assert gw("access", "import", site, src).exit_code == 0
    plain = gw("access", "export", site)
    assert plain.exit_code == 0, plain.output
    rows = list(csv.DictReader(io.StringIO(plain.stdout)))
    assert [r["id"] for r in rows] == ["R-7"] and "DEADBEEF" not in plain.stdout
    full = gw("access", "export", site, "--with-uid")
    assert full.exit_code == 0 and "DEADBEEF" in full.stdout
    # The export can be imported again (the round trip keeps the card).
    again = tmp_path / "again.csv"
    again.write_text(full.stdout, encoding="utf-8")
    assert gw("access", "import", site, again).exit_code == 0
    assert credentials(site)["R-7"].card_uid == "DEADBEEF"
    exports = [a for a in trail(site) if a.action == "credential.export"]
    assert [a.detail["with_uid"] for a in exports] == [True, False]


def test_visitor_pass_prints_the_token_once(site: Path, tmp_path: Path) -> None:
    svg = tmp_path / "pass.svg"
    res = gw("access", "pass", site, "--holder", "Visitor", "--host", "Flat 12", "--hours", 4,
             "--uses", 1, "--qr-svg", svg)  # fmt: skip
    assert res.exit_code == 0, res.output
    (token,) = res.stdout.split()
    assert token.startswith("GWV1:") and res.stdout.count(token) == 1
    assert svg.read_text(encoding="utf-8").lstrip().startswith(("<?xml", "<svg"))
    (cred,) = credentials(site).values()
    assert cred.kind == "visitor" and cred.uses_left == 1 and cred.data.get("host") == "Flat 12"
    assert cred.card_hash == CardHasher(load_access_key(site.parent / "var")).hash("qr", token)

    async def rows(s: EventStore) -> list[str]:
        async with s.begin() as conn:
            out = []
            for table in (access_credentials, audit):
                out += [str(tuple(r)) for r in (await conn.execute(select(table))).all()]
            return out

    assert all(token not in r for r in in_store(site, rows))
    (rec,) = trail(site)
    assert (rec.action, rec.target, rec.outcome) == ("visitor.issue", cred.id, "ok")


def test_report_for_a_day(site: Path) -> None:
    res = gw("access", "report", site, "--day", "2026-01-15", "--locale", "en")
    assert res.exit_code == 0, res.output
    assert t("access.report.title", "en", day="2026-01-15", timezone="Europe/London") in res.stdout
    assert "gate1" in res.stdout
    assert gw("access", "report", site, "--day", "15/01/2026").exit_code == 1
