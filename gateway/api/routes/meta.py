"""Public, read-only: what the login page needs before anyone logs in."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from gateway import __version__
from gateway.api.deps import Ctx
from gateway.api.schemas.meta import MetaOut
from gateway.i18n import LOCALES, catalogue

__all__ = ["router"]

router = APIRouter(tags=["meta"])


@router.get("/meta", response_model=MetaOut, summary="Site name, time zone and languages")
async def meta(ctx: Ctx) -> MetaOut:
    site = ctx.site.config.site
    return MetaOut(
        site_id=site.id,
        site_name=site.name or site.id,
        timezone=site.timezone,
        default_locale=site.locale,
        locales=list(LOCALES),
        version=__version__,
    )


@router.get(
    "/i18n/{locale}",
    response_model=dict[str, str],
    summary="The page's texts in one language",
    responses={404: {"description": "Unknown locale."}},
)
async def texts(locale: str) -> dict[str, str]:
    if locale not in LOCALES:
        raise HTTPException(404, f"unknown locale {locale!r}; use one of {', '.join(LOCALES)}")
    return {k: v for k, v in catalogue(locale).items() if k.startswith("web.")}
