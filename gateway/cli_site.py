"""What the CLI commands that work on a site's stored data share: load the
site file, open its event store, run the work, and turn every failure into
a message and an exit code (never a traceback).

Used by ``gateway user|token`` (gateway/cli_users.py) and ``gateway access``
(gateway/cli_access.py).
"""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gateway.clock import SystemClock
from gateway.i18n import t

if TYPE_CHECKING:
    from gateway.config.loader import LoadedSite
    from gateway.storage.eventstore import EventStore

__all__ = ["CliRefused", "os_user", "run_on_site"]


class CliRefused(Exception):
    """A refusal the user can fix; printed as is, exit code ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment or passwd
        return f"uid{os.getuid()}"


def run_on_site(
    site: Path,
    work: Callable[[LoadedSite, EventStore, SystemClock], Awaitable[None]],
    *,
    site_error: str,
    store_error: str,
    refused_exit: int | None = None,
) -> None:
    """Load ``site``, open its event store and run ``work`` with them.

    A bad site file prints ``site_error`` (en) and every problem, exit 1; an
    unusable event store prints ``store_error`` (``{reason}``), exit 1; a
    :class:`CliRefused` prints its message and exits with ``refused_exit``,
    or with its own code when that is None.
    """
    from gateway.config.loader import load_site
    from gateway.config.problems import ConfigError, format_problems
    from gateway.storage.eventstore import EventStore, EventStoreError

    try:
        loaded = load_site(site)
    except ConfigError as e:
        typer.echo(t(site_error, "en"), err=True)
        typer.echo(format_problems(e.problems, site.parent), err=True)
        raise typer.Exit(1) from None
    cfg = loaded.config

    async def main() -> None:
        loaded.data_dir.mkdir(parents=True, exist_ok=True)
        async with EventStore(loaded.resolve_url(cfg.storage.event_store.url)) as store:
            await work(loaded, store, SystemClock())

    try:
        asyncio.run(main())
    except CliRefused as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(e.code if refused_exit is None else refused_exit) from None
    except EventStoreError as e:
        typer.echo(t(store_error, cfg.site.locale, reason=e), err=True)
        raise typer.Exit(1) from None
