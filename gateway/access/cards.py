"""What a credential is known by: canonical card values, their keyed hash, masking.

Every reader reports a card as a canonical UID: upper-case hex, no separators,
leading zeros stripped, then padded to whole bytes (``0x00BC614E``, ``BC:61:4E``
and the decimal ``12345678`` are all ``BC614E``). A Wiegand read is the number
its data bits make without the parity bits (26-bit, facility 18, card 1234 ->
``1204D2``), so a desk reader that prints the same number matches it.

A credential value (card, plate, QR token, PIN) is looked up by
:meth:`CardHasher.hash` of ``<class>:<value>``: an HMAC-SHA256 with the site's
secret key, so the passages and events can name a card without holding the
UID, and a leaked table cannot be matched against a list of UIDs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Literal

__all__ = [
    "CardHasher",
    "CardValueError",
    "ValueClass",
    "canonical_plate",
    "canonical_uid",
    "load_access_key",
    "mask_value",
]

ValueClass = Literal["card", "plate", "qr", "pin"]

_HEX = re.compile(r"^[0-9A-F]+$")
_SEPARATORS = re.compile(r"[\s:\-]")


class CardValueError(ValueError):
    """A card value that cannot be read as a UID (empty, not hex, too long)."""


def canonical_uid(text: str | int, *, decimal: bool = False) -> str:
    """The canonical UID of a card value: ``"0x00bc614e"`` -> ``"BC614E"``.

    ``decimal`` reads digits as a decimal number (readers that print the UID
    in decimal); otherwise text is hex, with optional ``0x`` and ``:``/``-``/
    space separators. An ``int`` is taken as the number itself.
    """
    if isinstance(text, int):
        if text < 0:
            raise CardValueError(f"a card number cannot be negative: {text}")
        n = text
    else:
        raw = _SEPARATORS.sub("", text.strip())
        if not raw:
            raise CardValueError("empty card value")
        if decimal:
            if not raw.isdigit():
                raise CardValueError(f"not a decimal card number: {text!r}")
            n = int(raw)
        else:
            raw = raw.upper().removeprefix("0X")
            if not raw or not _HEX.match(raw):
                raise CardValueError(f"not a hexadecimal card UID: {text!r}")
            n = int(raw, 16)
    hexed = format(n, "X")
    if len(hexed) % 2:
        hexed = "0" + hexed
    if len(hexed) > 32:
        raise CardValueError(f"card UID longer than 16 bytes: {text!r}")
    return hexed


def canonical_plate(text: str) -> str:
    """A licence plate as ANPR cameras and people write it: upper case, no
    spaces, dots or dashes (``"沪A·12345"`` -> ``"沪A12345"``)."""
    plate = re.sub(r"[\s.\-·•]", "", text).upper()
    if not plate:
        raise CardValueError("empty licence plate")
    return plate


def mask_value(value: str, keep: int = 4) -> str:
    """``"BC614E"`` -> ``"**614E"``: the last ``keep`` characters, for people who
    must tell two cards apart but need not copy one."""
    if len(value) <= keep:
        return "*" * len(value)
    return "*" * (len(value) - keep) + value[-keep:]


class CardHasher:
    """Keyed hashes of credential values (32 hex characters)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the access key must be at least 16 bytes")
        self._key = key

    def hash(self, cls: ValueClass, value: str) -> str:
        msg = f"{cls}:{value}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:32]

    def card(self, uid: str) -> str:
        return self.hash("card", canonical_uid(uid))

    def plate(self, plate: str) -> str:
        return self.hash("plate", canonical_plate(plate))


def load_access_key(data_dir: Path) -> bytes:
    """The site's access key, made once (32 random bytes, file mode 0600) in
    ``<data_dir>/access.key``. Losing it makes every stored card hash useless:
    back it up with the event store."""
    path = data_dir / "access.key"
    try:
        key = bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        key = os.urandom(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key.hex() + "\n")
        return key
    except ValueError as e:
        raise ValueError(f"{path}: not a hex key ({e}); restore it from a backup") from e
    if len(key) < 16:
        raise ValueError(f"{path}: key shorter than 16 bytes; restore it from a backup")
    return key
