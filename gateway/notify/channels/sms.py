"""SMS through an HTTP gateway, described by a request template.

``{phone}`` and ``{text}`` are replaced in the URL (URL-encoded) and in the
body, escaped for its content type: JSON-escaped for ``application/json``,
form-encoded for ``application/x-www-form-urlencoded``, as they are
otherwise. Only these two fields are replaced, so a JSON body keeps its own
braces. Success: the status code (any 2xx by default) and, when configured,
a field of the JSON answer equal to a value (``code == "OK"``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

from gateway.clock import Clock
from gateway.notify.channels.base import Channel, ChannelError, ChannelPolicy
from gateway.notify.channels.http import HttpClient, status_error
from gateway.notify.config import SmsChannelConfig
from gateway.notify.message import Notification, Rendered
from gateway.notify.templates import ELLIPSIS

__all__ = ["SmsChannel", "fill", "json_path"]

_MISSING = object()


def fill(template: str, escape: Callable[[str], str], **fields: str) -> str:
    """``template`` with each ``{name}`` of ``fields`` replaced by its escaped value."""
    out = template
    for name, value in fields.items():
        out = out.replace("{" + name + "}", escape(value))
    return out


def _json_escape(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _escaper(content_type: str) -> Callable[[str], str]:
    kind = content_type.split(";")[0].strip().lower()
    if kind.endswith("json"):
        return _json_escape
    if kind == "application/x-www-form-urlencoded":
        return quote_plus
    return str


def json_path(doc: Any, path: str) -> Any:
    """``doc``'s field at a dotted path ('result.code', 'items.0.id'), or a sentinel."""
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


class SmsChannel(Channel):
    kind = "sms"
    address_kind = "mobile"

    def __init__(self, name: str, config: SmsChannelConfig, clock: Clock) -> None:
        super().__init__(name, ChannelPolicy.of(config))
        self.config = config
        self._clock = clock
        self._http = HttpClient(config.timeout_s, self.redact)

    def secrets(self) -> list[str]:
        return [v.get_secret_value() for v in self.config.headers.values()]

    def text(self, rendered: Rendered) -> str:
        cfg = self.config
        text = rendered.short if cfg.content == "short" and rendered.short else rendered.text
        if len(text) > cfg.max_chars:
            text = text[: cfg.max_chars - 1] + ELLIPSIS
        return text

    def request(self, n: Notification, rendered: Rendered) -> tuple[str, bytes | None]:
        """The URL and the body of the request for ``n``."""
        cfg = self.config
        fields = {"phone": self.require(n), "text": self.text(rendered)}
        url = fill(cfg.url, lambda v: quote(v, safe=""), **fields)
        body = None
        if cfg.body is not None:
            body = fill(cfg.body, _escaper(cfg.content_type), **fields).encode("utf-8")
        return url, body

    def _succeeded(self, status: int, doc: Any) -> str | None:
        """None when the answer means sent, else why not."""
        cfg = self.config
        ok_status = status in cfg.success_status if cfg.success_status else 200 <= status < 300
        if not ok_status:
            return f"HTTP {status}"
        if cfg.success_json_path is not None:
            found = json_path(doc, cfg.success_json_path)
            if found is _MISSING:
                return f"the answer has no {cfg.success_json_path!r}"
            if found != cfg.success_value and str(found) != str(cfg.success_value):
                return f"{cfg.success_json_path} is {found!r}, not {cfg.success_value!r}"
        return None

    async def send(self, n: Notification, rendered: Rendered) -> None:
        url, body = self.request(n, rendered)
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        if body is not None:
            headers.setdefault("Content-Type", self.config.content_type)
        answer = await self._http.request(self.config.method, url, data=body, headers=headers)
        why = self._succeeded(answer.status, answer.json())
        if why is None:
            return
        if not 200 <= answer.status < 300:
            raise status_error(answer, self.redact, self._clock.time_ns() / 1e9, "from the gateway")
        raise ChannelError(
            self.redact(f"SMS gateway refused: {why}: {answer.snippet()}"), retryable=False
        )

    async def close(self) -> None:
        await self._http.close()
