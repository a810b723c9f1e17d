"""InfluxDB 1.x sink: line protocol over the v1 HTTP API (``/write``, ``/query``).

``start()`` opens an aiohttp session and, when ``create_database`` is set,
sends ``CREATE DATABASE`` (a no-op if it exists). ``write()`` formats the
readings (:mod:`gateway.storage.lineprotocol`) and POSTs them to
``/write?db=..&rp=..&precision=ns`` with basic auth if a user is set. A
refused ``CREATE DATABASE`` (no admin rights) is only logged. What
the answer means is decided by :mod:`gateway.storage.influxerrors`, plus:

* readings line protocol cannot carry (NaN, infinities, ...) are refused
  before sending, as :class:`PointsRejected` naming them;
* 404 "database not found" is :class:`SinkUnavailable` (the database is
  created again first when allowed);
* a connection reset while sending a large body, from a server that still
  answers ``/ping``, is :class:`BatchTooLarge` (InfluxDB may close the
  connection over a too-large body before its 413 is read);
* connection refused, resets and timeouts are :class:`SinkUnavailable`.

:meth:`InfluxDB1Sink.query` runs InfluxQL (tests, and later the UI).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp

from gateway.config.storage import InfluxDB1SinkConfig
from gateway.model import Reading
from gateway.storage.influxerrors import error_for_status
from gateway.storage.lineprotocol import PreparedLines
from gateway.storage.sink import (
    BatchTooLarge,
    SeriesCatalog,
    SinkError,
    SinkUnavailable,
)

__all__ = ["InfluxDB1Sink", "InfluxQueryError"]

log = logging.getLogger("gateway.storage.influxdb1")

_LARGE_BODY = 1_000_000  # bytes: above this, a reset connection may mean "too large"


class InfluxQueryError(SinkError):
    """An InfluxQL statement failed (the message is the server's)."""


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxDB1Sink:
    name = "influxdb1"

    def __init__(self, config: InfluxDB1SinkConfig, catalog: SeriesCatalog) -> None:
        self.config = config
        self.catalog = catalog
        self.lines = PreparedLines(catalog)
        self._base = config.url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._params = {"db": config.database, "precision": "ns"}
        if config.retention_policy:
            self._params["rp"] = config.retention_policy
        self._auth_failed = False

    @property
    def server(self) -> str:
        return f"InfluxDB 1.x at {self._base}"

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {}
            if self.config.username:
                password = self.config.password.get_secret_value() if self.config.password else ""
                creds = f"{self.config.username}:{password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(creds).decode()
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=self.config.timeout_s)
            )
        return self._session

    async def start(self) -> None:
        self._http()
        if self.config.create_database:
            await self.create_database()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def create_database(self) -> None:
        """``CREATE DATABASE`` (a no-op when it exists).

        A refusal (a user without admin rights) is logged, not raised: the
        database may exist already, and writes say so if it does not.
        Unreachable server or refused credentials: :class:`SinkUnavailable`.
        """
        try:
            await self.query(f"CREATE DATABASE {quote_ident(self.config.database)}")
        except InfluxQueryError as e:
            log.warning(
                "%s: cannot create database %r (writing anyway): %s",
                self.server,
                self.config.database,
                e,
            )

    def prepare(self, readings: Sequence[Reading]) -> None:
        """Format ``readings`` now, ahead of the :meth:`write` of the same list."""
        self.lines.prepare(readings)

    async def write(self, readings: Sequence[Reading]) -> None:
        enc = self.lines.take(readings)
        body = enc.body
        try:
            async with self._http().post(
                f"{self._base}/write", params=self._params, data=body
            ) as resp:
                if resp.status in (200, 204):
                    self._auth_failed = False
                    return
                text = await resp.text()
                retry_after = resp.headers.get("Retry-After")
                status = resp.status
        except (aiohttp.ClientConnectionError, TimeoutError) as e:
            mid_request = not isinstance(e, aiohttp.ClientConnectorError | TimeoutError)
            if mid_request and len(body) > _LARGE_BODY and await self.ping():
                raise BatchTooLarge(
                    f"{self.server} closed the connection while receiving "
                    f"{len(body)} bytes but answers /ping: taking the batch as too large"
                ) from e
            raise SinkUnavailable(f"{self.server} unreachable: {e!r}") from e
        except aiohttp.ClientError as e:
            raise SinkUnavailable(f"{self.server}: HTTP error: {e!r}") from e
        message = _error_text(text)
        if status == 404 and "database not found" in message:
            if self.config.create_database:
                try:
                    await self.create_database()
                except SinkUnavailable as e:
                    message = f"{message}; {e}"
            raise SinkUnavailable(f"{self.server}: {message}")
        err = error_for_status(
            status,
            message,
            server=self.server,
            retry_after=retry_after,
            lines=enc.lines,
            readings=readings,
            catalog=self.catalog,
        )
        if status in (401, 403) and not self._auth_failed:
            log.error("%s", err)
            self._auth_failed = True
        raise err

    async def ping(self) -> bool:
        """True when the server answers ``/ping``."""
        try:
            async with self._http().get(f"{self._base}/ping") as resp:
                return resp.status < 300
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def query(
        self, q: str, *, database: str | None = None, epoch: str | None = "ns"
    ) -> dict[str, Any]:
        """Run InfluxQL; returns the decoded JSON answer (``results`` ...).

        Raises :class:`InfluxQueryError` when the server or a statement reports
        an error, :class:`SinkUnavailable` when it cannot be reached.
        """
        params = {"q": q}
        db = self.config.database if database is None else database
        if db:
            params["db"] = db
        if epoch:
            params["epoch"] = epoch
        try:
            async with self._http().post(f"{self._base}/query", data=params) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as e:
            raise SinkUnavailable(f"{self.server} unreachable: {e!r}") from e
        if status in (401, 403):
            raise error_for_status(status, _error_text(text), server=self.server)
        try:
            answer = _json(text)
        except ValueError:
            raise InfluxQueryError(f"{self.server} answered HTTP {status}: {text[:500]}") from None
        if status >= 300 or "error" in answer:
            raise InfluxQueryError(f"{self.server}: {answer.get('error', text[:500])}")
        for result in answer.get("results", ()):
            if "error" in result:
                raise InfluxQueryError(f"{self.server}: {result['error']}")
        return answer


def _json(text: str) -> dict[str, Any]:
    out = json.loads(text)
    if not isinstance(out, dict):
        raise ValueError("not a JSON object")
    return out


def _error_text(text: str) -> str:
    """The ``error`` of a JSON error body, else the body itself (trimmed)."""
    try:
        return str(_json(text).get("error", text)).strip()
    except ValueError:
        return text.strip()[:2000]
