"""Feishu / Lark (飞书) custom bot: ``POST <url>/<token>`` with an interactive
card (the message as lark_md, the priority as the header colour). With
signature verification the body carries ``timestamp`` (s) and ``sign`` =
base64(HMAC-SHA256(key="<timestamp>\\n<secret>", msg=b"")).

The answer is ``{"code": 0, "msg": "success"}`` (older: ``StatusCode``).
Limits: a 20 KB request body; 100 messages per minute and 5 per second
(codes 9499 / 11232 when exceeded). 19021 (bad signature), 19024 (keyword
missing), 19001 (bad token) ... are not retryable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import quote

from gateway.model import Priority
from gateway.notify.channels.robot import RobotChannel
from gateway.notify.config import FeishuChannelConfig
from gateway.notify.message import Notification, Rendered
from gateway.notify.templates import fit

__all__ = ["BUSY", "MAX_BYTES", "RATE_LIMITED", "FeishuChannel", "sign"]

MAX_BYTES = 18_000  # of the card's markdown: the body limit is 20 KB
RATE_LIMITED = frozenset({9499, 11232})
BUSY = frozenset({-1})
_TEMPLATE = {
    Priority.CRITICAL: "red",
    Priority.HIGH: "orange",
    Priority.MEDIUM: "yellow",
    Priority.LOW: "blue",
}


def sign(secret: str, timestamp_s: int) -> str:
    """Feishu's bot signature for ``timestamp_s``."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


class FeishuChannel(RobotChannel[FeishuChannelConfig]):
    kind = "feishu"
    vendor = "Feishu"
    code_keys = ("code", "StatusCode")
    message_keys = ("msg", "StatusMessage")
    rate_limited = RATE_LIMITED
    busy = BUSY
    address_kind = None  # a group bot; the recipient is only @-mentioned

    def secrets(self) -> list[str]:
        out = [self.config.token.get_secret_value()]
        if self.config.secret is not None:
            out.append(self.config.secret.get_secret_value())
        return out

    def payload(self, n: Notification, rendered: Rendered) -> dict[str, Any]:
        cfg = self.config
        open_id = n.recipient.address("feishu_open_id") if cfg.mention else None
        mention = f"\n<at id={open_id}></at>" if open_id else ""
        content = fit(n, rendered, "markdown", MAX_BYTES - len(mention.encode())) + mention
        body: dict[str, Any] = {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {
                    "title": {"tag": "plain_text", "content": rendered.subject},
                    "template": _TEMPLATE.get(n.priority, "grey"),
                },
                "elements": [{"tag": "div", "text": {"tag": "lark_md", "content": content}}],
            },
        }
        if cfg.secret is not None:
            ts = self._clock.time_ns() // 1_000_000_000
            body["timestamp"] = str(ts)
            body["sign"] = sign(cfg.secret.get_secret_value(), ts)
        return body

    def url(self) -> str:
        token = quote(self.config.token.get_secret_value(), safe="")
        return f"{self.config.url.rstrip('/')}/{token}"
