"""DingTalk (钉钉) custom robot: ``POST <url>?access_token=...`` with a
markdown message; with the 加签 security setting the query also carries
``timestamp`` (ms) and ``sign`` = URL-encoded base64(HMAC-SHA256(secret,
"<timestamp>\\n<secret>")). The answer is HTTP 200 with ``{"errcode": 0}``.

Limits: 20000 bytes per message; 20 messages per robot and minute (errcode
130101 / 410100 when exceeded). A mention needs ``at.atMobiles`` /
``at.atUserIds`` and the ``@<mobile>`` text in the message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import quote, quote_plus

from gateway.notify.channels.robot import RobotChannel
from gateway.notify.config import DingTalkChannelConfig
from gateway.notify.message import Notification, Rendered
from gateway.notify.templates import fit, truncate_utf8

__all__ = ["BUSY", "MAX_BYTES", "RATE_LIMITED", "DingTalkChannel", "sign"]

MAX_BYTES = 20_000
RATE_LIMITED = frozenset({130101, 410100})  # send too fast
BUSY = frozenset({-1})
# 310000 (sign not match, keywords not in content, IP not allowed), 300001
# (token does not exist), 400013 (group dissolved) ... are not retryable.


def sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's robot signature for ``timestamp_ms`` (URL-encoded)."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), to_sign, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


class DingTalkChannel(RobotChannel[DingTalkChannelConfig]):
    kind = "dingtalk"
    vendor = "DingTalk"
    rate_limited = RATE_LIMITED
    busy = BUSY

    def secrets(self) -> list[str]:
        out = [self.config.access_token.get_secret_value()]
        if self.config.secret is not None:
            secret = self.config.secret.get_secret_value()
            out += [secret, quote_plus(secret), quote(secret, safe="")]
        return out

    def payload(self, n: Notification, rendered: Rendered) -> dict[str, Any]:
        cfg = self.config
        mobile = n.recipient.address("mobile") if cfg.mention else None
        userid = n.recipient.address("dingtalk_userid") if cfg.mention else None
        mention = " ".join(f"@{m}" for m in (mobile, userid) if m)
        mention = f"\n\n{mention}" if mention else ""
        budget = MAX_BYTES - 2_000 - len(mention.encode("utf-8"))  # room for the "\n\n"
        markdown = fit(n, rendered, "markdown", budget).replace("\n", "\n\n")
        return {
            "msgtype": "markdown",
            "markdown": {
                "title": rendered.subject,
                "text": truncate_utf8(markdown + mention, MAX_BYTES),
            },
            "at": {
                "atMobiles": [mobile] if mobile else [],
                "atUserIds": [userid] if userid else [],
                "isAtAll": cfg.at_all,
            },
        }

    def url(self) -> str:
        cfg = self.config
        url = f"{cfg.url}?access_token={quote(cfg.access_token.get_secret_value(), safe='')}"
        if cfg.secret is not None:
            ts = self._clock.time_ns() // 1_000_000
            url += f"&timestamp={ts}&sign={sign(cfg.secret.get_secret_value(), ts)}"
        return url
