"""WeCom (企业微信) group robot: ``POST <url>?key=<key>`` with a markdown or
text message; the answer is HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``.

Limits: markdown content 4096 bytes, text 2048 bytes (UTF-8); 20 messages per
robot and minute (errcode 45009 when exceeded). Mentions: ``<@userid>`` in
markdown; ``mentioned_list`` / ``mentioned_mobile_list`` in text.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from gateway.notify.channels.robot import RobotChannel
from gateway.notify.config import WeComChannelConfig
from gateway.notify.message import Notification, Rendered
from gateway.notify.templates import fit

__all__ = ["BUSY", "MARKDOWN_MAX_BYTES", "RATE_LIMITED", "TEXT_MAX_BYTES", "WeComChannel"]

MARKDOWN_MAX_BYTES = 4096
TEXT_MAX_BYTES = 2048
RATE_LIMITED = frozenset({45009})  # api freq out of limit
BUSY = frozenset({-1})  # system busy
# Anything else (93000 invalid webhook url / key, 40008 bad message type,
# 40058 bad parameter, 44004 empty content ...) is not retryable.


class WeComChannel(RobotChannel[WeComChannelConfig]):
    kind = "wecom"
    vendor = "WeCom"
    rate_limited = RATE_LIMITED
    busy = BUSY

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

    def url(self) -> str:
        return f"{self.config.url}?key={quote(self.config.key.get_secret_value(), safe='')}"
