"""One router per resource, mounted under /api/v1 by :func:`gateway.api.app.create_app`.

Every module of this package exports ``router``; :func:`routers` collects
them in name order, so adding a resource touches no other file.
"""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter

__all__ = ["routers"]


def routers() -> list[APIRouter]:
    out: list[APIRouter] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        router = getattr(module, "router", None)
        if not isinstance(router, APIRouter):
            raise TypeError(f"{module.__name__} has no APIRouter named 'router'")
        out.append(router)
    return out
