"""The HTTP client the web-based channels share (aiohttp), with failures
turned into :class:`ChannelError` texts that never carry the URL (robot URLs
hold their keys in the query string).

* no connection, a timeout, a dropped connection -> retryable;
* HTTP 408, 425, 429 and 5xx -> retryable (``Retry-After`` kept);
* any other status outside 2xx -> not retryable (a bad key, a bad request).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from gateway.notify.channels.base import ChannelError

__all__ = ["HttpAnswer", "HttpClient", "parse_retry_after", "robot_error", "status_error"]

_MAX_BODY = 64 * 1024  # answers are small; never read an unbounded one
_RETRY_STATUS = frozenset({408, 425, 429})


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_s)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def snippet(self, limit: int = 200) -> str:
        text = self.body[: limit * 4].decode("utf-8", errors="replace")
        text = " ".join(text.split())
        return text[:limit] + ("…" if len(text) > limit else "")


def status_error(
    answer: HttpAnswer, redact: Callable[[str], str], now_s: float, what: str = ""
) -> ChannelError:
    """The error for a non-2xx answer."""
    retryable = answer.status in _RETRY_STATUS or answer.status >= 500
    retry_after = parse_retry_after(answer.headers.get("Retry-After"), now_s)
    snippet = answer.snippet()
    reason = f"HTTP {answer.status}" + (f" {what}" if what else "")
    reason += f": {snippet}" if snippet else ""
    return ChannelError(redact(reason), retryable=retryable, retry_after_s=retry_after)


class HttpClient:
    """One aiohttp session per channel, opened on first use."""

    def __init__(self, timeout_s: float, redact: Callable[[str], str]) -> None:
        self.timeout_s = timeout_s
        self._redact = redact
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                headers={"User-Agent": "estate-gateway"},
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        session = self._open()
        try:
            async with session.request(
                method, url, data=data, headers=dict(headers or {}), allow_redirects=False
            ) as resp:
                body = await resp.content.read(_MAX_BODY)
                return HttpAnswer(resp.status, dict(resp.headers), body)
        except TimeoutError:
            raise ChannelError(f"no answer within {self.timeout_s:g} s", retryable=True) from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or type(exc.os_error).__name__
            raise ChannelError(
                self._redact(f"cannot connect to {exc.host}:{exc.port}: {reason}"), retryable=True
            ) from None
        except aiohttp.InvalidURL:
            raise ChannelError("invalid URL (check the channel's url)", retryable=False) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise ChannelError(f"connection lost: {type(exc).__name__}", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise ChannelError(f"HTTP client error: {type(exc).__name__}", retryable=True) from None

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
            await asyncio.sleep(0)  # let aiohttp close its transports


def robot_error(
    answer: HttpAnswer,
    *,
    vendor: str,
    code_keys: Sequence[str],
    message_keys: Sequence[str],
    rate_limited: Collection[int],
    busy: Collection[int],
    redact: Callable[[str], str],
    now_s: float,
    rate_wait_s: float = 60.0,
) -> ChannelError | None:
    """What a chat robot's answer means: None when delivered, else the error.

    The robots answer HTTP 200 with a code in the JSON body: 0 is success;
    ``rate_limited`` codes are retryable after ``rate_wait_s`` (their limits
    are per minute), ``busy`` codes are retryable at once, any other code is a
    problem with the key, the signature or the message (not retryable).
    """
    doc = answer.json()
    code: Any = None
    message = ""
    if isinstance(doc, dict):
        code = next((doc[k] for k in code_keys if k in doc), None)
        message = str(next((doc[k] for k in message_keys if k in doc), ""))
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        reason = redact(f"{vendor} error {code}: {' '.join(message.split())[:300]}")
        if code in rate_limited:
            after = parse_retry_after(answer.headers.get("Retry-After"), now_s)
            return ChannelError(reason, retryable=True, retry_after_s=after or rate_wait_s)
        return ChannelError(reason, retryable=code in busy)
    if not 200 <= answer.status < 300:
        return status_error(answer, redact, now_s, f"from {vendor}")
    if code is None:
        return ChannelError(
            redact(f"unexpected answer from {vendor}: {answer.snippet()}"), retryable=False
        )
    return None
