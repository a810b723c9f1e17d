"""Config model of the OSDP driver (``type: osdp``): one control panel per bus.

One block is one RS-485 bus (a serial port, or a serial device server
reached over TCP, or a reader that listens on TCP itself) with up to 126
readers on it, each at its own OSDP address. Secure channel keys never
appear in the site file: ``key_env`` names the environment variable that
holds the reader's SCBK (32 hex characters), read when the driver starts.

Secure channel policy, checked here so a site cannot end up half-secure by
accident:

* ``key_env`` + ``enforce_secure: true`` (the default): the reader must
  open the secure channel with that key; a reader with another key (or a
  factory-default one) is refused and reported offline with the reason.
* ``install_mode: true`` (needs ``key_env``): commissioning. libosdp then
  falls back to the default key SCBK-D and gives the reader its key
  (KEYSET); the driver warns while this is on. Turn it off afterwards.
* no key: ``enforce_secure: false`` must be written out (a reader without
  secure channel sends card numbers in clear on the wire).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import Field, model_validator

from drivers.cards.wiegand import Wiegand37
from gateway.driver import DriverConfig, StrictModel

__all__ = [
    "OsdpConfigError",
    "OsdpDriverConfig",
    "OsdpReaderConfig",
    "OsdpSerialConfig",
    "OsdpTcpConfig",
]

_ENV = r"^[A-Za-z_][A-Za-z0-9_]*$"


class OsdpConfigError(ValueError):
    """A reader's key cannot be used (variable unset, not 32 hex characters)."""


class OsdpSerialConfig(StrictModel):
    """The RS-485 line (8 data bits, no parity, 1 stop bit, as OSDP requires)."""

    port: str = Field(min_length=1, description="Device path, e.g. /dev/ttyUSB0.")
    baud: Literal[9600, 19200, 38400, 57600, 115200, 230400] = Field(
        9600, description="Baud rate; every reader on the bus must use the same."
    )


class OsdpTcpConfig(StrictModel):
    """A serial device server in raw TCP mode (or a reader listening on TCP)."""

    host: str = Field(min_length=1, description="Host name or address of the converter.")
    port: int = Field(ge=1, le=65535, description="Its raw TCP port (often 4001).")
    connect_timeout_s: float = Field(5.0, gt=0, description="Give up a connect attempt after.")


class OsdpReaderConfig(StrictModel):
    """One reader (an OSDP peripheral device) on the bus."""

    device: str = Field(
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The reader's device id (kind card_reader): the source of its events.",
    )
    address: int = Field(ge=0, le=126, description="Its OSDP address on the bus (0-126).")
    key_env: str | None = Field(
        None,
        pattern=_ENV,
        description="Environment variable holding its secure channel key (SCBK, 32 hex "
        "characters). Never put the key itself in the file.",
    )
    enforce_secure: bool = Field(
        True,
        description="Refuse the reader unless it opens the secure channel with its key "
        "(no clear-text fallback, no default key). Set false only for a reader without key.",
    )
    install_mode: bool = Field(
        False,
        description="Commissioning: accept a factory-default reader on the default key "
        "(SCBK-D) and give it its key. Warned about while on; turn it off afterwards.",
    )
    wiegand37: Wiegand37 = Field(
        "H10304",
        description="37-bit cards are H10304 (facility 16 + card 19 bits) or H10302 (35-bit "
        "card number); the UID is the same.",
    )

    @model_validator(mode="after")
    def _policy(self) -> OsdpReaderConfig:
        if self.install_mode and self.key_env is None:
            raise ValueError(
                f"reader {self.device}: install_mode gives the reader the key of key_env; "
                "set key_env"
            )
        if self.key_env is None and self.enforce_secure:
            raise ValueError(
                f"reader {self.device} has no key_env: give it a key (an environment variable "
                "with 32 hex characters), or write enforce_secure: false for a reader "
                "without secure channel"
            )
        if self.key_env is not None and not self.enforce_secure and not self.install_mode:
            raise ValueError(
                f"reader {self.device}: with a key, enforce_secure: false would let libosdp "
                "fall back to clear text and to the default key (that is install mode); "
                "keep enforce_secure: true, or set install_mode: true while commissioning"
            )
        return self

    def key(self, env: Mapping[str, str] | None = None) -> bytes | None:
        """The SCBK from the environment (None without ``key_env``); raises OsdpConfigError."""
        if self.key_env is None:
            return None
        env = os.environ if env is None else env
        text = env.get(self.key_env)
        if not text:
            raise OsdpConfigError(
                f"reader {self.device}: environment variable {self.key_env} is not set"
            )
        try:
            key = bytes.fromhex(text.strip())
        except ValueError:
            key = b""
        if len(key) != 16:
            raise OsdpConfigError(
                f"reader {self.device}: {self.key_env} must hold 32 hex characters (16 bytes)"
            )
        return key


class OsdpDriverConfig(DriverConfig):
    """One RS-485 bus of OSDP readers; the gateway is its control panel (one per bus)."""

    type: Literal["osdp"] = Field(
        description="OSDP card readers (IEC 60839-11-5) on one RS-485 bus, as control panel."
    )
    serial: OsdpSerialConfig | None = Field(None, description="The bus is on this serial port.")
    tcp: OsdpTcpConfig | None = Field(
        None, description="The bus is behind a serial device server (raw TCP)."
    )
    readers: list[OsdpReaderConfig] = Field(
        min_length=1, description="The readers on this bus (one OSDP address each)."
    )
    command_timeout_s: float = Field(
        2.0,
        gt=0,
        le=30,
        description="A command the reader has not acknowledged after this long fails "
        "(and is dropped: a door must not open late).",
    )
    pin_timeout_s: float = Field(
        5.0, gt=0, description="A keypad PIN not finished with '#' is forgotten after this."
    )
    grant_seconds: float = Field(
        3.0, gt=0, le=60, description="How long the LED shows green (or red) after a decision."
    )
    silence_s: float = Field(
        2.0,
        ge=0.5,
        description="Report a reader offline when it has not answered a poll for this long "
        "(libosdp alone takes ~8 s).",
    )
    reprobe_max_s: float = Field(
        5.0,
        ge=1,
        description="Longest wait between attempts to bring an offline reader back (libosdp "
        "alone waits 300 s).",
    )
    reconnect_max_s: float = Field(
        10.0, ge=0.5, description="Longest wait between reconnects of the serial port / TCP."
    )

    @model_validator(mode="after")
    def _check(self) -> OsdpDriverConfig:
        if (self.serial is None) == (self.tcp is None):
            raise ValueError("give exactly one of serial or tcp")
        seen_dev: set[str] = set()
        seen_addr: set[int] = set()
        for r in self.readers:
            if r.device in seen_dev:
                raise ValueError(f"reader {r.device} appears twice")
            if r.address in seen_addr:
                raise ValueError(f"two readers at OSDP address {r.address} on one bus")
            seen_dev.add(r.device)
            seen_addr.add(r.address)
        return self

    @property
    def bus_name(self) -> str:
        if self.serial is not None:
            return self.serial.port
        assert self.tcp is not None
        return f"{self.tcp.host}:{self.tcp.port}"

    def devices(self) -> Iterable[str]:
        return [r.device for r in self.readers]
