"""What a reader reports (libosdp event dicts) as gateway events, and decisions as OSDP commands.

Cards: raw Wiegand (OSDP format 1, and format 0 "unspecified" with 26, 34
or 37 bits, which many readers use for Wiegand) is parity-checked by
:func:`drivers.cards.wiegand.decode_wiegand`: a good frame is a
``card.presented`` with the UID (the data bits without parity), a bad one a
``card.read_error``, never a card. Other raw lengths (a 32-bit CSN) are the
bits as a number (``format: raw``); ASCII reads are the text as a UID.

Keypad: digits collect until ``#`` (OSDP sends 0x0D for it) and become a
``card.presented`` with ``format: pin`` and ``value``; ``*`` (0x7F) clears;
a pause longer than ``pin_timeout_s`` forgets a partial PIN. The digits are
never logged.

Local status reports carry tamper and power: only changes become events
(``reader.tamper`` / ``reader.tamper_cleared``, ``reader.power_fail`` /
``reader.power_ok``), so a reader repeating its state does not re-raise an
alarm.
"""

from __future__ import annotations

import logging
from typing import Any

import osdp_sys

from drivers.cards.events import (
    CARD_PRESENTED,
    READER_POWER_FAIL,
    READER_POWER_OK,
    READER_TAMPER,
    READER_TAMPER_CLEARED,
    card_presented,
    read_error,
)
from drivers.cards.osdp.config import OsdpReaderConfig
from drivers.cards.wiegand import WiegandError, decode_wiegand
from gateway.access.cards import CardValueError, canonical_uid
from gateway.clock import Clock
from gateway.model import Event

__all__ = ["MAX_PIN", "ReaderTranslator", "buzzer_command", "led_command", "output_command"]

log = logging.getLogger("drivers.cards.osdp")

MAX_PIN = 16
_WIEGAND_LENGTHS = (26, 34, 37)
_ENTER = frozenset("#\r")
_CLEAR = frozenset("*\x7f")


class ReaderTranslator:
    """One reader's events: card decoding, the PIN being typed, the last tamper/power state."""

    def __init__(self, cfg: OsdpReaderConfig, clock: Clock, pin_timeout_s: float) -> None:
        self.cfg, self.clock, self.pin_timeout_s = cfg, clock, pin_timeout_s
        self.device = cfg.device
        self._pin = ""
        self._pin_at = 0.0
        self._tamper = False
        self._power_fail = False

    def translate(self, data: dict[str, Any], ts: int) -> list[Event]:
        kind = data.get("event")
        if kind == osdp_sys.EVENT_CARDREAD:
            return [self._card(data, ts)]
        if kind == osdp_sys.EVENT_KEYPRESS:
            return self._keys(data, ts)
        if kind == osdp_sys.EVENT_STATUS:
            return self._status(data, ts)
        log.debug("%s: ignored OSDP event %s", self.device, kind)
        return []

    def _card(self, data: dict[str, Any], ts: int) -> Event:
        fmt, bits = data.get("format"), int(data.get("length") or 0)
        raw = bytes(data.get("data") or b"")
        reader_no = int(data.get("reader_no") or 0)
        if fmt == osdp_sys.CARD_FMT_RAW_WIEGAND or (
            fmt == osdp_sys.CARD_FMT_RAW_UNSPECIFIED and bits in _WIEGAND_LENGTHS
        ):
            try:
                card = decode_wiegand(bits, raw, wiegand37=self.cfg.wiegand37)
            except WiegandError as exc:
                return read_error(self.device, ts, exc.reason, bits=bits, raw=raw.hex().upper())
            return card_presented(
                self.device,
                ts,
                card.uid,
                card.format,
                bits=card.bits,
                facility=card.facility,
                number=card.number,
                reader_no=reader_no,
            )
        if fmt == osdp_sys.CARD_FMT_RAW_UNSPECIFIED:
            need = (bits + 7) // 8
            if bits <= 0 or len(raw) != need:
                return read_error(self.device, ts, "length", bits=bits, raw=raw.hex().upper())
            value = int.from_bytes(raw, "big") >> (need * 8 - bits)
            uid = canonical_uid(value)
            return card_presented(self.device, ts, uid, "raw", bits=bits, reader_no=reader_no)
        if fmt == osdp_sys.CARD_FMT_ASCII:
            try:
                uid = canonical_uid(raw.decode("ascii").strip())
            except (UnicodeDecodeError, CardValueError):
                return read_error(self.device, ts, "format", bits=bits, raw=raw.hex().upper())
            return card_presented(self.device, ts, uid, "ascii", reader_no=reader_no)
        return read_error(self.device, ts, "format", bits=bits, raw=raw.hex().upper())

    def _keys(self, data: dict[str, Any], ts: int) -> list[Event]:
        now = self.clock.monotonic()
        if self._pin and now - self._pin_at > self.pin_timeout_s:
            self._pin = ""  # a PIN left half-typed is not the start of the next one
        self._pin_at = now
        reader_no = int(data.get("reader_no") or 0)
        out: list[Event] = []
        for ch in bytes(data.get("data") or b"").decode("latin-1"):
            if ch.isdigit():
                self._pin += ch
                if len(self._pin) > MAX_PIN:
                    self._pin = ""
                    out.append(read_error(self.device, ts, "length", bits=0, raw=""))
            elif ch in _ENTER:
                if self._pin:
                    pin_data = {"format": "pin", "value": self._pin, "reader_no": reader_no}
                    out.append(Event(CARD_PRESENTED, self.device, ts, pin_data))
                self._pin = ""
            elif ch in _CLEAR:
                self._pin = ""
        return out

    def _status(self, data: dict[str, Any], ts: int) -> list[Event]:
        if data.get("type") != osdp_sys.STATUS_REPORT_LOCAL:
            log.debug("%s: ignored status report type %s", self.device, data.get("type"))
            return []
        report = bytes(data.get("report") or b"")
        out: list[Event] = []
        tamper = bool(report[0]) if report else self._tamper
        power_fail = bool(report[1]) if len(report) > 1 else self._power_fail
        if tamper != self._tamper:
            self._tamper = tamper
            out.append(Event(READER_TAMPER if tamper else READER_TAMPER_CLEARED, self.device, ts))
        if power_fail != self._power_fail:
            self._power_fail = power_fail
            kind = READER_POWER_FAIL if power_fail else READER_POWER_OK
            out.append(Event(kind, self.device, ts))
        return out


def led_command(green: bool, seconds: float) -> dict[str, Any]:
    """Reader LED 0 steady green (or red) for ``seconds``, then back to its own state."""
    return {
        "command": osdp_sys.CMD_LED,
        "reader": 0,
        "led_number": 0,
        "control_code": 2,  # temporary state, start the timer now
        "on_count": 10,
        "off_count": 0,  # steady
        "on_color": osdp_sys.LED_COLOR_GREEN if green else osdp_sys.LED_COLOR_RED,
        "off_color": osdp_sys.LED_COLOR_NONE,
        "timer_count": max(1, min(0xFFFF, round(seconds * 10))),  # 100 ms units
        "temporary": True,
    }


def buzzer_command(beeps: int) -> dict[str, Any]:
    """``beeps`` short beeps (200 ms on, 100 ms off) of the default tone."""
    return {
        "command": osdp_sys.CMD_BUZZER,
        "reader": 0,
        "control_code": 2,  # default tone
        "on_count": 2,
        "off_count": 1,
        "rep_count": beeps,
    }


def output_command(output: int, seconds: float) -> dict[str, Any]:
    """Output ``output`` on for ``seconds``, then back to its permanent state (off)."""
    return {
        "command": osdp_sys.CMD_OUTPUT,
        "output_no": output,
        "control_code": 5,  # temporary on; resume the permanent state when the timer ends
        "timer_count": max(1, min(0xFFFF, round(seconds * 10))),  # 100 ms units
    }
