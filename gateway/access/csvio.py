"""Credentials to and from CSV, the way property offices keep their card lists.

Excel (the Chinese versions in particular) saves "CSV UTF-8" with a byte
order mark; it is accepted and ignored. An import is all or nothing:
:func:`parse_csv` checks every row and raises one :class:`CsvError` listing
every bad value with its line and column, so a list is fixed in one round
rather than one error at a time, and nothing is half imported.

Dates are ISO 8601: with an offset (``2026-10-01T08:00:00+08:00``), or local
to the site's zone without one; a bare date is the start of that day for
``valid_from`` and the end of it for ``valid_until`` (valid through that day).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from gateway.access.cards import CardHasher, CardValueError, canonical_plate, canonical_uid
from gateway.access.credentials import KINDS, Credential, CredentialError, CredentialIndex, Kind
from gateway.clock import Clock
from gateway.model import from_datetime

__all__ = ["COLUMNS", "CsvError", "CsvProblem", "export_csv", "parse_csv"]

COLUMNS = (
    "id",
    "kind",
    "holder",
    "group",
    "card",
    "card_format",
    "plate",
    "valid_from",
    "valid_until",
    "uses_left",
    "blacklisted",
    "disabled",
    "certifications",
    "phone",
    "unit",
    "note",
)
_REQUIRED = ("id", "kind", "holder", "group")
_DATA = ("phone", "unit", "note")
_TRUE = {"true", "1", "yes", "y", "是"}
_FALSE = {"", "false", "0", "no", "n", "否"}
_SHOWN = 50  # problems spelled out in the message (all are in .problems)


@dataclass(frozen=True, slots=True)
class CsvProblem:
    line: int  # 1 = the header
    column: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


class CsvError(ValueError):
    """The file has bad rows; ``problems`` lists every one (nothing was imported)."""

    def __init__(self, problems: list[CsvProblem]) -> None:
        self.problems = problems
        lines = [str(p) for p in problems[:_SHOWN]]
        if len(problems) > _SHOWN:
            lines.append(f"... and {len(problems) - _SHOWN} more")
        super().__init__(f"{len(problems)} problem(s) in the CSV:\n" + "\n".join(lines))


def export_csv(creds: Iterable[Credential], *, with_uid: bool, timezone: str = "UTC") -> str:
    """The credentials as CSV (header first). Card UIDs only ``with_uid``
    (roles that manage cards); without it the card columns stay empty.
    Dates are written in ``timezone`` with their offset."""
    zone = ZoneInfo(timezone)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for c in creds:
        uid = c.card_uid if with_uid else None
        writer.writerow(
            [
                c.id,
                c.kind,
                c.holder,
                c.group,
                uid or "",
                "hex" if uid else "",
                c.plate or "",
                _format_ts(c.valid_from, zone),
                _format_ts(c.valid_until, zone),
                "" if c.uses_left is None else str(c.uses_left),
                "true" if c.blacklisted else "false",
                "true" if c.disabled else "false",
                ";".join(c.certifications),
                *(str(c.data.get(k) or "") for k in _DATA),
            ]
        )
    return out.getvalue()


def parse_csv(
    text: str, hasher: CardHasher, clock: Clock, *, timezone: str = "UTC"
) -> list[Credential]:
    """Credentials from CSV text (a BOM is ignored). Raises :class:`CsvError`
    listing every bad value; dates without an offset are in ``timezone``."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    problems: list[CsvProblem] = []
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise CsvError([CsvProblem(1, "", "the file is empty")]) from None
    except csv.Error as e:
        raise CsvError([CsvProblem(1, "", f"not CSV: {e}")]) from e
    for name in header:
        if name not in COLUMNS:
            problems.append(CsvProblem(1, name, f"unknown column (known: {', '.join(COLUMNS)})"))
        elif header.count(name) > 1:
            problems.append(CsvProblem(1, name, "column appears twice"))
    problems += [CsvProblem(1, n, "required column missing") for n in _REQUIRED if n not in header]
    if problems:
        raise CsvError(problems)
    parser = _RowParser(CredentialIndex(hasher, clock=clock), ZoneInfo(timezone))
    creds: list[Credential] = []
    ids: dict[str, int] = {}
    keys: dict[str, int] = {}
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            problems.append(CsvProblem(line, "", f"not CSV: {e}"))
            break
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            problems.append(CsvProblem(line, "", f"{len(cells)} values for {len(header)} columns"))
            continue
        row = dict(zip(header, (c.strip() for c in cells), strict=False))
        cred = parser.parse(line, row, problems)
        if cred is None:
            continue
        if cred.id in ids:
            problems.append(CsvProblem(line, "id", f"{cred.id} is also on line {ids[cred.id]}"))
        ids.setdefault(cred.id, line)
        plate_key = hasher.hash("plate", cred.plate) if cred.plate else None
        for key in parser.index.keys_of(cred):
            if key in keys:
                column = "plate" if key == plate_key else "card"
                problems.append(CsvProblem(line, column, f"same {column} as line {keys[key]}"))
            keys.setdefault(key, line)
        creds.append(cred)
    if problems:
        raise CsvError(problems)
    return creds


class _RowParser:
    """One row's values, each bad one reported against its column."""

    def __init__(self, index: CredentialIndex, zone: ZoneInfo) -> None:
        self.index = index
        self._zone = zone

    def parse(
        self, line: int, row: Mapping[str, str], problems: list[CsvProblem]
    ) -> Credential | None:
        before = len(problems)

        def bad(column: str, message: str) -> None:
            problems.append(CsvProblem(line, column, message))

        get = row.get
        kind = get("kind", "").lower()
        if kind not in KINDS:
            bad("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
        card_format = get("card_format", "").lower() or "hex"
        if card_format not in ("hex", "decimal"):
            bad("card_format", f"{card_format!r} is neither hex nor decimal")
        elif card := get("card", ""):
            try:
                canonical_uid(card, decimal=card_format == "decimal")
            except CardValueError as e:
                bad("card", str(e))
        if plate := get("plate", ""):
            try:
                canonical_plate(plate)
            except CardValueError as e:
                bad("plate", str(e))
        valid_from = self._ts(get("valid_from", ""), end_of_day=False, col="valid_from", bad=bad)
        valid_until = self._ts(get("valid_until", ""), end_of_day=True, col="valid_until", bad=bad)
        uses_left = None
        if uses := get("uses_left", ""):
            if uses.isdigit():
                uses_left = int(uses)
            else:
                bad("uses_left", f"{uses!r} is not a whole number >= 0")
        flags = {}
        for column in ("blacklisted", "disabled"):
            value = get(column, "").lower()
            if value not in _TRUE and value not in _FALSE:
                bad(column, f"{value!r} is not true or false")
            flags[column] = value in _TRUE
        if len(problems) > before:
            return None
        try:
            return self.index.make(
                id=get("id", ""),
                kind=cast(Kind, kind),
                holder=get("holder", ""),
                group=get("group", ""),
                card=get("card") or None,
                card_decimal=card_format == "decimal",
                plate=get("plate") or None,
                valid_from=valid_from,
                valid_until=valid_until,
                uses_left=uses_left,
                blacklisted=flags["blacklisted"],
                disabled=flags["disabled"],
                certifications=[
                    c.strip() for c in get("certifications", "").split(";") if c.strip()
                ],
                data={k: v for k in _DATA if (v := get(k, ""))},
            )
        except CredentialError as e:
            bad(e.field or "id", str(e))
            return None

    def _ts(
        self, text: str, *, end_of_day: bool, col: str, bad: Callable[[str, str], None]
    ) -> int | None:
        if not text:
            return None
        try:
            if len(text) == 10:  # a bare date
                day = date.fromisoformat(text) + timedelta(days=1 if end_of_day else 0)
                return from_datetime(datetime(day.year, day.month, day.day, tzinfo=self._zone))
            dt = datetime.fromisoformat(text)
        except ValueError:
            bad(col, f"{text!r} is not an ISO 8601 date or time")
            return None
        return from_datetime(dt if dt.tzinfo else dt.replace(tzinfo=self._zone))


def _format_ts(ts: int | None, zone: ZoneInfo) -> str:
    if ts is None:
        return ""
    seconds, ns = divmod(ts, 1_000_000_000)
    dt = datetime.fromtimestamp(seconds, zone) + timedelta(microseconds=ns // 1000)
    return dt.isoformat(timespec="microseconds" if ns else "seconds")
