"""Signed, expiring, single-use acknowledgement links ("one tap to acknowledge").

A token is ``base64url(payload) "." base64url(HMAC-SHA256(secret, payload))``
where the payload is the JSON ``{"a": alarm id, "p": person id, "n": nonce,
"e": expiry (UTC seconds)}`` and the HMAC covers the encoded payload exactly
as sent. Every issued nonce is stored in the ``ack_tokens`` table; redeeming
marks it used in one conditional UPDATE, so two taps racing each other
acknowledge once: the second gets :class:`LinkUsed`, with when and from where
the first came.

The secret comes from ``GATEWAY_ACK_SECRET`` or, when that is not set, from
``<data_dir>/ack-secret`` (created once with 32 random bytes, mode 0600), so
links survive a restart. Changing the secret invalidates every link out there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.clock import Clock
from gateway.notify.oncall_config import OnCallConfig
from gateway.storage.eventstore import EventStore
from gateway.storage.tables import ack_tokens

__all__ = [
    "ENV_SECRET",
    "SECRET_FILE",
    "AckLinks",
    "AckSecretError",
    "Claims",
    "IssuedLink",
    "LinkError",
    "LinkExpired",
    "LinkInvalid",
    "LinkUsed",
    "load_secret",
]

log = logging.getLogger(__name__)

ENV_SECRET = "GATEWAY_ACK_SECRET"
SECRET_FILE = "ack-secret"
MIN_SECRET_BYTES = 32
_NS = 1_000_000_000
_B64 = re.compile(r"^[A-Za-z0-9_-]+$")
_MAX_TOKEN = 2048


class AckSecretError(Exception):
    """The signing secret cannot be loaded or is too weak."""


class LinkError(Exception):
    """Base of link failures. ``claims`` is set once the signature is known good."""

    def __init__(self, message: str, claims: Claims | None = None) -> None:
        super().__init__(message)
        self.claims = claims


class LinkInvalid(LinkError):
    """Garbled, tampered with, signed with another secret, or never issued here."""


class LinkExpired(LinkError):
    """The link's lifetime is over."""


class LinkUsed(LinkError):
    """The link was redeemed before (``used_ts`` UTC ns, ``used_from``)."""

    def __init__(self, claims: Claims, used_ts: int, used_from: str) -> None:
        super().__init__(f"link already used at {used_ts} from {used_from or 'unknown'}", claims)
        self.used_ts = used_ts
        self.used_from = used_from


@dataclass(frozen=True, slots=True)
class Claims:
    alarm_id: str
    person: str
    nonce: str
    expires_ts: int  # UTC ns


@dataclass(frozen=True, slots=True)
class IssuedLink:
    token: str
    url: str
    claims: Claims
    issued_ts: int  # UTC ns


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    if not _B64.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_secret(data_dir: str | Path, environ: Mapping[str, str] | None = None) -> bytes:
    """The link signing secret: ``GATEWAY_ACK_SECRET``, else ``<data_dir>/ack-secret``
    (generated on first use, mode 0600). Raises :class:`AckSecretError`."""
    env = os.environ if environ is None else environ
    value = env.get(ENV_SECRET)
    if value:
        raw = value.encode("utf-8")
        if len(raw) < MIN_SECRET_BYTES:
            raise AckSecretError(
                f"{ENV_SECRET} must be at least {MIN_SECRET_BYTES} characters "
                "(e.g. the output of 'openssl rand -hex 32')"
            )
        return raw
    path = Path(data_dir) / SECRET_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    except OSError as exc:
        raise AckSecretError(f"cannot create the link secret {path}: {exc}") from exc
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_hex(MIN_SECRET_BYTES) + "\n")
    log.info("generated a new acknowledgement link secret in %s", path)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AckSecretError(f"cannot read the link secret {path}: {exc}") from exc
    if mode & 0o077:
        log.warning("link secret %s is readable by others; run 'chmod 600 %s'", path, path)
    raw = text.encode("ascii")
    if len(raw) < MIN_SECRET_BYTES:
        raise AckSecretError(
            f"link secret {path} is shorter than {MIN_SECRET_BYTES} characters; "
            "delete it to have a new one generated"
        )
    return raw


class AckLinks:
    """Issue and redeem acknowledgement links backed by the ``ack_tokens`` table."""

    def __init__(
        self,
        store: EventStore,
        secret: bytes,
        clock: Clock,
        *,
        public_url: str = "http://127.0.0.1:8080",
        ttl_s: float = 24 * 3600,
        path: str = "/ack",
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise AckSecretError(f"the link secret must be at least {MIN_SECRET_BYTES} bytes")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._store = store
        self._secret = secret
        self._clock = clock
        self.base = public_url.rstrip("/") + "/" + path.strip("/")
        self.ttl_s = ttl_s

    @classmethod
    def from_config(
        cls, store: EventStore, config: OnCallConfig, secret: bytes, clock: Clock
    ) -> AckLinks:
        """Links with ``oncall.public_url`` and ``oncall.ack_link_ttl_h``."""
        return cls(
            store, secret, clock, public_url=config.public_url, ttl_s=config.ack_link_ttl_h * 3600
        )

    def _sign(self, payload: str) -> str:
        return _b64e(hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest())

    def url_for(self, token: str) -> str:
        return f"{self.base}/{token}"

    def mint(self, alarm_id: str, person: str, now_ns: int) -> IssuedLink:
        """A new link (no I/O): store it with :meth:`store_in` before handing it out."""
        expires_s = math.ceil(now_ns / _NS + self.ttl_s)
        nonce = secrets.token_urlsafe(16)
        body = {"a": alarm_id, "p": person, "n": nonce, "e": expires_s}
        payload = _b64e(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
        token = f"{payload}.{self._sign(payload)}"
        claims = Claims(alarm_id, person, nonce, expires_s * _NS)
        return IssuedLink(token, self.url_for(token), claims, now_ns)

    async def store_in(self, conn: AsyncConnection, links: Sequence[IssuedLink]) -> None:
        """Record minted links inside the caller's transaction."""
        if not links:
            return
        rows = [
            {
                "nonce": link.claims.nonce,
                "alarm_id": link.claims.alarm_id,
                "person": link.claims.person,
                "issued_ts": link.issued_ts,
                "expires_ts": link.claims.expires_ts,
                "used_ts": None,
                "used_from": None,
            }
            for link in links
        ]
        await conn.execute(insert(ack_tokens), rows)

    async def issue(self, alarm_id: str, person: str, now_ns: int | None = None) -> str:
        """Mint and store a link; returns its URL."""
        link = self.mint(alarm_id, person, self._clock.time_ns() if now_ns is None else now_ns)
        async with self._store.begin() as conn:
            await self.store_in(conn, [link])
        return link.url

    def verify(self, token: str, now_ns: int | None = None, *, check_expiry: bool = True) -> Claims:
        """Signature and expiry only (no database). Raises LinkInvalid / LinkExpired."""
        if len(token) > _MAX_TOKEN or token.count(".") != 1:
            raise LinkInvalid("malformed link")
        payload, signature = token.split(".")
        if not hmac.compare_digest(self._sign(payload), signature):
            raise LinkInvalid("bad link signature")
        try:
            body = json.loads(_b64d(payload))
        except (ValueError, binascii.Error) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise LinkInvalid("garbled link payload") from exc
        if not (
            isinstance(body, dict)
            and isinstance(body.get("a"), str)
            and isinstance(body.get("p"), str)
            and isinstance(body.get("n"), str)
            and type(body.get("e")) is int
        ):
            raise LinkInvalid("garbled link payload")
        claims = Claims(body["a"], body["p"], body["n"], body["e"] * _NS)
        now = self._clock.time_ns() if now_ns is None else now_ns
        if check_expiry and now >= claims.expires_ts:
            raise LinkExpired("link expired", claims)
        return claims

    async def inspect(self, token: str) -> Claims:
        """Everything :meth:`redeem` checks, without using the link (for a GET page)."""
        claims = self.verify(token)
        async with self._store.begin() as conn:
            row = (
                await conn.execute(select(ack_tokens).where(ack_tokens.c.nonce == claims.nonce))
            ).first()
        self._check_row(claims, row)
        return claims

    async def redeem(self, token: str, origin: str) -> tuple[str, str]:
        """Use a link once: returns (alarm_id, person). Raises LinkInvalid,
        LinkExpired or LinkUsed; EventStoreUnavailable when the store is down."""
        claims = self.verify(token)
        now = self._clock.time_ns()
        async with self._store.begin() as conn:
            result = await conn.execute(
                update(ack_tokens)
                .where(
                    ack_tokens.c.nonce == claims.nonce,
                    ack_tokens.c.alarm_id == claims.alarm_id,
                    ack_tokens.c.person == claims.person,
                    ack_tokens.c.used_ts.is_(None),
                )
                .values(used_ts=now, used_from=origin[:255])
            )
            if result.rowcount == 1:
                return claims.alarm_id, claims.person
            row = (
                await conn.execute(select(ack_tokens).where(ack_tokens.c.nonce == claims.nonce))
            ).first()
        self._check_row(claims, row)
        # Matching, unused, yet not updated: released by someone else meanwhile.
        raise LinkInvalid("link could not be redeemed; try again", claims)

    async def release(self, token: str) -> None:
        """Make a redeemed link usable again: the acknowledgement it carried
        could not be made (store down), so the person may tap again."""
        claims = self.verify(token, check_expiry=False)
        async with self._store.begin() as conn:
            await conn.execute(
                update(ack_tokens)
                .where(ack_tokens.c.nonce == claims.nonce)
                .values(used_ts=None, used_from=None)
            )

    async def purge(self, expired_before_ns: int) -> int:
        """Delete links that expired before ``expired_before_ns``; returns how many."""
        async with self._store.begin() as conn:
            result = await conn.execute(
                delete(ack_tokens).where(ack_tokens.c.expires_ts < expired_before_ns)
            )
        return int(result.rowcount)

    @staticmethod
    def _check_row(claims: Claims, row: Row[Any] | None) -> None:
        if row is None:
            raise LinkInvalid("link not issued by this gateway", claims)
        if row.alarm_id != claims.alarm_id or row.person != claims.person:
            raise LinkInvalid("link does not match its record", claims)
        if row.used_ts is not None:
            raise LinkUsed(claims, int(row.used_ts), row.used_from or "")
