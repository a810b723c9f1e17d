"""Upgrading old site files: an ordered chain of migrations.

``MIGRATIONS[n]`` turns the raw mapping of a version-``n`` file into a
version-``n+1`` one (it may change the mapping in place and return it).
The loader applies them one after another up to
:data:`gateway.config.site.CURRENT_VERSION` before validation, so a site
written for an older gateway keeps working unchanged on disk.

To change the file format: bump ``CURRENT_VERSION``, register
``MIGRATIONS[old]``, and add a golden case with an old file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.config import site

__all__ = ["MIGRATIONS", "MigrationError", "current_version", "migrate"]

Migration = Callable[[dict[str, Any]], dict[str, Any]]

MIGRATIONS: dict[int, Migration] = {}
"""From version N to N+1. Version 1 is the first format, so none yet."""


class MigrationError(Exception):
    """The file's version cannot be brought up to the current one."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def current_version() -> int:
    """The format version this gateway reads (read at call time, for tests)."""
    return site.CURRENT_VERSION


def migrate(data: dict[str, Any], version: int) -> dict[str, Any]:
    """Apply the chain from ``version`` up to the current version.

    ``version`` must not be newer than the current version. Raises
    :class:`MigrationError` when a step is missing or fails.
    """
    target = current_version()
    if version > target:
        raise MigrationError(
            f"this file was written for a newer gateway (format version {version}; "
            f"this gateway reads up to version {target})",
            "upgrade the gateway, or use a site file written for this version",
        )
    while version < target:
        step = MIGRATIONS.get(version)
        if step is None:
            oldest = min(MIGRATIONS, default=target)
            raise MigrationError(
                f"format version {version} is too old to migrate "
                f"(the oldest this gateway reads is {oldest})",
                f"rewrite the file for version {target}; see docs/config.md",
            )
        try:
            data = step(data)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise MigrationError(
                f"cannot migrate from version {version} to {version + 1}: {type(e).__name__}: {e}",
                f"fix the file by hand for version {version + 1}",
            ) from e
        version += 1
        data["version"] = version
    return data
