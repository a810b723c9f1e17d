"""Masking of personal data by role: phone numbers and access-card UIDs.

A viewer account is often a screen in a lobby or a contractor's login, so it
does not get the phone numbers of the people on duty; guards and above call
them. Card UIDs let anyone who reads them clone a badge, so only supervisors
and admins see them in full; everyone else sees the last four characters,
which is enough to tell two cards apart in an event log.

Applied to events (REST and the live stream), the on-call roster and alarm
data. Keys are matched case-insensitively at any depth of the data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.api.roles import rank

__all__ = [
    "CARD_KEYS",
    "PHONE_KEYS",
    "PRIVATE_EVENT_TYPES",
    "can_see_card",
    "can_see_phone",
    "mask_card",
    "mask_data",
    "mask_phone",
]

CARD_KEYS = frozenset({"card", "card_uid", "uid", "credential"})
PHONE_KEYS = frozenset({"mobile", "phone"})
# Raw reads as a reader reports them: a whole UID, a visitor's QR token, a
# keypad PIN. They are never sent to a screen; the access service's passage
# event (access.granted / access.denied, with the card masked) is the record.
PRIVATE_EVENT_TYPES = frozenset({"card.presented", "card.decision"})
_STARS = "****"
_GUARD = rank("guard")
_SUPERVISOR = rank("supervisor")


def can_see_phone(role: str) -> bool:
    """Guards and above see phone numbers in full (an unknown role sees nothing)."""
    return rank(role) >= _GUARD


def can_see_card(role: str) -> bool:
    """Supervisors and admins see card UIDs in full."""
    return rank(role) >= _SUPERVISOR


def mask_phone(s: str) -> str:
    """``13800000001`` -> ``138****0001``; ``+8613800000001`` -> ``+86138****0001``.

    Eight characters and more keep the last four and all but the eight before
    them; shorter numbers keep at most their last two.
    """
    s = str(s).strip()
    n = len(s)
    if n == 0:
        return ""
    if n >= 8:
        return s[: n - 8] + _STARS + s[-4:]
    if n >= 5:
        return _STARS + s[-2:]
    return _STARS


def mask_card(s: str) -> str:
    """``04A1B2C3D4A1B2`` -> ``****A1B2`` (the last four); four or fewer -> ``****``."""
    s = str(s).strip()
    if not s:
        return ""
    return _STARS + s[-4:] if len(s) > 4 else _STARS


def mask_data(data: Any, role: str) -> Any:
    """A copy of ``data`` (dicts and lists, recursively) with the values of card
    keys masked below supervisor and phone keys masked for viewers.

    Under a masked key, every scalar inside the value is masked (a ``credential``
    that is itself an object hides all of it); ``None`` and booleans stay as they
    are, since they reveal nothing.
    """
    cards, phones = can_see_card(role), can_see_phone(role)
    if cards and phones:
        return _copy(data)
    return _walk(data, cards, phones)


def _walk(value: Any, cards: bool, phones: bool) -> Any:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k).lower()
            if not cards and key in CARD_KEYS:
                out[k] = _mask_all(v, mask_card)
            elif not phones and key in PHONE_KEYS:
                out[k] = _mask_all(v, mask_phone)
            else:
                out[k] = _walk(v, cards, phones)
        return out
    if isinstance(value, list | tuple):
        return [_walk(v, cards, phones) for v in value]
    return value


def _mask_all(value: Any, mask: Callable[[str], str]) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        return {k: _mask_all(v, mask) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_all(v, mask) for v in value]
    return mask(str(value))


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value
