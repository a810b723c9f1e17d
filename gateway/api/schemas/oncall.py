"""Who is on duty now, per team, as the control room sees it.

``phone`` is the person's mobile number, masked for roles that do not call
people (viewer: ``138****0001``); null when the person has none.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = ["OnCallOut", "OnDutyOut", "TeamOnCallOut"]


class OnDutyOut(BaseModel):
    id: str
    name: str
    phone: str | None = Field(description="Mobile number; masked for the viewer role.")
    certifications: list[str]


class TeamOnCallOut(BaseModel):
    team: str
    name: str = Field(description="Display name of the team (its id when the site gives none).")
    on_duty: list[OnDutyOut] = Field(description="In roster order, leave applied.")
    next_handover: datetime | None = Field(
        description="Next shift start (UTC); null for a team without a roster (always on duty)."
    )


class OnCallOut(BaseModel):
    at: datetime = Field(description="The moment the answer is for (UTC).")
    teams: list[TeamOnCallOut]
