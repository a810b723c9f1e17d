"""Config models of the on-call side of notification: people, teams, rosters,
escalation policies and acknowledgement links (the site file's ``oncall:``).

Everything is checked at load: a roster naming an unknown person, a policy
level naming an unknown team, levels out of order, a shift start that is not
``HH:MM`` are errors that name the place and say what to do. Channel names
(``channels:`` of a level) belong to ``notify.channels``; the site loader
checks them against that block with :meth:`OnCallConfig.channel_names`.
"""

from __future__ import annotations

import enum
import re
from datetime import date, datetime, time
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from gateway.driver import StrictModel

__all__ = [
    "DEFAULT_CERTIFICATIONS",
    "DEFAULT_ROUTES",
    "LevelConfig",
    "NotifyWho",
    "OnCallConfig",
    "OverrideConfig",
    "PersonConfig",
    "PolicyConfig",
    "RosterConfig",
    "ShiftConfig",
    "TeamConfig",
    "default_policy",
]

_ID = r"^[A-Za-z0-9_-]+$"

DEFAULT_CERTIFICATIONS: dict[str, str] = {
    "electrical": "hv_electrician",
    "fire": "fire_control_operator",
}
"""Which certification level 1 needs per alarm category (GB/T and local rules:
HV switching only by a certified electrician; the fire control room only by a
certified operator)."""

DEFAULT_ROUTES: dict[str, str] = {
    "electrical": "electrical",
    "water": "plumbing",
    "fire": "fire",
    "security": "security",
    "it": "security",
    "lift": "electrical",
    "hvac": "electrical",
}
"""Which team serves an alarm route or category when ``routes:`` does not say.
Entries naming a team the site does not define are ignored."""


class PersonConfig(StrictModel):
    name: str = Field(description="Display name, e.g. '张伟'.")
    locale: Literal["zh-CN", "en"] = Field(
        "zh-CN", description="Language of the messages and pages this person gets."
    )
    email: str = Field("", description="E-mail address.")
    mobile: str = Field("", description="Mobile number for SMS and robot @-mentions, e.g. '+86…'.")
    wecom_userid: str = Field("", description="WeCom (企业微信) user id.")
    dingtalk_userid: str = Field("", description="DingTalk (钉钉) user id.")
    feishu_open_id: str = Field("", description="Feishu/Lark open_id.")
    certifications: list[str] = Field(
        default_factory=list,
        description="Certifications held, e.g. ['hv_electrician', 'fire_control_operator'].",
    )

    def addresses(self) -> dict[str, str]:
        """The non-empty contact addresses, by kind (what channels look up)."""
        pairs = {
            "email": self.email,
            "mobile": self.mobile,
            "wecom_userid": self.wecom_userid,
            "dingtalk_userid": self.dingtalk_userid,
            "feishu_open_id": self.feishu_open_id,
        }
        return {k: v for k, v in pairs.items() if v}


class ShiftConfig(StrictModel):
    name: str = Field(description="Shift name, e.g. 'day' or 'night'.", pattern=_ID)
    start: str = Field(description="Local start time 'HH:MM' in the site time zone; handover.")
    hours: float = Field(12, gt=0, le=24, description="Length of the shift in hours.")

    @field_validator("start")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        try:
            parsed = time.fromisoformat(v)
        except ValueError:
            raise ValueError(f"shift start {v!r} is not a time 'HH:MM', e.g. '08:00'") from None
        if parsed.tzinfo is not None:
            raise ValueError("shift start takes no time zone: the site's time zone applies")
        return v

    @property
    def start_time(self) -> time:
        return time.fromisoformat(self.start)


class OverrideConfig(StrictModel):
    """Leave (or a swap): ``person`` is off duty between ``from`` and ``until``;
    ``replaced_by`` serves their slots meanwhile (nobody when empty)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    person: str = Field(description="Who is away (a person id).")
    from_: date | datetime = Field(
        alias="from",
        description="Start, local site time: a date (from 00:00) or '2026-03-02 08:00'.",
    )
    until: date | datetime = Field(
        description="End, local site time: a date (that whole day included) or a date and time.",
    )
    replaced_by: str | None = Field(None, description="Who serves instead (a person id).")
    reason: str = Field("", description="Free text, e.g. 'annual leave'.")

    def span(self) -> tuple[datetime, datetime]:
        """Naive local [start, end) of the override."""
        start = (
            self.from_ if isinstance(self.from_, datetime) else datetime.combine(self.from_, time())
        )
        if isinstance(self.until, datetime):
            end = self.until
        else:
            end = datetime.combine(date.fromordinal(self.until.toordinal() + 1), time())
        return start, end

    @field_validator("from_", "until")
    @classmethod
    def _local(cls, v: date | datetime) -> date | datetime:
        if isinstance(v, datetime) and v.tzinfo is not None:
            raise ValueError("give local site time without a UTC offset, e.g. '2026-03-02 08:00'")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> OverrideConfig:
        start, end = self.span()
        if end <= start:
            raise ValueError(f"override of {self.person}: 'until' must be after 'from'")
        if self.replaced_by == self.person:
            raise ValueError(f"override of {self.person}: replaced_by is the same person")
        return self


class RosterConfig(StrictModel):
    """Who of a team is on duty when.

    The day is cut into ``shifts``; the shift slots, counted from the first
    shift of ``start_date`` (day by day, shift by shift in start-time order),
    take the entries of ``rotation`` in turn, cycling. Two 12 h shifts with
    ``rotation: [[a], [b], [c], [d]]`` give a the day and b the night of the
    first day, c and d the second, a and b again the third.
    """

    shifts: list[ShiftConfig] = Field(
        default_factory=lambda: [
            ShiftConfig(name="day", start="08:00", hours=12),
            ShiftConfig(name="night", start="20:00", hours=12),
        ],
        description="The shifts of a day; handover exactly at each start (site time zone).",
    )
    rotation: list[list[str]] = Field(
        default_factory=list,
        description="People (person ids) of each shift slot in turn, cycling from start_date.",
    )
    start_date: date = Field(
        date(2026, 1, 1), description="Local date whose first shift takes rotation[0]."
    )
    overrides: list[OverrideConfig] = Field(
        default_factory=list, description="Leave and swaps, applied over the rotation."
    )

    @model_validator(mode="after")
    def _shifts(self) -> RosterConfig:
        if not self.shifts:
            raise ValueError("a roster needs at least one shift")
        names = [s.name for s in self.shifts]
        if len(set(names)) != len(names):
            raise ValueError(f"shift names must be unique, got {names}")
        if any(not slot for slot in self.rotation):
            raise ValueError("every rotation entry needs at least one person")
        return self

    def ordered_shifts(self) -> list[ShiftConfig]:
        return sorted(self.shifts, key=lambda s: s.start_time)


class TeamConfig(StrictModel):
    members: list[str] = Field(description="Person ids of the team (notified by 'notify: team').")
    roster: RosterConfig | None = Field(
        None, description="Who is on duty when; without one every member is always on duty."
    )


class NotifyWho(enum.StrEnum):
    ON_DUTY = "on_duty"  # the team's people on duty now
    TEAM = "team"  # every member of the team
    PEOPLE = "people"  # the people named in the level


class LevelConfig(StrictModel):
    after_min: float = Field(
        ge=0, description="Minutes after the alarm (unacknowledged) when this level is called."
    )
    notify: NotifyWho = Field(
        NotifyWho.ON_DUTY, description="on_duty (who is on shift), team (all members) or people."
    )
    team: str | None = Field(
        None, description="Team to call; default: the team serving the alarm's route."
    )
    people: list[str] = Field(default_factory=list, description="Person ids, for 'notify: people'.")
    channels: list[str] = Field(
        default_factory=list,
        description=(
            "Channel names of notify.channels, tried in order (the next one when one fails); "
            "default: oncall.default_channels."
        ),
    )
    require_certification: bool | None = Field(
        None,
        description=(
            "Only people holding the certification the category needs "
            "(certifications_required); default: true for 'on_duty', false otherwise."
        ),
    )

    @model_validator(mode="after")
    def _people(self) -> LevelConfig:
        if self.notify is NotifyWho.PEOPLE and not self.people:
            raise ValueError("'notify: people' needs a 'people:' list")
        if self.notify is not NotifyWho.PEOPLE and self.people:
            raise ValueError("'people:' is only used with 'notify: people'")
        return self

    @property
    def certified_only(self) -> bool:
        if self.require_certification is None:
            return self.notify is NotifyWho.ON_DUTY
        return self.require_certification


class PolicyConfig(StrictModel):
    levels: list[LevelConfig] = Field(
        description="Escalation levels in order of after_min; level 1 is usually after_min 0.",
        min_length=1,
    )
    repeat_every_min: float | None = Field(
        5,
        gt=0,
        description="After the last level, remind everyone called so far this often (minutes).",
    )
    max_repeats: int = Field(3, ge=0, description="How many reminders at most.")

    @field_validator("levels")
    @classmethod
    def _ascending(cls, levels: list[LevelConfig]) -> list[LevelConfig]:
        for i in range(1, len(levels)):
            if levels[i].after_min < levels[i - 1].after_min:
                raise ValueError(
                    f"level {i + 1} (after_min {levels[i].after_min}) comes before "
                    f"level {i} (after_min {levels[i - 1].after_min}); order levels by after_min"
                )
        return levels


def default_policy() -> PolicyConfig:
    """The site rules we serve: on duty at once, the team after 3 minutes
    (dispatch within 3 minutes), management after 10."""
    return PolicyConfig(
        levels=[
            LevelConfig(after_min=0, notify=NotifyWho.ON_DUTY),
            LevelConfig(after_min=3, notify=NotifyWho.TEAM),
            LevelConfig(after_min=10, notify=NotifyWho.TEAM, team="management"),
        ]
    )


class OnCallConfig(StrictModel):
    people: dict[str, PersonConfig] = Field(
        default_factory=dict, description="Everyone who can be called, by person id."
    )
    teams: dict[str, TeamConfig] = Field(
        default_factory=dict,
        description="Teams by id: security, electrical, plumbing, fire, management, ...",
    )
    certifications_required: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_CERTIFICATIONS),
        description="Certification level-1 people must hold, by alarm category.",
    )
    routes: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ROUTES),
        description="Team serving an alarm route or category (route first, then category).",
    )
    policies: dict[str, PolicyConfig] = Field(
        default_factory=lambda: {"default": default_policy()},
        description="Escalation policy by route (or category); 'default' for the rest.",
    )
    default_channels: list[str] = Field(
        default_factory=list, description="Channel chain of levels that name none."
    )
    public_url: str = Field(
        "http://127.0.0.1:8080",
        description="Base URL people reach the gateway at; acknowledgement links start with it.",
    )
    ack_link_ttl_h: float = Field(
        24, gt=0, le=24 * 30, description="Hours an acknowledgement link stays valid."
    )
    digest_window_s: float = Field(
        60,
        gt=0,
        description="During an alarm flood, messages to one person are grouped per this window.",
    )

    @field_validator("people", "teams", "policies")
    @classmethod
    def _ids(cls, v: dict[str, object]) -> dict[str, object]:
        for key in v:
            if not re.fullmatch(_ID, key):
                raise ValueError(f"id {key!r} may use letters, digits, '_' and '-' only")
        return v

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"public_url {v!r} must start with http:// or https://")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _references(self) -> OnCallConfig:
        def known(pid: str | None, where: str) -> None:
            if pid is not None and pid not in self.people:
                raise ValueError(f"{where}: unknown person {pid!r}; add it under oncall.people")

        for tid, team in self.teams.items():
            for pid in team.members:
                known(pid, f"teams.{tid}.members")
            if team.roster is not None:
                for i, slot in enumerate(team.roster.rotation):
                    for pid in slot:
                        known(pid, f"teams.{tid}.roster.rotation[{i}]")
                for i, ov in enumerate(team.roster.overrides):
                    known(ov.person, f"teams.{tid}.roster.overrides[{i}].person")
                    known(ov.replaced_by, f"teams.{tid}.roster.overrides[{i}].replaced_by")
        if "routes" in self.model_fields_set:
            for key, tid in self.routes.items():
                if tid not in self.teams:
                    raise ValueError(
                        f"routes.{key}: unknown team {tid!r}; add it under oncall.teams"
                    )
        if "default" not in self.policies:
            raise ValueError("policies needs a 'default' policy for routes without their own")
        for key, policy in self.policies.items():
            for i, level in enumerate(policy.levels, start=1):
                where = f"policies.{key}.levels[{i}]"
                for pid in level.people:
                    known(pid, where)
                # The built-in default names 'management': a site without such a team
                # simply has no level 3; a team named by the site itself must exist.
                explicit = "policies" in self.model_fields_set
                if explicit and level.team is not None and level.team not in self.teams:
                    raise ValueError(f"{where}: unknown team {level.team!r}")
                if self.people and not (level.channels or self.default_channels):
                    raise ValueError(
                        f"{where}: no channels; set 'channels:' or oncall.default_channels"
                    )
        return self

    def team_for(self, route: str, category: str) -> str | None:
        """The team serving an alarm: by route, then by category (None: no team)."""
        for key in (route, category):
            tid = self.routes.get(key) if key else None
            if tid is not None and tid in self.teams:
                return tid
        return None

    def policy_for(self, route: str, category: str) -> tuple[str, PolicyConfig]:
        """(key, policy) for an alarm: by route, then by category, then 'default'."""
        for key in (route, category):
            if key and key in self.policies:
                return key, self.policies[key]
        return "default", self.policies["default"]

    def channel_names(self) -> set[str]:
        """Every channel name the policies use (to check against notify.channels)."""
        names = set(self.default_channels)
        for policy in self.policies.values():
            for level in policy.levels:
                names.update(level.channels)
        return names
