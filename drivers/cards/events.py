"""The events card drivers emit and the commands they execute.

Every card driver speaks this vocabulary, whatever its protocol (OSDP,
Wiegand converters, serial/TCP line readers, MQTT/HTTP controllers, ANPR):

Events (``source`` = the reader's or door's device id):

- ``card.presented``: ``uid`` (canonical hex, :func:`gateway.access.cards.canonical_uid`),
  ``format`` (``wiegand26``, ``wiegand34``, ``wiegand37``, ``raw``, ``ascii``,
  ``line``, ``qr``, ``pin``, ``controller``), optional ``bits``, ``facility``,
  ``number``, ``reader_no`` and ``direction`` (``in``/``out``) when the reader knows it.
  A QR reader sends ``format: qr`` and ``value`` (the token text) instead of ``uid``;
  a keypad PIN is ``format: pin`` with ``value`` (the digits; never logged).
- ``card.read_error``: ``reason`` (``parity``, ``length``, ``format``), ``bits``, ``raw`` (hex).
- ``plate.read``: ``plate``, optional ``confidence`` (0-1), ``direction``.
- ``card.decision``: a controller that decides itself reports its decision
  (monitor mode): ``granted`` (bool), ``reason`` (the controller's words),
  plus the fields of ``card.presented`` (``uid`` or ``plate``).
- ``door.contact``: ``open`` (bool). ``door.exit_request``: the exit button.
- ``gate.passage``: ``count`` (people or vehicles that went through), ``direction``.
- ``barrier.loop``: ``occupied`` (bool), ``loop`` (``entry``/``exit``/``safety``).
- ``reader.tamper`` / ``reader.tamper_cleared``; ``reader.power_fail`` / ``reader.power_ok``.
- ``reader.secure_channel``: ``active`` (bool), ``install_mode`` (bool).
- ``command.result``: ``id`` (the command's), ``target``, ``action``, ``result``
  (``done``, ``refused``, ``failed``), ``reason``.

Reader offline/online is reported through ``ctx.health.device_offline`` /
``device_online`` (the ``device.offline`` events every driver gives).

Commands (``Command.target`` = a device the driver owns):

- ``feedback``: ``result`` (``grant``/``deny``), optional ``seconds``: reader
  LED (green/red) and buzzer (one beep / three beeps).
- ``pulse``: ``output`` (int, default 0), ``seconds`` (float): energise a relay
  (door strike, gate, barrier) for that long.
"""

from __future__ import annotations

from typing import Any, Literal

from gateway.model import Event

__all__ = [
    "BARRIER_LOOP",
    "CARD_DECISION",
    "CARD_PRESENTED",
    "CARD_READ_ERROR",
    "COMMAND_FEEDBACK",
    "COMMAND_PULSE",
    "COMMAND_RESULT",
    "DOOR_CONTACT",
    "DOOR_EXIT_REQUEST",
    "GATE_PASSAGE",
    "PLATE_READ",
    "READER_POWER_FAIL",
    "READER_POWER_OK",
    "READER_SECURE_CHANNEL",
    "READER_TAMPER",
    "READER_TAMPER_CLEARED",
    "card_presented",
    "read_error",
]

CARD_PRESENTED = "card.presented"
CARD_READ_ERROR = "card.read_error"
CARD_DECISION = "card.decision"
PLATE_READ = "plate.read"
DOOR_CONTACT = "door.contact"
DOOR_EXIT_REQUEST = "door.exit_request"
GATE_PASSAGE = "gate.passage"
BARRIER_LOOP = "barrier.loop"
READER_TAMPER = "reader.tamper"
READER_TAMPER_CLEARED = "reader.tamper_cleared"
READER_POWER_FAIL = "reader.power_fail"
READER_POWER_OK = "reader.power_ok"
READER_SECURE_CHANNEL = "reader.secure_channel"
COMMAND_RESULT = "command.result"

COMMAND_FEEDBACK = "feedback"
COMMAND_PULSE = "pulse"

Direction = Literal["in", "out"]


def card_presented(
    source: str,
    ts: int,
    uid: str,
    fmt: str,
    *,
    bits: int | None = None,
    facility: int | None = None,
    number: int | None = None,
    reader_no: int | None = None,
    direction: Direction | None = None,
) -> Event:
    """A ``card.presented`` event; ``uid`` must already be canonical."""
    data: dict[str, Any] = {"uid": uid, "format": fmt}
    for key, value in (
        ("bits", bits),
        ("facility", facility),
        ("number", number),
        ("reader_no", reader_no),
        ("direction", direction),
    ):
        if value is not None:
            data[key] = value
    return Event(CARD_PRESENTED, source, ts, data)


def read_error(source: str, ts: int, reason: str, *, bits: int = 0, raw: str = "") -> Event:
    """A ``card.read_error``: something was read, but it is not a card (bad parity)."""
    return Event(CARD_READ_ERROR, source, ts, {"reason": reason, "bits": bits, "raw": raw})
