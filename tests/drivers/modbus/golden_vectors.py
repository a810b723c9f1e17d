"""Reading the golden codec vectors (``golden/*.json``), shared by the codec and RTU tests."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from drivers.modbus.datatypes import ValueSpec

__all__ = ["GOLDEN", "expected", "files", "registers", "same", "spec", "vectors"]

GOLDEN = Path(__file__).parent / "golden"


def files() -> list[Path]:
    return sorted(GOLDEN.glob("*.json"))


def vectors(path: Path) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(path.read_text())["vectors"]
    return loaded


def registers(vector: dict[str, Any]) -> list[int]:
    """The vector's registers (written in hex strings or integers)."""
    return [int(r, 16) if isinstance(r, str) else int(r) for r in vector["registers"]]


def expected(vector: dict[str, Any]) -> Any:
    """The decoded value; floats such as 'nan' and 'inf' are written as strings."""
    value = vector["expected"]
    if vector["type"].startswith("float") and isinstance(value, str):
        return float(value)
    return value


def spec(vector: dict[str, Any]) -> ValueSpec:
    options = dict(vector.get("options", {}))
    if "labels" in options:
        options["labels"] = {int(k): v for k, v in options["labels"].items()}
    return ValueSpec(type=vector["type"], order=vector["order"], **options)


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN, -0.0 apart from 0.0, and bool apart from int."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b
