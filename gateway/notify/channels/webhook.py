"""Generic webhook: the notification as a JSON document
(:func:`gateway.notify.message.document`), POSTed and signed.

Headers: ``X-Gateway-Timestamp`` (Unix seconds), ``X-Gateway-Signature:
sha256=<hex>`` = HMAC-SHA256(secret, "<timestamp>.<body>") when a secret is
set, and ``X-Gateway-Notification`` (the notification id: the same on every
retry, so a receiver can drop duplicates). A receiver checks a request with
:func:`verify_signature`, which also refuses stale timestamps (replays).

2xx is success; 408, 425, 429 and 5xx are retried (``Retry-After`` honoured);
other answers are not.
"""

from __future__ import annotations

import hashlib
import hmac

from gateway.clock import Clock
from gateway.notify.channels.base import Channel, ChannelPolicy
from gateway.notify.channels.http import HttpClient, status_error
from gateway.notify.config import WebhookChannelConfig
from gateway.notify.message import Notification, Rendered, document, dumps

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookChannel", "sign", "verify_signature"]

SIGNATURE_HEADER = "X-Gateway-Signature"
TIMESTAMP_HEADER = "X-Gateway-Timestamp"
ID_HEADER = "X-Gateway-Notification"


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Gateway-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(_key(secret), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str | bytes,
    timestamp: str,
    body: bytes | str,
    header: str,
    now: float,
    tolerance_s: float = 300,
) -> bool:
    """True when ``header`` signs ``body`` at ``timestamp`` with ``secret`` and
    ``timestamp`` (Unix seconds) is within ``tolerance_s`` of ``now``.

    For receivers: pass the raw request body (bytes as received) and the
    values of the X-Gateway-Timestamp and X-Gateway-Signature headers.
    """
    try:
        ts = int(timestamp)
        timestamp.encode("ascii")
    except (TypeError, ValueError, UnicodeEncodeError):
        return False
    if abs(now - ts) > tolerance_s:
        return False
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return hmac.compare_digest(sign(secret, timestamp, raw), header or "")


class WebhookChannel(Channel):
    kind = "webhook"
    address_kind = None

    def __init__(self, name: str, config: WebhookChannelConfig, clock: Clock) -> None:
        super().__init__(name, ChannelPolicy.of(config))
        self.config = config
        self._clock = clock
        self._http = HttpClient(config.timeout_s, self.redact)

    def secrets(self) -> list[str]:
        out = [v.get_secret_value() for v in self.config.headers.values()]
        if self.config.secret is not None:
            out.append(self.config.secret.get_secret_value())
        return out

    def request(self, n: Notification, rendered: Rendered) -> tuple[bytes, dict[str, str]]:
        """The body and the headers of the POST for ``n``."""
        body = dumps(document(n, rendered))
        timestamp = str(self._clock.time_ns() // 1_000_000_000)
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        headers.update(
            {
                "Content-Type": "application/json; charset=utf-8",
                TIMESTAMP_HEADER: timestamp,
                ID_HEADER: n.id,
            }
        )
        if self.config.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.config.secret.get_secret_value(), timestamp, body)
        return body, headers

    async def send(self, n: Notification, rendered: Rendered) -> None:
        body, headers = self.request(n, rendered)
        answer = await self._http.request("POST", self.config.url, data=body, headers=headers)
        if not 200 <= answer.status < 300:
            raise status_error(answer, self.redact, self._clock.time_ns() / 1e9)

    async def close(self) -> None:
        await self._http.close()
