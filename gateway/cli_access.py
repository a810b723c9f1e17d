"""``gateway access ...``: credentials, visitor passes and the daily report from the shell.

Like ``gateway user``, the commands open the site's event store directly
(they work without the gateway running, and beside it: SQLite in WAL mode
takes a second writer) and write an audit record for every change (auth
``cli``). Card values are hashed with the site's access key
(``<data_dir>/access.key``), so the CLI must run on the gateway's data.

A running gateway keeps its credentials in memory; it looks for changes made
by another process every ``access.reload_s`` (10 s) and loads them, so
changes made here reach its decisions within that time (changes made
through the API apply at once).

Exit codes: 0 done; 1 the site file, the event store or the input cannot
be used (a CSV with bad rows: every bad line is printed, nothing imported).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from gateway.cli_site import CliRefused, os_user, run_on_site
from gateway.clock import SystemClock
from gateway.i18n import t

if TYPE_CHECKING:  # imported where used: `gateway check` should not pay for SQLAlchemy
    from gateway.access.credentials import CredentialStore
    from gateway.api.audit import AuditLog, Outcome
    from gateway.clock import Clock
    from gateway.config.loader import LoadedSite
    from gateway.storage.eventstore import EventStore

__all__ = ["access_app"]

access_app = typer.Typer(help=t("accessapi.cli.help"), no_args_is_help=True, add_completion=False)

SiteArg = Annotated[Path, typer.Argument(help="The site file (YAML).", show_default=False)]


@dataclass
class Desk:
    """What a command works with: the site, its stores and who is at the keyboard."""

    site: LoadedSite
    store: EventStore
    credentials: CredentialStore
    audit: AuditLog
    clock: Clock
    locale: str
    who: str

    async def record(self, action: str, target: str, outcome: Outcome, **detail: Any) -> None:
        who = f"cli:{self.who}"
        await self.audit.record(
            None, action, target, outcome, who, detail, username=who, auth="cli"
        )

    def say(self, key: str, *, err: bool = False, **fields: Any) -> None:
        typer.echo(t(key, self.locale, **fields), err=err)


def _run(site: Path, work: Callable[[Desk], Awaitable[None]]) -> None:
    """Load the site, open its store and credentials, run ``work``; failures -> exit 1."""
    from gateway.access.cards import CardHasher, load_access_key
    from gateway.access.credentials import CredentialStore
    from gateway.api.audit import AuditLog

    async def on_site(loaded: LoadedSite, store: EventStore, clock: SystemClock) -> None:
        locale = loaded.config.site.locale
        try:
            hasher = CardHasher(load_access_key(loaded.data_dir))
        except ValueError as e:  # an unreadable or short key file
            raise CliRefused(t("accessapi.cli.error.key", locale, reason=e)) from e
        creds = CredentialStore(store, hasher, clock)
        await creds.load()
        await work(Desk(loaded, store, creds, AuditLog(store, clock), clock, locale, os_user()))

    run_on_site(
        site,
        on_site,
        site_error="accessapi.cli.error.site",
        store_error="accessapi.cli.error.store",
        refused_exit=1,
    )


@access_app.command("import")
def import_csv(
    site: SiteArg,
    file: Annotated[Path, typer.Argument(help="CSV file (UTF-8), the export's columns.")],
) -> None:
    """Import credentials from CSV: every row, or none if any row is bad."""
    from gateway.access.credentials import CredentialError
    from gateway.access.csvio import CsvError, parse_csv

    async def work(d: Desk) -> None:
        try:
            text = await asyncio.to_thread(file.read_text, encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise CliRefused(t("accessapi.cli.error.read", d.locale, file=file, reason=e)) from e
        tz = d.site.config.site.timezone
        try:
            creds = parse_csv(text, d.credentials.hasher, d.clock, timezone=tz)
        except CsvError as e:
            lines = sorted({p.line for p in e.problems})
            await d.record("credential.import", str(file), "failed", reason="bad_rows", lines=lines)
            d.say("accessapi.cli.import.bad", err=True, file=file)
            for p in e.problems:
                message = f"{p.column}: {p.message}" if p.column else p.message
                d.say("accessapi.cli.import.line", err=True, line=p.line, message=message)
            raise typer.Exit(1) from None
        replaced = sum(1 for c in creds if d.credentials.get(c.id) is not None)
        try:
            await d.credentials.upsert(creds)
        except CredentialError as e:
            await d.record("credential.import", str(file), "failed", reason=str(e))
            raise CliRefused(t("accessapi.cli.import.refused", d.locale, reason=e)) from e
        created = len(creds) - replaced
        await d.record("credential.import", str(file), "ok", created=created, replaced=replaced)
        d.say("accessapi.cli.import.done", created=created, replaced=replaced, total=len(creds))
        d.say("accessapi.cli.restart_note", err=True)

    _run(site, work)


@access_app.command("export")
def export(
    site: SiteArg,
    with_uid: Annotated[
        bool, typer.Option("--with-uid", help="Include card UIDs (keep the file safe).")
    ] = False,
) -> None:
    """Write every credential as CSV to stdout (card UIDs only with --with-uid)."""
    from gateway.access.csvio import export_csv

    async def work(d: Desk) -> None:
        creds = sorted(d.credentials, key=lambda c: c.id)  # loaded at start: every one
        await d.record("credential.export", "", "ok", with_uid=with_uid, count=len(creds))
        tz = d.site.config.site.timezone
        sys.stdout.write(export_csv(creds, with_uid=with_uid, timezone=tz))
        sys.stdout.flush()

    _run(site, work)


@access_app.command("pass")
def visitor_pass(
    site: SiteArg,
    holder: Annotated[str, typer.Option(help="The visitor's name.", show_default=False)],
    host: Annotated[str, typer.Option(help="Whom they visit.", show_default=False)],
    hours: Annotated[
        float | None, typer.Option(help="Valid for (default: the site's).", min=0.01)
    ] = None,
    uses: Annotated[
        int | None, typer.Option(help="Passages allowed (default: any).", min=1)
    ] = None,
    qr_svg_file: Annotated[
        Path | None, typer.Option("--qr-svg", help="Also write the QR code as SVG here.")
    ] = None,
) -> None:
    """Issue a visitor pass and print its token (once: only a hash is kept)."""
    from gateway.access.credentials import CredentialError
    from gateway.access.visitors import issue_pass, qr_svg
    from gateway.model import to_datetime

    async def work(d: Desk) -> None:
        cfg = d.site.config.access
        h = hours if hours is not None else cfg.visitors.default_hours
        detail = {"holder": holder, "host": host, "hours": h, "uses": uses}
        try:
            cred, token = await issue_pass(
                d.credentials, cfg, d.clock, holder=holder, host=host, hours=h, uses=uses
            )
        except CredentialError as e:
            await d.record("visitor.issue", "", "failed", reason=str(e), **detail)
            raise CliRefused(t("accessapi.cli.pass.refused", d.locale, reason=e)) from e
        await d.record("visitor.issue", cred.id, "ok", **detail)
        tz = ZoneInfo(d.site.config.site.timezone)
        until = to_datetime(cred.valid_until).astimezone(tz) if cred.valid_until else None
        d.say(
            "accessapi.cli.pass.issued",
            err=True,
            id=cred.id,
            until=until.strftime("%Y-%m-%d %H:%M") if until else "-",
        )
        typer.echo(token)
        if qr_svg_file is not None:
            await asyncio.to_thread(qr_svg_file.write_text, qr_svg(token), encoding="utf-8")
            d.say("accessapi.cli.pass.svg", err=True, file=qr_svg_file)
        d.say("accessapi.cli.restart_note", err=True)

    _run(site, work)


@access_app.command("report")
def report(
    site: SiteArg,
    day: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD in the site's time zone (default: today).")
    ] = None,
    locale: Annotated[str | None, typer.Option(help="zh-CN or en (default: the site's).")] = None,
) -> None:
    """The daily report: entries and exits per door, denials, who is inside."""
    from gateway.access.report import daily_report, render_text

    async def work(d: Desk) -> None:
        tz = d.site.config.site.timezone
        try:
            when = (
                date.fromisoformat(day)
                if day
                else datetime.fromtimestamp(d.clock.time_ns() / 1e9, ZoneInfo(tz)).date()
            )
        except ValueError as e:
            raise CliRefused(t("accessapi.cli.error.day", d.locale, day=day)) from e
        rep = await daily_report(d.store, d.site.config.access, when, tz)
        typer.echo(render_text(rep, locale or d.locale), nl=False)

    _run(site, work)
