"""What the panel's refresh thread and the event loop tell each other.

The thread never calls into asyncio objects; it hands these frozen values
to a ``sink`` callable (the driver's ``loop.call_soon_threadsafe``), and
answers each command with one :class:`CommandOutcome`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import osdp_sys

__all__ = [
    "CommandOutcome",
    "PanelMessage",
    "PanelStopped",
    "PdEvent",
    "PdKeyed",
    "PdSpec",
    "PdState",
]


@dataclass(frozen=True, slots=True)
class PdSpec:
    """One reader on the bus, as libosdp needs it."""

    address: int
    name: str
    scbk: bytes | None = None
    enforce_secure: bool = True
    install_mode: bool = False

    @property
    def flags(self) -> int:
        flags: int = osdp_sys.FLAG_ENABLE_NOTIFICATION
        # libosdp's CP has no install-mode flag: without ENFORCE_SECURE it falls back to
        # the default key (SCBK-D) and then sets the reader's key (KEYSET); with it, never.
        if self.enforce_secure and not self.install_mode:
            flags |= osdp_sys.FLAG_ENFORCE_SECURE
        return flags

    def info(self, channel: object) -> dict[str, Any]:
        """The pd_info dict of ``osdp_sys.ControlPanel`` (the id fields matter to a PD only)."""
        return {
            "name": self.name,
            "address": self.address,
            "flags": self.flags,
            "scbk": self.scbk,
            "channel": channel,
            "version": 1,
            "model": 1,
            "vendor_code": 0,
            "serial_number": 0,
            "firmware_version": 0,
        }


@dataclass(frozen=True, slots=True)
class PdEvent:
    """A card read, key press or status report (libosdp's dict) from reader ``index``."""

    index: int
    data: dict[str, Any]
    t: float  # time.perf_counter() when libosdp handed it over


@dataclass(frozen=True, slots=True)
class PdState:
    """Reader ``index`` went online/offline or its secure channel changed."""

    index: int
    online: bool
    sc_active: bool
    default_key: bool  # the secure channel runs on SCBK-D (install mode)
    reason: str = ""  # why it is offline
    sc_refused: bool = False  # offline because the secure channel handshake failed


@dataclass(frozen=True, slots=True)
class PdKeyed:
    """Reader ``index`` accepted its new key (KEYSET, install mode)."""

    index: int


@dataclass(frozen=True, slots=True)
class PanelStopped:
    """The refresh thread ended (``error`` when it crashed)."""

    error: BaseException | None


PanelMessage = PdEvent | PdState | PdKeyed | PanelStopped


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """How a command ended: ``reason`` is offline, timeout, nak, refused, flushed,
    aborted or stopped when it failed."""

    ok: bool
    reason: str = ""
    sent_at: float | None = None  # perf_counter() when its first step went to libosdp
