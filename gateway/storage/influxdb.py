"""InfluxDB 2.x / 3.x / Cloud sink (and anything that takes ``/api/v2/write``).

Writes line protocol (:mod:`gateway.storage.lineprotocol`) through
``influxdb-client``'s async API (``InfluxDBClientAsync.write_api().write``,
ns precision). The client is created in :meth:`InfluxDBSink.start`, inside
the running loop, as the library requires. Answers are mapped like the v1
sink's (:mod:`gateway.storage.influxerrors`), with 422 (InfluxDB 2.x's
"schema conflict") also meaning rejected points; 404 means the bucket or
organisation is missing, or the server has no v2 write API at all (InfluxDB
1.x before 1.8): both :class:`SinkUnavailable` with a message that says so.
Connection errors and timeouts are :class:`SinkUnavailable`.

VictoriaMetrics takes this API too; it stores each field as the series
``measurement_field``, keeps ms precision, ignores string values, and drops
malformed lines without an error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from gateway.config.storage import InfluxDBSinkConfig
from gateway.model import Reading
from gateway.storage.influxerrors import error_for_status
from gateway.storage.lineprotocol import PreparedLines
from gateway.storage.sink import SeriesCatalog, SinkUnavailable

__all__ = ["InfluxDBSink"]

log = logging.getLogger("gateway.storage.influxdb")


def _api_message(e: ApiException) -> str:
    message = getattr(e, "message", None)
    if isinstance(message, bytes):
        message = message.decode(errors="replace")
    if not message:
        body = getattr(e, "body", None)
        message = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    return str(message or e.reason or "").strip()


class InfluxDBSink:
    name = "influxdb"

    def __init__(self, config: InfluxDBSinkConfig, catalog: SeriesCatalog) -> None:
        self.config = config
        self.catalog = catalog
        self.lines = PreparedLines(catalog)
        self._client: Any = None  # InfluxDBClientAsync (untyped library)
        self._write: Any = None
        self._auth_failed = False

    @property
    def server(self) -> str:
        return f"InfluxDB v2 API at {self.config.url}"

    async def start(self) -> None:
        if self._client is None:
            token = self.config.token.get_secret_value() if self.config.token else ""
            self._client = InfluxDBClientAsync(
                url=self.config.url,
                token=token,
                org=self.config.org,
                timeout=round(self.config.timeout_s * 1000),
                enable_gzip=self.config.gzip,
            )
            self._write = self._client.write_api()

    async def close(self) -> None:
        if self._client is not None:
            client, self._client, self._write = self._client, None, None
            await client.close()

    def prepare(self, readings: Sequence[Reading]) -> None:
        """Format ``readings`` now, ahead of the :meth:`write` of the same list."""
        self.lines.prepare(readings)

    async def write(self, readings: Sequence[Reading]) -> None:
        enc = self.lines.take(readings)
        await self.start()
        try:
            ok = await self._write.write(
                bucket=self.config.bucket,
                org=self.config.org or None,
                record=enc.body,
                write_precision=WritePrecision.NS,
            )
        except ApiException as e:
            raise self._error(e, enc.lines, readings) from e
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise SinkUnavailable(f"{self.server} unreachable: {e!r}") from e
        if not ok:
            raise SinkUnavailable(f"{self.server} answered neither 201 nor 204")
        self._auth_failed = False

    def _error(
        self, e: ApiException, lines: Sequence[str], readings: Sequence[Reading]
    ) -> Exception:
        status = int(e.status or 0)
        message = _api_message(e)
        if status == 404:
            if "bucket" in message or "organization" in message:
                return SinkUnavailable(f"{self.server}: {message}")
            return SinkUnavailable(
                f"{self.server} has no /api/v2/write (HTTP 404: {message!r}); "
                "for InfluxDB 1.x use the 'influxdb1' sink"
            )
        err = error_for_status(
            status,
            message,
            server=self.server,
            retry_after=getattr(e, "retry_after", None),
            rejectable=(400, 422),
            lines=lines,
            readings=readings,
            catalog=self.catalog,
        )
        if status in (401, 403) and not self._auth_failed:
            log.error("%s", err)
            self._auth_failed = True
        return err
