"""The ``gateway`` command: run, check, demo, drivers, status, alarm-report, user, token."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gateway.cli_access import access_app
from gateway.cli_users import token_app, user_app
from gateway.i18n import t
from gateway.loop import run as run_loop

__all__ = ["app"]

app = typer.Typer(
    help="Estate gateway: security and facilities monitoring for one site.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(access_app, name="access")

SiteArg = Annotated[Path, typer.Argument(help="The site file (YAML).", show_default=False)]


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def check(site: SiteArg) -> None:
    """Validate a site file: every error with file:line:column, or a summary."""
    from gateway.config.check import run_check

    code, text = run_check(site)
    typer.echo(text, err=code != 0)  # plain lines: editors and grep parse file:line:col
    raise typer.Exit(code)


@app.command()
def run(
    site: SiteArg,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the gateway for a site until SIGTERM or Ctrl-C."""
    from gateway.config.loader import load_site
    from gateway.config.problems import ConfigError, format_problems
    from gateway.registry import load_registry
    from gateway.runtime import Gateway, GatewayError

    _setup_logging(log_level)
    registry = load_registry()
    try:
        loaded = load_site(site, registry)
    except ConfigError as e:
        typer.echo(t("run.config_error", "en"), err=True)
        typer.echo(format_problems(e.problems, site.parent), err=True)
        raise typer.Exit(1) from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        gw = Gateway(loaded, registry)
        logging.getLogger("gateway").info(
            t("run.started", loaded.config.site.locale, site=loaded.config.site.id)
        )
        await gw.run(stop)

    try:
        run_loop(main())
    except GatewayError as e:
        err_console.print(f"gateway: {e}", markup=False)
        raise typer.Exit(1) from None


@app.command()
def demo(
    site: Annotated[Path, typer.Option(help="Site file of the simulated estate.")] = Path(
        "config/demo-estate.yaml"
    ),
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its data.")] = Path(
        "var/demo"
    ),
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
    fault_every: Annotated[
        float, typer.Option(help="Inject a fault every this many seconds (0: never).")
    ] = 300.0,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the control-room page in a browser.")
    ] = True,
) -> None:
    """Run the gateway on a simulated estate (private Mosquitto, embedded storage)."""
    from gateway.config.problems import ConfigError, format_problems
    from gateway.demo import run_demo

    _setup_logging(log_level)
    try:
        code = run_loop(
            run_demo(
                site,
                data_dir,
                duration,
                console,
                fault_every_s=fault_every,
                open_browser=open_browser,
            )
        )
    except ConfigError as e:
        typer.echo(format_problems(e.problems, site.parent), err=True)
        code = 1
    raise typer.Exit(code)


@app.command()
def drivers() -> None:
    """List the installed driver types, and those missing an optional dependency."""
    from gateway.registry import load_registry

    reg = load_registry()
    for name, cls in sorted(reg.drivers.items()):
        doc = (cls.__doc__ or "").strip().splitlines()
        console.print(f"{name:<14} {doc[0] if doc else ''}", markup=False)
    for name, why in sorted(reg.unavailable.items()):
        console.print(f"{name:<14} unavailable: {why}", markup=False)


@app.command()
def status(
    data_dir: Annotated[Path, typer.Option(help="The gateway's data directory.")] = Path("var"),
) -> None:
    """Print the running gateway's health and figures (from <data-dir>/status.json)."""
    from gateway.metrics import read_status

    path = data_dir / "status.json"
    if not path.exists():
        err_console.print(t("status.missing", "en", path=path), markup=False)
        raise typer.Exit(1)
    console.print_json(json.dumps(read_status(path), ensure_ascii=False))


@app.command("alarm-report")
def alarm_report(
    site: SiteArg,
    days: Annotated[float, typer.Option(help="How many days back from now.", min=0.01)] = 30,
    locale: Annotated[str | None, typer.Option(help="zh-CN or en (default: the site's).")] = None,
) -> None:
    """EEMUA 191 alarm figures from the event store: rate per 10 min, flood
    share, bad actors, chattering and stale alarms, priority distribution."""
    from gateway.alarms import compute_kpis, render_text
    from gateway.clock import SystemClock
    from gateway.config.loader import load_site
    from gateway.config.problems import ConfigError, format_problems
    from gateway.storage.eventstore import EventStore, EventStoreError

    try:
        loaded = load_site(site)
    except ConfigError as e:
        typer.echo(format_problems(e.problems, site.parent), err=True)
        raise typer.Exit(1) from None
    cfg = loaded.config

    async def report() -> str:
        now = SystemClock().time_ns()
        async with EventStore(loaded.resolve_url(cfg.storage.event_store.url)) as store:
            figures = await compute_kpis(
                store, now - int(days * 86_400e9), now, now_ns=now, config=cfg.alarms
            )
        return render_text(figures, locale or cfg.site.locale, timezone=cfg.site.timezone)

    try:
        typer.echo(asyncio.run(report()))
    except EventStoreError as e:
        err_console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
