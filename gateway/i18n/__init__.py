"""The translation catalogue: every user-facing string, in zh-CN and en.

Strings live in ``<locale>.json`` beside this file, keyed by a dotted id,
and in fragments ``<domain>.<locale>.json`` (``alarms.en.json``) that one
package owns; a key defined twice is an error.
``t("demo.title", "zh-CN", site="…")`` formats with ``str.format`` fields. A
key missing from a locale falls back to English, then to the key itself, so
a gap shows up on screen instead of crashing; a test keeps the catalogues
in step.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any

__all__ = ["LOCALES", "catalogue", "t"]

LOCALES = ("zh-CN", "en")


@functools.cache
def catalogue(locale: str) -> dict[str, str]:
    if locale not in LOCALES:
        raise ValueError(f"unknown locale {locale!r}; use one of {', '.join(LOCALES)}")
    here = files(__name__)
    data: dict[str, str] = json.loads(here.joinpath(f"{locale}.json").read_text(encoding="utf-8"))
    suffix = f".{locale}.json"
    for part in sorted(
        (p for p in here.iterdir() if p.name.endswith(suffix)), key=lambda p: p.name
    ):
        fragment: dict[str, str] = json.loads(part.read_text(encoding="utf-8"))
        twice = sorted(set(fragment) & set(data))
        if twice:
            raise ValueError(f"{part.name}: keys already defined elsewhere: {', '.join(twice)}")
        data.update(fragment)
    return data


def t(key: str, locale: str = "en", /, **fields: Any) -> str:
    template = catalogue(locale).get(key) or catalogue("en").get(key) or key
    return template.format(**fields) if fields else template
