"""WeCom (企业微信) group robot: ``POST <url>?key=<key>`` with a markdown or
text message; the answer is HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``.

Limits: markdown content 4096 bytes, text 2048 bytes (UTF-8); 20 messages per
robot and minute (errcode 45009 when exceeded). Mentions: ``<@userid>`` in
markdown; ``mentioned_list`` / ``mentioned_mobile_list`` in text.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from gateway.clock import Clock
from gateway.notify.channels.base import Channel, ChannelPolicy
from gateway.notify.channels.http import HttpClient, robot_error
from gateway.notify.config import WeComChannelConfig
from gateway.notify.message import Notification, Rendered, dumps
from gateway.notify.templates import fit

__all__ = ["BUSY", "MARKDOWN_MAX_BYTES", "RATE_LIMITED", "TEXT_MAX_BYTES", "WeComChannel"]

MARKDOWN_MAX_BYTES = 4096
TEXT_MAX_BYTES = 2048
RATE_LIMITED = frozenset({45009})  # api freq out of limit
BUSY = frozenset({-1})  # system busy
# Anything else (93000 invalid webhook url / key, 40008 bad message type,
# 40058 bad parameter, 44004 empty content ...) is not retryable.


class WeComChannel(Channel):
    kind = "wecom"
    address_kind = None  # a group robot; the recipient is only @-mentioned

    def __init__(self, name: str, config: WeComChannelConfig, clock: Clock) -> None:
        super().__init__(name, ChannelPolicy.of(config))
        self.config = config
        self._clock = clock
        self._http = HttpClient(config.timeout_s, self.redact)

    def secrets(self) -> list[str]:
        return [self.config.key.get_secret_value()]

    def payload(self, n: Notification, rendered: Rendered) -> dict[str, Any]:
        cfg = self.config
        userid = n.recipient.address("wecom_userid") if cfg.mention else None
        mobile = n.recipient.address("mobile") if cfg.mention else None
        if cfg.msgtype == "markdown":
            mention = f"\n<@{userid}>" if userid else ""
            budget = MARKDOWN_MAX_BYTES - len(mention.encode("utf-8"))
            return {
                "msgtype": "markdown",
                "markdown": {"content": fit(n, rendered, "markdown", budget) + mention},
            }
        text: dict[str, Any] = {"content": fit(n, rendered, "text", TEXT_MAX_BYTES)}
        if userid:
            text["mentioned_list"] = [userid]
        mobiles = [*([mobile] if mobile else []), *cfg.mentioned_mobiles]
        if mobiles:
            text["mentioned_mobile_list"] = mobiles
        return {"msgtype": "text", "text": text}

    async def send(self, n: Notification, rendered: Rendered) -> None:
        url = f"{self.config.url}?key={quote(self.config.key.get_secret_value(), safe='')}"
        answer = await self._http.request(
            "POST",
            url,
            data=dumps(self.payload(n, rendered)),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        error = robot_error(
            answer,
            vendor="WeCom",
            code_keys=("errcode",),
            message_keys=("errmsg",),
            rate_limited=RATE_LIMITED,
            busy=BUSY,
            redact=self.redact,
            now_s=self._clock.time_ns() / 1e9,
        )
        if error is not None:
            raise error

    async def close(self) -> None:
        await self._http.close()
