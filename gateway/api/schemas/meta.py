"""The public description of the site that the login page needs."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["MetaOut"]


class MetaOut(BaseModel):
    site_id: str
    site_name: str
    timezone: str = Field(description="IANA time zone every local time is shown in.")
    default_locale: str = Field(description="The page's language until a user picks one.")
    locales: list[str]
    version: str
