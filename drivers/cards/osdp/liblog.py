"""libosdp's own log, routed into Python logging instead of stderr.

The Python binding of libosdp 3.2.9 has no log callback, but the shared
library exports ``osdp_logger_init(name, level, puts_fn)``: with a puts
function every formatted line (``OSDP: CP: PD-101: <time> osdp_cp.c:941
[WARN ] No response in 200ms; probing (1)``) comes to us instead of stderr.
We parse the level and the PD address and log the message on
``drivers.cards.osdp.libosdp``, one level lower than libosdp's (its
``ERROR`` for a reader that does not answer is our ``WARNING``: the driver
reports the reader through health already), and let each distinct message
through at most once a minute per address (a dead reader is probed every
second; the repeats go to DEBUG).

The logger is process-wide in libosdp and is copied into a context when it
is set up, so :func:`install` runs before every ``ControlPanel`` /
``PeripheralDevice`` is created. Lines are produced inside ``refresh()``,
on the thread that runs it: a panel registers a listener for its thread
(:func:`listen`) to see the messages of its own PDs (the secure channel
failures that explain why a reader went offline).
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import osdp_sys

__all__ = ["LibLine", "install", "listen", "parse_line"]

log = logging.getLogger("drivers.cards.osdp.libosdp")

_LINE = re.compile(
    r"^(?P<tag>.*?):\s+\d{4}-\d\d-\d\dT\S+\s+(?P<src>\S+:\d+)\s+\[(?P<lvl>[A-Z]+)\s*\]\s?(?P<msg>.*)$",
    re.DOTALL,
)
_PD = re.compile(r"PD-(\d+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NUMBERS = re.compile(r"\d+")
_LEVELS = {  # libosdp's syslog levels, one step down (see the module docstring)
    "EMERG": logging.CRITICAL,
    "ALERT": logging.ERROR,
    "CRIT": logging.ERROR,
    "ERROR": logging.WARNING,
    "WARN": logging.INFO,
    "NOTICE": logging.INFO,
    "INFO": logging.DEBUG,
    "DEBUG": logging.DEBUG,
}
_REPEAT_S = 60.0


@dataclass(frozen=True, slots=True)
class LibLine:
    """One parsed libosdp log line."""

    level: int  # a Python logging level (already mapped down)
    role: str  # "CP", "PD" or "" (library-wide lines)
    address: int | None  # the PD address the line is about
    message: str
    source: str = ""  # osdp_cp.c:941


def parse_line(text: str) -> LibLine:
    """Split a formatted libosdp line; unknown shapes come back whole at INFO."""
    text = _ANSI.sub("", text).strip()
    m = _LINE.match(text)
    if m is None:
        return LibLine(logging.INFO, "", None, text)
    tag = m.group("tag")
    pd = _PD.search(tag)
    parts = [p.strip() for p in tag.split(":")]
    role = "CP" if "CP" in parts else ("PD" if pd else "")
    return LibLine(
        _LEVELS.get(m.group("lvl"), logging.INFO),
        role,
        int(pd.group(1)) if pd else None,
        m.group("msg").strip(),
        m.group("src"),
    )


Listener = Callable[[LibLine], None]
_local = threading.local()
_seen: dict[tuple[str, int | None, str], float] = {}
_seen_lock = threading.Lock()


def listen(listener: Listener | None) -> None:
    """Send this thread's libosdp lines to ``listener`` too (None: stop)."""
    _local.listener = listener


def _puts(raw: bytes | None) -> int:
    try:
        line = parse_line((raw or b"").decode("utf-8", "replace"))
        if not line.message:
            return 0
        listener: Listener | None = getattr(_local, "listener", None)
        if listener is not None:
            listener(line)
        _emit(line)
    except Exception:  # a C callback must not raise
        log.exception("libosdp log line could not be handled")
    return 0


def _emit(line: LibLine) -> None:
    level = line.level
    if level < logging.ERROR:
        key = (line.role, line.address, _NUMBERS.sub("#", line.message))
        now = time.monotonic()
        with _seen_lock:
            last = _seen.get(key)
            if last is not None and now - last < _REPEAT_S:
                level = logging.DEBUG
            else:
                _seen[key] = now
                if len(_seen) > 1000:
                    _seen.clear()
    if log.isEnabledFor(level):
        who = f"{line.role} PD-{line.address}" if line.address is not None else line.role or "lib"
        log.log(level, "%s: %s", who, line.message)


_PUTS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p)
_callback = _PUTS(_puts)  # kept alive for the life of the process
_lib = ctypes.PyDLL(osdp_sys.__file__)
_lib.osdp_logger_init.argtypes = [ctypes.c_char_p, ctypes.c_int, _PUTS]
_lib.osdp_logger_init.restype = None
_OSDP_LOG_INFO, _OSDP_LOG_DEBUG = 6, 7


def install() -> None:
    """Route libosdp's log to Python logging (idempotent; call before creating a context)."""
    level = _OSDP_LOG_DEBUG if log.isEnabledFor(logging.DEBUG) else _OSDP_LOG_INFO
    _lib.osdp_logger_init(b"osdp", level, _callback)
