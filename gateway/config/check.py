"""``gateway check site.yaml``: every problem with file:line, or a one-line summary.

Exit codes: 0 valid, 1 problems found, 2 the site file cannot be read.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from gateway.config.loader import LoadedSite, load_site
from gateway.config.problems import ConfigError, UnreadableConfigError, format_problems
from gateway.registry import DriverRegistry

__all__ = ["run_check", "summary"]


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary(site: LoadedSite) -> str:
    """``site demo-estate "Demo Estate" (Asia/Shanghai): 6 devices, ...``.

    A value that came from an environment variable is shown as ``***``.
    """
    cfg = site.config

    def shown(path: str, value: str) -> str:
        return "***" if path in site.from_env else value

    head = f"site {shown('site.id', cfg.site.id)}"
    if cfg.site.name:
        head += f' "{shown("site.name", cfg.site.name)}"'
    head += f" ({shown('site.timezone', cfg.site.timezone)})"
    enabled = [d for d in cfg.drivers if d.enabled]
    kinds = Counter(d.type for d in enabled)
    drivers = _count(len(enabled), "driver")
    if kinds:
        drivers += " (" + ", ".join(f"{t} x{n}" for t, n in sorted(kinds.items())) + ")"
    disabled = len(cfg.drivers) - len(enabled)
    if disabled:
        drivers += f", {disabled} disabled"
    parts = [
        _count(len(cfg.devices), "device"),
        _count(len(site.points), "point"),
        drivers,
        _rules(site),
    ]
    sink = cfg.storage.timeseries.sink.type
    return f"{head}: {', '.join(parts)}; time series -> {sink}"


def _rules(site: LoadedSite) -> str:
    """'5 rules', or '43 rules (40 profile defaults)' when drivers ship defaults
    (the built-in offline rule counts as a rule, not a profile default)."""
    defaults = sum(1 for r in site.rules if r.origin not in ("site", "default"))
    text = _count(len(site.rules), "rule")
    return f"{text} ({defaults} profile defaults)" if defaults else text


def run_check(
    path: Path,
    registry: DriverRegistry | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """Check a site file; return (exit code, text to print).

    File names in the text are relative to the site file's directory.
    """
    base_dir = Path(os.path.abspath(path)).parent
    try:
        site = load_site(Path(path), registry, env)
    except UnreadableConfigError as e:
        return 2, format_problems(e.problems, base_dir)
    except ConfigError as e:
        return 1, format_problems(e.problems, base_dir)
    return 0, summary(site)
