"""Credentials (cards, plates, QR passes, PINs) and the in-memory index the
decider looks them up in.

The database row is the truth; :class:`CredentialIndex` is a copy in memory so
that a card read is decided without I/O. A credential is found by the keyed
hash of what the reader sent (:class:`~gateway.access.cards.CardHasher`): its
``card_hash`` (card, QR token, PIN, or the plate of a plate-only vehicle) and,
when it has a plate, the hash of that plate too, so a vehicle with a tag and a
plate is one credential found by either. The raw UID is kept (``card_uid``)
only so that card managers can export it; it is never needed to decide.

:class:`CredentialStore` writes through: a change is committed first and the
index updated after, so a failed write never grants a card the database does
not know. Two credentials cannot share a card or a plate
(:class:`CredentialConflict`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import ColumnElement

from gateway.access.cards import (
    CardHasher,
    CardValueError,
    ValueClass,
    canonical_plate,
    canonical_uid,
)
from gateway.clock import Clock
from gateway.storage.eventstore import EventStore
from gateway.storage.tables import access_credentials as t_cred
from gateway.storage.tables import access_presence as t_presence

__all__ = [
    "KINDS",
    "Credential",
    "CredentialConflict",
    "CredentialError",
    "CredentialIndex",
    "CredentialNotFound",
    "CredentialStore",
    "Kind",
    "validate",
]

log = logging.getLogger(__name__)

Kind = Literal["resident", "staff", "vehicle", "visitor"]
KINDS: tuple[str, ...] = get_args(Kind)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_GROUP = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PIN = re.compile(r"^[0-9]{4,12}$")
_BATCH = 2_000  # rows per statement in upsert


class CredentialError(ValueError):
    """A credential that cannot be stored; ``field`` names the bad one when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CredentialNotFound(CredentialError, LookupError):
    """No credential with that id."""


class CredentialConflict(CredentialError):
    """Another credential already holds this card or plate."""


@dataclass(frozen=True, slots=True)
class Credential:
    """One credential: a person's card, a vehicle's tag/plate, a visitor's QR pass.

    ``created_ts``/``updated_ts`` are bookkeeping and take no part in equality.
    """

    id: str
    kind: Kind
    holder: str
    group: str
    card_hash: str | None
    card_uid: str | None
    plate: str | None
    valid_from: int | None
    valid_until: int | None
    uses_left: int | None
    blacklisted: bool = False
    disabled: bool = False
    certifications: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)  # phone, unit, note, host, doors
    created_ts: int = field(default=0, compare=False)
    updated_ts: int = field(default=0, compare=False)


def validate(cred: Credential) -> None:
    """Raise :class:`CredentialError` for a credential the table cannot hold."""
    if not _ID.match(cred.id):
        raise CredentialError(f"id {cred.id!r}: 1-64 letters, digits, '_', '.', ':' or '-'", "id")
    if cred.kind not in KINDS:
        raise CredentialError(
            f"{cred.id}: kind {cred.kind!r} is not one of {', '.join(KINDS)}", "kind"
        )
    if not cred.holder.strip() or len(cred.holder) > 128:
        raise CredentialError(f"{cred.id}: holder must be 1-128 characters", "holder")
    if not _GROUP.match(cred.group):
        raise CredentialError(
            f"{cred.id}: group {cred.group!r}: letters, digits, '_' or '-'", "group"
        )
    if cred.card_hash is None and cred.plate is None:
        raise CredentialError(f"{cred.id}: no card, plate, QR token or PIN", "card")
    if cred.plate is not None and len(cred.plate) > 32:
        raise CredentialError(f"{cred.id}: plate longer than 32 characters", "plate")
    if cred.uses_left is not None and cred.uses_left < 0:
        raise CredentialError(f"{cred.id}: uses_left cannot be negative", "uses_left")
    if (
        cred.valid_from is not None
        and cred.valid_until is not None
        and cred.valid_until <= cred.valid_from
    ):
        raise CredentialError(f"{cred.id}: valid_until is not after valid_from", "valid_until")


class CredentialIndex:
    """Credentials in memory: by id, and by the hashes a reader's value maps to.

    A lookup is one HMAC and two dict accesses. Built from credentials (tests,
    benchmarks) or loaded by :class:`CredentialStore`, whose rows become
    :class:`Credential` objects on first use: building 100k frozen objects
    would double the time a restart takes before the first card is decided.
    """

    def __init__(
        self, hasher: CardHasher, creds: Iterable[Credential] = (), *, clock: Clock | None = None
    ) -> None:
        self.hasher = hasher
        self._clock = clock
        # A loaded row stays a row until first asked for (load speed).
        self._by_id: dict[str, Credential | Sequence[Any]] = {}
        self._by_hash: dict[str, str] = {}  # card or plate hash -> id
        self._replace_all(creds)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Credential]:
        return (self._get(id) for id in list(self._by_id))

    def get(self, id: str) -> Credential | None:
        return self._get(id) if id in self._by_id else None

    def _get(self, id: str) -> Credential:
        item = self._by_id[id]
        if isinstance(item, Credential):
            return item
        cred = self._by_id[id] = _from_row(item)
        return cred

    def hash_of(self, cls: ValueClass, value: str) -> str:
        """The hash a canonical ``value`` is stored under (no canonicalisation)."""
        return self.hasher.hash(cls, value)

    def by_hash(self, card_hash: str) -> Credential | None:
        id = self._by_hash.get(card_hash)
        return None if id is None else self._get(id)

    def lookup(self, cls: ValueClass, value: str) -> Credential | None:
        """The credential a reader's value belongs to; cards and plates are
        canonicalised first (``"bc:61:4e"`` finds ``BC614E``)."""
        try:
            if cls == "card":
                value = canonical_uid(value)
            elif cls == "plate":
                value = canonical_plate(value)
        except CardValueError:
            return None
        return self.by_hash(self.hasher.hash(cls, value))

    def make(
        self,
        *,
        id: str,
        kind: Kind,
        holder: str,
        group: str,
        card: str | int | None = None,
        card_decimal: bool = False,
        plate: str | None = None,
        qr: str | None = None,
        pin: str | None = None,
        valid_from: int | None = None,
        valid_until: int | None = None,
        uses_left: int | None = None,
        blacklisted: bool = False,
        disabled: bool = False,
        certifications: Iterable[str] = (),
        data: Mapping[str, Any] | None = None,
    ) -> Credential:
        """A validated credential from raw values: at most one of ``card`` (hex, or
        decimal with ``card_decimal``), ``qr`` and ``pin`` gives ``card_hash``; a
        ``plate`` alone gives it too. Raises :class:`CredentialError`."""
        given = [name for name, v in (("card", card), ("qr", qr), ("pin", pin)) if v is not None]
        if len(given) > 1:
            raise CredentialError(f"{id}: give only one of card, qr and pin (got {given})", "card")
        card_hash = card_uid = None
        try:
            canon_plate = canonical_plate(plate) if plate is not None else None
        except CardValueError as e:
            raise CredentialError(f"{id}: {e}", "plate") from e
        if card is not None:
            try:
                card_uid = canonical_uid(card, decimal=card_decimal)
            except CardValueError as e:
                raise CredentialError(f"{id}: {e}", "card") from e
            card_hash = self.hasher.hash("card", card_uid)
        if qr is not None:
            if not qr or len(qr) > 256 or not qr.isprintable():
                raise CredentialError(f"{id}: a QR token is 1-256 printable characters", "qr")
            card_hash = self.hasher.hash("qr", qr)
        if pin is not None:
            if not _PIN.match(pin):
                raise CredentialError(f"{id}: a PIN is 4 to 12 digits", "pin")
            card_hash = self.hasher.hash("pin", pin)
        if card_hash is None and canon_plate is not None:
            card_hash = self.hasher.hash("plate", canon_plate)
        now = self._clock.time_ns() if self._clock is not None else 0
        cred = Credential(
            id=id,
            kind=kind,
            holder=holder.strip(),
            group=group,
            card_hash=card_hash,
            card_uid=card_uid,
            plate=canon_plate,
            valid_from=valid_from,
            valid_until=valid_until,
            uses_left=uses_left,
            blacklisted=blacklisted,
            disabled=disabled,
            certifications=tuple(certifications),
            data=dict(data) if data else {},
            created_ts=now,
            updated_ts=now,
        )
        validate(cred)
        return cred

    def keys_of(self, cred: Credential) -> tuple[str, ...]:
        """The hashes ``cred`` is found by (its card hash, its plate's hash)."""
        return self._keys(cred.card_hash, cred.plate)

    def _keys(self, card_hash: str | None, plate: str | None) -> tuple[str, ...]:
        if plate is None:
            return (card_hash,) if card_hash is not None else ()
        ph = self.hasher.hash("plate", plate)
        return (ph,) if card_hash is None or card_hash == ph else (card_hash, ph)

    def put(self, cred: Credential) -> None:
        """Add or replace ``cred`` in memory only (the store calls it after a commit)."""
        self.discard(cred.id)
        self._by_id[cred.id] = cred
        for key in self.keys_of(cred):
            self._by_hash[key] = cred.id

    def discard(self, id: str) -> Credential | None:
        """Remove a credential from memory only; returns it."""
        if id not in self._by_id:
            return None
        old = self._get(id)
        del self._by_id[id]
        for key in self.keys_of(old):
            if self._by_hash.get(key) == id:
                del self._by_hash[key]
        return old

    def set_uses_left(self, id: str, uses_left: int) -> None:
        """A counted pass was used (the decider calls it so the next read in the
        same batch sees it; the service persists it with ``consume_in``)."""
        cred = self.get(id)
        if cred is not None and cred.uses_left != uses_left:
            self.put(dataclasses.replace(cred, uses_left=uses_left))

    def conflicts(self, creds: Sequence[Credential]) -> list[str]:
        """Why ``creds`` cannot be stored together with the index (empty: they can)."""
        problems: list[str] = []
        ids = {c.id for c in creds}
        owners: dict[str, str] = {}
        for c in creds:
            for key in self.keys_of(c):
                if (other := owners.setdefault(key, c.id)) != c.id:
                    problems.append(f"{c.id}: same card or plate as {other}")
                held = self._by_hash.get(key)
                if held is not None and held != c.id and held not in ids:
                    problems.append(f"{c.id}: card or plate already held by {held}")
        return problems

    def _replace_all(self, items: Iterable[Credential | Sequence[Any]]) -> None:
        """Replace everything with credentials or rows (in ``_NAMES`` order)."""
        by_id: dict[str, Credential | Sequence[Any]] = {}
        by_hash: dict[str, str] = {}
        keys, shared = self._keys, 0
        for item in items:
            if isinstance(item, Credential):
                id, card_hash, plate = item.id, item.card_hash, item.plate
            else:
                id, card_hash, plate = item[0], item[4], item[6]
            by_id[id] = item
            for key in keys(card_hash, plate):
                shared += key in by_hash
                by_hash[key] = id
        if shared:
            log.warning("%d cards or plates are held by more than one credential", shared)
        self._by_id, self._by_hash = by_id, by_hash


_NAMES = tuple(c.name for c in t_cred.c)  # the table's columns follow Credential's fields
_values = operator.attrgetter(*(f.name for f in dataclasses.fields(Credential)))
_LOAD = f"SELECT {', '.join(_NAMES)} FROM {t_cred.name}"  # raw rows: no per-value processing


_new: Callable[..., Credential] = Credential  # positional, from a row or a field tuple


def _row(c: Credential) -> dict[str, Any]:
    return dict(zip(_NAMES, _values(c), strict=True))


def _from_row(r: Sequence[Any]) -> Credential:
    """A credential from a row in ``_NAMES`` order (JSON as text on SQLite's raw
    rows, decoded elsewhere; booleans as 0/1 on SQLite's raw rows)."""
    certs, data = r[12], r[13]
    if isinstance(certs, str):
        certs = json.loads(certs)
    if isinstance(data, str):
        data = json.loads(data)
    return _new(*r[:10], bool(r[10]), bool(r[11]), tuple(certs), data, r[14], r[15])


class CredentialStore(CredentialIndex):
    """The ``access_credentials`` table, mirrored in the index it extends."""

    def __init__(self, store: EventStore, hasher: CardHasher, clock: Clock) -> None:
        super().__init__(hasher, clock=clock)
        self._store = store
        self._clock: Clock = clock
        # (row count, newest updated_ts) as of the last load: another process
        # (the CLI's import) changing the table changes it.
        self._baseline: tuple[int, int] | None = None
        self._rebase = False  # our own write moved it: take the new one as is

    async def load(self) -> None:
        """Read every credential (100k rows in a fraction of a second: rows become
        credentials when first looked up)."""
        enabled = gc.isenabled()
        gc.disable()  # 100k rows: a full collection every few thousand rows otherwise
        try:
            async with self._store.begin() as conn:
                rows = (await conn.exec_driver_sql(_LOAD)).all()
                self._baseline = await _fingerprint(conn)
            self._replace_all(rows)
            self._rebase = False
        finally:
            if enabled:
                gc.enable()
        log.info("%d access credentials loaded", len(self))

    async def upsert(self, creds: Sequence[Credential]) -> None:
        """Insert or replace ``creds`` in one transaction; the index follows the
        commit. Raises :class:`CredentialError` / :class:`CredentialConflict`
        before writing anything."""
        if not creds:
            return
        seen: set[str] = set()
        for c in creds:
            validate(c)
            if c.id in seen:
                raise CredentialError(f"{c.id}: listed twice", "id")
            seen.add(c.id)
        if problems := self.conflicts(creds):
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise CredentialConflict("; ".join(problems[:5]) + more)
        now, get = self._clock.time_ns(), self.get
        stamped = [
            _new(
                *_values(c)[:14], old.created_ts if (old := get(c.id)) else c.created_ts or now, now
            )
            for c in creds
        ]
        async with self._store.begin(write=True) as conn:
            stmt = _upsert_statement(conn)
            for i in range(0, len(stamped), _BATCH):
                await conn.execute(stmt, list(map(_row, stamped[i : i + _BATCH])))
        self._rebase = True
        for c in stamped:
            self.put(c)

    async def delete(self, id: str) -> bool:
        """Remove a credential (and where it was last seen); False if unknown."""
        async with self._store.begin(write=True) as conn:
            result = await conn.execute(delete(t_cred).where(t_cred.c.id == id))
            await conn.execute(delete(t_presence).where(t_presence.c.credential_id == id))
        self._rebase = True
        self.discard(id)
        return bool(result.rowcount)

    async def set_blacklisted(self, id: str, value: bool) -> Credential:
        cred = self.get(id)
        if cred is None:
            raise CredentialNotFound(id)
        now = self._clock.time_ns()
        async with self._store.begin(write=True) as conn:
            result = await conn.execute(
                update(t_cred).where(t_cred.c.id == id).values(blacklisted=value, updated_ts=now)
            )
        self._rebase = True
        if not result.rowcount:
            self.discard(id)
            raise CredentialNotFound(id)
        new = dataclasses.replace(cred, blacklisted=value, updated_ts=now)
        self.put(new)
        return new

    async def reload_if_changed(self) -> bool:
        """Load again when another process (``gateway access import``) changed the
        table since the last load; True when it did. Cheap when nothing changed."""
        async with self._store.begin() as conn:
            now = await _fingerprint(conn)
        if self._rebase:
            self._baseline, self._rebase = now, False
            return False
        if now == self._baseline:
            return False
        await self.load()
        return True

    async def consume_in(self, conn: AsyncConnection, id: str, uses_left: int) -> None:
        """Store a pass's remaining uses in the caller's transaction."""
        self._rebase = True  # the caller commits at once
        await conn.execute(
            update(t_cred)
            .where(t_cred.c.id == id)
            .values(uses_left=uses_left, updated_ts=self._clock.time_ns())
        )
        self.set_uses_left(id, uses_left)

    async def query(
        self,
        *,
        kind: str | None = None,
        group: str | None = None,
        text: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Credential]:
        """Credentials in id order. ``text`` matches id, holder, plate, phone or
        unit (substring, any case) or, if it reads as one, the card itself."""
        if not 1 <= limit <= 10_000 or offset < 0:
            raise CredentialError("limit must be 1..10000 and offset >= 0")
        stmt = select(t_cred).order_by(t_cred.c.id).limit(limit).offset(offset)
        if kind is not None:
            stmt = stmt.where(t_cred.c.kind == kind)
        if group is not None:
            stmt = stmt.where(t_cred.c.grp == group)
        if text:
            clauses: list[ColumnElement[bool]] = [
                col.icontains(text, autoescape=True)
                for col in (
                    t_cred.c.id,
                    t_cred.c.holder,
                    t_cred.c.plate,
                    t_cred.c.data["phone"].as_string(),
                    t_cred.c.data["unit"].as_string(),
                )
            ]
            with contextlib.suppress(CardValueError):
                clauses.append(t_cred.c.card_hash == self.hasher.card(text))
            stmt = stmt.where(or_(*clauses))
        async with self._store.begin() as conn:
            result = await conn.execute(stmt)
            return [_from_row(r) for r in result]


def _upsert_statement(conn: AsyncConnection) -> Any:
    ins = postgresql.insert(t_cred) if conn.dialect.name == "postgresql" else sqlite.insert(t_cred)
    keep = {"id", "created_ts"}
    return ins.on_conflict_do_update(
        index_elements=[t_cred.c.id],
        set_={c.name: ins.excluded[c.name] for c in t_cred.c if c.name not in keep},
    )


async def _fingerprint(conn: AsyncConnection) -> tuple[int, int]:
    row = (
        await conn.execute(select(func.count(), func.coalesce(func.max(t_cred.c.updated_ts), 0)))
    ).one()
    return int(row[0]), int(row[1])
