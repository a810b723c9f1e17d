"""The page behind an acknowledgement link: ``GET /ack/{token}`` shows, ``POST`` acknowledges.

Chat apps and mail scanners fetch links to preview them, so a GET never
acknowledges: it shows a small mobile page with the alarm and one big
button that POSTs back to the same address. The POST redeems the link (once)
and acknowledges through the ``acknowledge(alarm_id, person, note, origin)``
callable the runtime passes in (the alarm manager's acknowledge, as a
Command). Pages speak the person's language (``?lang=en`` or ``zh-CN``
overrides). A tampered link gets 403, an expired one 410, a used one 409;
a store that is down gets 503 and the link stays usable.

No form library is needed: the only form field (``note``) is read from the
urlencoded body by hand.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gateway.i18n import LOCALES, t
from gateway.model import AlarmState
from gateway.notify.acklink import AckLinks, LinkError, LinkExpired, LinkInvalid, LinkUsed
from gateway.notify.roster import Roster
from gateway.notify.templates import format_value
from gateway.storage.eventstore import EventStoreError

__all__ = ["AckRejected", "Acknowledge", "AlarmLookup", "ack_router"]

log = logging.getLogger(__name__)

Acknowledge = Callable[[str, str, str, str], Awaitable[None]]
"""``acknowledge(alarm_id, person, note, origin)``."""
AlarmLookup = Callable[[str], Awaitable[Mapping[str, Any] | None]]
"""The AlarmView of an alarm id, or None when there is no such alarm any more."""

_MAX_NOTE = 500
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
_DONE_STATES = {AlarmState.ACKNOWLEDGED.value, AlarmState.NORMAL.value}


class AckRejected(Exception):
    """The alarm manager refused the acknowledgement; ``reason`` is shown to the person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_STYLE = """
body{font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;
background:#f4f5f7;color:#1b1d21}main{max-width:32rem;margin:0 auto;padding:1.25rem}
h1{font-size:1.4rem}.card{background:#fff;border-radius:.75rem;padding:1rem;margin:1rem 0;
box-shadow:0 1px 3px rgba(0,0,0,.12)}dt{color:#5f6368;font-size:.85rem}dd{margin:0 0 .6rem}
button{width:100%;font-size:1.3rem;padding:1.1rem;border:0;border-radius:.75rem;
background:#c62828;color:#fff}.bad h1{color:#c62828}.ok h1{color:#2e7d32}small{color:#5f6368}
"""


def _page(locale: str, title: str, body: str, status: int, tone: str = "") -> HTMLResponse:
    doc = (
        f'<!doctype html><html lang="{html.escape(locale)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{html.escape(title)}</title>'
        f'<style>{_STYLE}</style></head><body><main class="{tone}">'
        f"<h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(doc, status_code=status, headers=_HEADERS)


def ack_router(
    links: AckLinks,
    acknowledge: Acknowledge,
    *,
    roster: Roster,
    lookup: AlarmLookup | None = None,
    timezone: str = "Asia/Shanghai",
    default_locale: str = "zh-CN",
    prefix: str = "/ack",
) -> APIRouter:
    """The router for ``{prefix}/{token}``; mount it on the gateway's FastAPI app."""
    if default_locale not in LOCALES:
        raise ValueError(f"unknown locale {default_locale!r}")
    tz = ZoneInfo(timezone)
    router = APIRouter(prefix=prefix, tags=["acknowledgement links"])

    def locale_for(person: str | None, lang: str | None) -> str:
        if lang in LOCALES:
            return str(lang)
        if person is not None and person in roster.people:
            return roster.people[person].locale
        return default_locale

    def local(ts_ns: int) -> str:
        return datetime.fromtimestamp(ts_ns / 1e9, tz=tz).strftime("%Y-%m-%d %H:%M")

    def p(text: str) -> str:
        return f"<p>{html.escape(text)}</p>"

    def error_page(exc: LinkError, lang: str | None) -> HTMLResponse:
        claims = exc.claims
        loc = locale_for(claims.person if claims else None, lang)
        if isinstance(exc, LinkExpired) and claims is not None:
            status, key, fields = 410, "expired", {"time": local(claims.expires_ts)}
        elif isinstance(exc, LinkUsed):
            status, key, fields = 409, "used", {"time": local(exc.used_ts)}
        else:
            status, key, fields = 403, "invalid", {}
        text = t(f"oncall.ack.{key}.text", loc, **fields)
        return _page(loc, t(f"oncall.ack.{key}.title", loc), p(text), status, "bad")

    def unavailable(loc: str) -> HTMLResponse:
        title = t("oncall.ack.unavailable.title", loc)
        return _page(loc, title, p(t("oncall.ack.unavailable.text", loc)), 503, "bad")

    def summary(view: Mapping[str, Any], alarm_id: str, loc: str) -> str:
        title = str(view.get("description") or view.get("rule") or "") or t(
            "oncall.ack.unknown_alarm", loc, alarm=alarm_id
        )
        rows: list[tuple[str, str]] = []
        priority = str(view.get("priority") or "")
        if priority:
            rows.append(("", t(f"notify.priority.{priority}", loc)))
        device = str(view.get("device_name") or view.get("device") or view.get("source") or "")
        location = str(view.get("location") or "")
        where = t("notify.where", loc, device=device, location=location) if location else device
        rows.append((t("notify.label.where", loc), where or location))
        rows.append((t("notify.label.value", loc), format_value(view, loc)))
        ts = view.get("ts")
        if isinstance(ts, int) and ts > 0:
            rows.append((t("notify.label.time", loc), local(ts)))
        state = str(view.get("state") or "")
        if state:
            rows.append((t("notify.label.state", loc), t(f"notify.state.{state}", loc)))
        items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in rows if v)
        return f'<div class="card"><h2>{html.escape(title)}</h2><dl>{items}</dl></div>'

    @router.get("/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def show(token: str, lang: str | None = None) -> HTMLResponse:
        try:
            claims = await links.inspect(token)
        except LinkError as exc:
            return error_page(exc, lang)
        except EventStoreError:
            return unavailable(locale_for(None, lang))
        loc = locale_for(claims.person, lang)
        person = roster.people.get(claims.person)
        body = p(t("oncall.ack.greeting", loc, name=person.name)) if person else ""
        view: Mapping[str, Any] | None = {"id": claims.alarm_id}
        if lookup is not None:
            view = await lookup(claims.alarm_id)
        if view is None:
            return _page(loc, t("oncall.ack.title", loc), body + p(t("oncall.ack.gone", loc)), 200)
        body += summary(view, claims.alarm_id, loc)
        if str(view.get("state") or "") in _DONE_STATES:
            body += p(t("oncall.ack.already", loc))
        else:
            action = f"?lang={loc}" if lang in LOCALES else ""
            body += (
                f'<form method="post" action="{html.escape(action)}">'
                f"<p><small>{html.escape(t('oncall.ack.hint', loc))}</small></p>"
                f"<button type=submit>{html.escape(t('oncall.ack.button', loc))}</button></form>"
            )
        expires = t("oncall.ack.expires", loc, time=local(claims.expires_ts))
        body += f"<p><small>{html.escape(expires)}</small></p>"
        return _page(loc, t("oncall.ack.title", loc), body, 200)

    @router.post("/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def confirm(token: str, request: Request, lang: str | None = None) -> HTMLResponse:
        host = request.client.host if request.client else ""
        origin = f"link {host}".strip()
        try:
            alarm_id, person = await links.redeem(token, origin)
        except LinkError as exc:
            return error_page(exc, lang)
        except EventStoreError:
            return unavailable(locale_for(None, lang))
        loc = locale_for(person, lang)
        form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
        note = (form.get("note") or [""])[0].strip()[:_MAX_NOTE] or t("oncall.ack.note", loc)
        try:
            await acknowledge(alarm_id, person, note, origin)
        except AckRejected as exc:
            text = t("oncall.ack.refused.text", loc, reason=exc.reason)
            return _page(loc, t("oncall.ack.refused.title", loc), p(text), 409, "bad")
        except EventStoreError as exc:
            log.warning("acknowledgement of %s by link not recorded: %s", alarm_id, exc)
            await _release(links, token)
            return unavailable(loc)
        except BaseException:
            await _release(links, token)  # not acknowledged: the link must work again
            raise
        log.info("alarm %s acknowledged by %s with a link (%s)", alarm_id, person, origin)
        name = roster.people[person].name if person in roster.people else person
        text = t("oncall.ack.done.text", loc, name=name)
        return _page(loc, t("oncall.ack.done.title", loc), p(text), 200, "ok")

    return router


async def _release(links: AckLinks, token: str) -> None:
    try:
        await links.release(token)
    except (EventStoreError, LinkInvalid) as exc:
        log.error("could not release link after a failed acknowledgement: %s", exc)
