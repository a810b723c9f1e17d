"""The persisted state of the Modbus derived counters, and its file.

Run hours, start counts and today's energy must survive a gateway restart,
so the counters of :mod:`drivers.modbus.derived` keep everything they need
in a :class:`DerivedState`: one entry per ``(device, derived name)``, typed
by the function that owns it. The instantaneous functions (max, mean, power
factor, ...) keep nothing.

One :class:`DerivedStateStore` file per driver holds the state of all its
devices (the driver uses ``<data_dir>/modbus-<driver id>-derived.json``)::

    {"version": 1,
     "devices": {"tx1": {"pump_hours": {"function": "run_hours", "input": "pump_run",
                                        "running": true, "last_ts": 1714550400000000000,
                                        "seconds": 7200.0}}}}

Loading never stops the driver: a missing file is an empty state; a file
that cannot be read or parsed (truncated by a power cut, edited by hand, a
newer version) is renamed aside to ``<name>.corrupt-<UTC timestamp>``, a
warning is logged, an empty state is returned and :attr:`DerivedStateStore.lost`
says why, for the driver to announce as an event. Saving is atomic (a temp
file in the same directory, fsync, ``os.replace``), so a crash mid-save
leaves the previous file whole. ``save`` raises :class:`OSError` when the
disk refuses; the state stays dirty and in memory, so the next save retries.

``save`` serialises in the calling thread: call it from the thread that
feeds the engine (the file is small; a save is one write and two fsyncs).
Entries of derived points no longer configured are kept, so a point that is
commented out and back keeps its total.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Final, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DerivedEntry",
    "DerivedState",
    "DerivedStateStore",
    "EnergyState",
    "RunHoursState",
    "StartsState",
]

log = logging.getLogger("drivers.modbus.derived_state")

VERSION: Final = 1


class _Entry(BaseModel):
    """Mutable (the engine updates it in place), strict and closed when loaded."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input: str = Field(description="The input point name the state was built from.")


class RunHoursState(_Entry):
    function: Literal["run_hours"] = "run_hours"
    running: bool | None = Field(None, description="Run status of the last good sample.")
    last_ts: int | None = Field(None, description="Time of the last good sample, UTC ns.")
    seconds: float = Field(0.0, description="Total running time, seconds.")


class StartsState(_Entry):
    function: Literal["starts"] = "starts"
    running: bool | None = Field(None, description="Run status of the last good sample.")
    count: int = Field(0, description="Rising edges (stopped -> running) seen so far.")


class EnergyState(_Entry):
    function: Literal["daily_energy"] = "daily_energy"
    counter: float | None = Field(None, description="Baseline: the last good counter value.")
    day: date | None = Field(None, description="Local date (site time zone) of `today`.")
    today: float = Field(0.0, description="Energy counted on `day`, in the counter's unit.")
    last_ts: int | None = Field(None, description="Time of the last good sample, UTC ns.")


DerivedEntry: TypeAlias = Annotated[
    RunHoursState | StartsState | EnergyState, Field(discriminator="function")
]


class _StateFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: Literal[1]
    devices: dict[str, dict[str, DerivedEntry]]


class DerivedState:
    """The derived counters of all devices of one driver, keyed by device and name.

    ``dirty`` is set when anything changed since the last save (the engine
    sets it; :meth:`DerivedStateStore.save` clears it).
    """

    def __init__(self) -> None:
        self._devices: dict[str, dict[str, DerivedEntry]] = {}
        self.dirty = False

    def get(self, device: str, name: str) -> DerivedEntry | None:
        return self._devices.get(device, {}).get(name)

    def put(self, device: str, name: str, entry: DerivedEntry) -> None:
        self._devices.setdefault(device, {})[name] = entry
        self.dirty = True

    def devices(self) -> frozenset[str]:
        return frozenset(self._devices)

    def names(self, device: str) -> frozenset[str]:
        return frozenset(self._devices.get(device, {}))

    def to_json(self) -> str:
        return _StateFile(version=VERSION, devices=self._devices).model_dump_json(indent=1)

    @classmethod
    def from_json(cls, text: str | bytes) -> DerivedState:
        """Parse a state file; raises ValueError (pydantic's ValidationError) when malformed."""
        parsed = _StateFile.model_validate_json(text)
        state = cls()
        state._devices = parsed.devices
        return state


class DerivedStateStore:
    """Loads and atomically saves one :class:`DerivedState` file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lost: str | None = None  # why the last load started from empty, else None

    def load(self) -> DerivedState:
        self.lost = None
        try:
            text = self.path.read_bytes()
            return DerivedState.from_json(text)
        except FileNotFoundError:
            return DerivedState()
        except (OSError, ValueError) as e:
            reason = _reason(e)
        aside = self._move_aside()
        where = f"moved aside to {aside}" if aside else "could not be moved aside"
        self.lost = (
            f"derived state {self.path} unusable ({reason}); {where}; run hours, starts "
            "and daily energy restart from zero"
        )
        log.warning("%s", self.lost)
        return DerivedState()

    def save(self, state: DerivedState) -> None:
        self.write(state.to_json())
        state.dirty = False

    def write(self, text: str) -> None:
        """Atomically replace the file with ``text`` (blocking: run it in a thread,
        with ``text`` taken from :meth:`DerivedState.to_json` in the event loop)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.path.parent)

    def _move_aside(self) -> Path | None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 0
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        try:
            os.rename(self.path, aside)
        except OSError as e:
            log.warning("cannot move %s aside: %s", self.path, e)
            return None
        return aside


def _reason(e: OSError | ValueError) -> str:
    if isinstance(e, OSError):
        return f"{type(e).__name__}: {e.strerror or e}"
    first = str(e).strip().splitlines()
    return f"{type(e).__name__}: {' '.join(first[:3])}"


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
