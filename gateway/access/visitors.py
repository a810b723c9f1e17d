"""Visitor passes: a QR code valid for some hours, optionally for a number of
entries and for some doors only.

The token is ``<qr_prefix><22 random url-safe characters>`` (128 bits): what a
QR reader reads and sends as ``card.presented`` (``format: qr``). Only its
keyed hash is stored, like a card's, so the token exists in exactly one place
after :func:`issue_pass` returns: the visitor's phone (or the printed slip).
Losing it means issuing a new pass.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Sequence

import segno

from gateway.access.config import AccessConfig
from gateway.access.credentials import Credential, CredentialError, CredentialStore
from gateway.clock import Clock

__all__ = ["VisitorPassError", "issue_pass", "qr_svg"]

_HOUR_NS = 3_600_000_000_000


class VisitorPassError(CredentialError):
    """A pass that cannot be issued (hours, uses or doors out of range)."""


async def issue_pass(
    store: CredentialStore,
    cfg: AccessConfig,
    clock: Clock,
    *,
    holder: str,
    host: str,
    hours: float | None = None,
    uses: int | None = None,
    doors: Sequence[str] | None = None,
) -> tuple[Credential, str]:
    """Store a visitor pass and return it with its token (shown this once).

    ``hours`` defaults to ``cfg.visitors.default_hours``; ``uses`` counts
    entries (None: unlimited within the hours); ``doors`` (globs) narrows the
    visitor group's doors. ``host`` is who invited the visitor (a unit or a
    name), kept in ``data``.
    """
    hours = cfg.visitors.default_hours if hours is None else hours
    if not 0 < hours <= 24 * 31:
        raise VisitorPassError(f"hours must be more than 0 and at most {24 * 31}, got {hours}")
    if uses is not None and uses < 1:
        raise VisitorPassError(f"uses must be at least 1 (or none for unlimited), got {uses}")
    if doors is not None and not all(isinstance(d, str) and d for d in doors):
        raise VisitorPassError("doors must be door ids or globs")
    now = clock.time_ns()
    token = cfg.visitors.qr_prefix + secrets.token_urlsafe(16)
    day = clock.now().strftime("%Y%m%d")
    data: dict[str, object] = {"host": host}
    if doors:
        data["doors"] = list(doors)
    cred = store.make(
        id=f"V-{day}-{secrets.token_hex(4)}",
        kind="visitor",
        holder=holder,
        group=cfg.visitors.group,
        qr=token,
        valid_from=now,
        valid_until=now + round(hours * _HOUR_NS),
        uses_left=uses,
        data=data,
    )
    await store.upsert([cred])
    return store.get(cred.id) or cred, token


def qr_svg(token: str, *, scale: int = 4) -> str:
    """The token as a QR code, an SVG document (same token, same SVG)."""
    qr = segno.make(token, error="m", micro=False)
    buf = io.BytesIO()
    qr.save(buf, kind="svg", scale=scale, xmldecl=False, svgns=True, title="visitor pass")
    return buf.getvalue().decode("utf-8")
