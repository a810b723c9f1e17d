"""Simulated OSDP readers (libosdp peripheral devices) for tests, the demo and the benchmark.

A :class:`SimulatedReader` is a real libosdp PD: it answers polls, runs
the secure channel (with its key, or the default key SCBK-D in install
mode, and keeps a key the CP sets with KEYSET across restarts, like a
reader's flash), reports cards, keys, tamper and power, and records every
command it receives with a ``time.perf_counter()`` stamp.

Readers sit on a *line* (:mod:`drivers.cards.osdp.simlines`): a serial
port (one end of a socat pty pair, a USB adapter) or a
:class:`TcpPdServer` the CP connects to. Readers given the same port (or
the same server address) share one line, as PDs share an RS-485 bus.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import osdp_sys

from drivers.cards.osdp import liblog
from drivers.cards.osdp.simlines import Line, PdChannel, SimulatorError, TcpPdServer, join, leave
from drivers.cards.wiegand import WiegandError, encode_wiegand

__all__ = ["SimulatedReader", "SimulatorError", "TcpPdServer", "wiegand_frame"]

_KINDS = {
    osdp_sys.CMD_OUTPUT: "output",
    osdp_sys.CMD_LED: "led",
    osdp_sys.CMD_BUZZER: "buzzer",
    osdp_sys.CMD_TEXT: "text",
    osdp_sys.CMD_COMSET: "comset",
    osdp_sys.CMD_KEYSET: "keyset",
    osdp_sys.CMD_MFG: "mfg",
    osdp_sys.CMD_STATUS: "status",
}
_CAPS = [
    {"function_code": code, "compliance_level": 1, "num_items": items}
    for code, items in (
        (osdp_sys.CAP_OUTPUT_CONTROL, 2),
        (osdp_sys.CAP_READER_LED_CONTROL, 1),
        (osdp_sys.CAP_READER_AUDIBLE_OUTPUT, 1),
        (osdp_sys.CAP_CARD_DATA_FORMAT, 1),
        (osdp_sys.CAP_READERS, 1),
        (osdp_sys.CAP_COMMUNICATION_SECURITY, 1),
    )
]
_LAYOUT = {26: ("H10301", 16), 34: ("H10306", 16), 37: ("H10304", 19)}


def wiegand_frame(uid_hex: str, bits: int = 26) -> bytes:
    """OSDP raw Wiegand data (MSB first, padded) of the card whose UID (the data bits
    without parity) is ``uid_hex``, parity set: ``wiegand_frame("1204D2")``."""
    if bits not in _LAYOUT:
        raise SimulatorError(f"cannot build a {bits}-bit frame; use 26, 34 or 37")
    layout, number_bits = _LAYOUT[bits]
    value = int(uid_hex, 16)
    try:
        _n, data = encode_wiegand(layout, value >> number_bits, value & ((1 << number_bits) - 1))
    except WiegandError as exc:
        raise SimulatorError(f"UID {uid_hex} does not fit {bits} bits: {exc}") from exc
    return data


class SimulatedReader:
    """One OSDP reader (a libosdp PD) on a serial port or behind a TCP server.

    ``scbk``: its secure channel key (16 bytes); None is a factory-default
    reader, which accepts the default key (install mode) like one with
    ``install_mode=True``.
    """

    def __init__(
        self,
        address: int,
        *,
        scbk: bytes | None,
        serial_port: str | None = None,
        tcp_listen: tuple[str, int] | None = None,
        install_mode: bool = False,
    ) -> None:
        if (serial_port is None) == (tcp_listen is None):
            raise SimulatorError("give exactly one of serial_port or tcp_listen")
        if scbk is not None and len(scbk) != 16:
            raise SimulatorError("scbk must be 16 bytes")
        self.address, self.scbk, self.install_mode = address, scbk, install_mode
        self.serial_port, self.tcp_listen = serial_port, tcp_listen
        self._channel: PdChannel | None = None
        self._line: Line | None = None
        self._ctx: Any = None
        self._cond = threading.Condition()
        self._commands: list[dict[str, Any]] = []
        self._tamper = self._power_fail = False

    # ---- life cycle ----------------------------------------------------------------

    def start(self) -> None:
        """Power the reader on (a fresh libosdp context on its line)."""
        if self._line is not None:
            raise SimulatorError(f"reader {self.address} is already running")
        liblog.install()
        flags = osdp_sys.FLAG_INSTALL_MODE if self.install_mode else 0
        line = join(self)
        try:
            with line.lock:
                self._channel = PdChannel(line)
                info = {
                    "name": f"sim-{self.address}",
                    "address": self.address,
                    "flags": flags,
                    "scbk": self.scbk,
                    "channel": self._channel,
                    "version": 1,
                    "model": 1,
                    "vendor_code": 0xCAFE,
                    "serial_number": 0x5000 + self.address,
                    "firmware_version": 0x010000,
                }
                ctx = osdp_sys.PeripheralDevice(info, capabilities=_CAPS)
                ctx.set_command_callback(self._on_command)
                self._ctx = ctx
        except BaseException:
            leave(self, line)
            raise
        self._line = line
        line.wake()

    def stop(self) -> None:
        """Power the reader off: it stops answering (its line closes with its last reader)."""
        line, self._line = self._line, None
        if line is None:
            return
        with line.lock:
            self._ctx = None
        leave(self, line)

    def __enter__(self) -> SimulatedReader:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def refresh(self, data: bytes) -> None:
        """Take the line's new bytes and run one libosdp turn (the line's thread calls
        it, holding the line lock)."""
        if self._ctx is None or self._channel is None:
            return
        if data:
            self._channel.feed(data)
        self._ctx.refresh()

    # ---- what the reader does ------------------------------------------------------

    def present_card(self, uid_hex: str, bits: int = 26) -> float:
        """A card whose UID is ``uid_hex`` (data bits without parity), as raw Wiegand with
        correct parity; returns the perf_counter() stamp of the read."""
        return self.present_raw(bits, wiegand_frame(uid_hex, bits))

    def present_raw(self, bits: int, data: bytes, *, fmt: int | None = None) -> float:
        """Raw card data as the reader would send it (bad parity included)."""
        fmt = osdp_sys.CARD_FMT_RAW_WIEGAND if fmt is None else fmt
        return self._submit(
            {
                "event": osdp_sys.EVENT_CARDREAD,
                "reader_no": 0,
                "format": fmt,
                "direction": 0,
                "length": bits,
                "data": data,
            }
        )

    def key_in(self, digits: str) -> float:
        """Keys pressed on the keypad (``"1234#"``)."""
        return self._submit(
            {"event": osdp_sys.EVENT_KEYPRESS, "reader_no": 0, "data": digits.encode("ascii")}
        )

    def tamper(self, active: bool) -> float:
        self._tamper = active
        return self._local_status()

    def power(self, ok: bool) -> float:
        self._power_fail = not ok
        return self._local_status()

    def _local_status(self) -> float:
        report = bytes([int(self._tamper), int(self._power_fail)])
        return self._submit(
            {"event": osdp_sys.EVENT_STATUS, "type": osdp_sys.STATUS_REPORT_LOCAL, "report": report}
        )

    def _submit(self, event: dict[str, Any]) -> float:
        line = self._line
        if line is None or self._ctx is None:
            raise SimulatorError(f"reader {self.address} is not running")
        with line.lock:
            t = time.perf_counter()
            self._ctx.submit_event(event)
        line.wake()
        return t

    @property
    def online(self) -> bool:
        return self._ctx is not None and bool(self._ctx.is_online())

    @property
    def sc_active(self) -> bool:
        return self._ctx is not None and bool(self._ctx.is_sc_active())

    # ---- what the reader was told ----------------------------------------------------

    def _on_command(self, command: dict[str, Any]) -> tuple[int, None]:
        entry = dict(command)
        entry["kind"] = _KINDS.get(command.get("command", -1), "other")
        entry["t"] = time.perf_counter()
        if entry["kind"] == "keyset" and isinstance(command.get("data"), bytes):
            self.scbk = command["data"]  # kept like a reader keeps it in flash
        with self._cond:
            self._commands.append(entry)
            self._cond.notify_all()
        return 0, None

    def commands(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every command received so far (each with ``kind`` and a perf_counter ``t``)."""
        with self._cond:
            return [c for c in self._commands if kind in (None, c["kind"])]

    def wait_command(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next command of ``kind`` (output, led, buzzer, ...) not returned before;
        raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, c in enumerate(self._commands):
                    if c["kind"] == kind and not c.get("_taken"):
                        self._commands[i]["_taken"] = True
                        return {k: v for k, v in c.items() if k != "_taken"}
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"reader {self.address}: no {kind} command in {timeout} s")
                self._cond.wait(left)

    def clear_commands(self) -> None:
        with self._cond:
            self._commands.clear()
