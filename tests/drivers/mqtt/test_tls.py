"""TLS and user/password against a Mosquitto TLS listener with a password
file; certificates made by the openssl command line for this test run."""

from __future__ import annotations

import getpass
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drivers.mqtt.config import MqttIngestConfig
from drivers.mqtt.ingest import MqttIngestDriver
from drivers.mqtt.uplink import MqttUplinkDriver
from tests.drivers.mqtt.conftest import Watcher, publisher, unique_prefix
from tests.drivers.mqtt.test_uplink import make_uplink
from tests.fixtures.driver_harness import Harness, running
from tests.fixtures.servers import Server, _need, _tcp_open, free_port

USER, PASSWORD = "gateway", "s3cret-pw"


@dataclass
class TlsBroker:
    server: Server
    ca: Path
    other_ca: Path  # a CA that did not sign the broker's certificate

    @property
    def port(self) -> int:
        return self.server.port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(d: Path, name: str) -> None:
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.crt",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        cwd=d,
    )


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    d = tmp_path_factory.mktemp("mosquitto-tls")
    _make_ca(d, "ca")
    _make_ca(d, "other-ca")
    _openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
        cwd=d,
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        cwd=d,
    )
    subprocess.run(
        [_need("mosquitto_passwd"), "-b", "-c", str(d / "passwd"), USER, PASSWORD],
        check=True,
        capture_output=True,
    )
    port = free_port()
    (d / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\n"
        f"cafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n"
        f"allow_anonymous false\npassword_file {d}/passwd\n"
        "persistence false\nlog_dest stdout\n"
        # Run as root, mosquitto would switch to user "mosquitto", who cannot
        # read this test's private directory.
        f"user {getpass.getuser()}\n"
    )
    srv = Server(
        "mosquitto-tls",
        [_need("mosquitto"), "-c", str(d / "mosquitto.conf")],
        port,
        d,
        lambda: _tcp_open(port),
    )
    srv.start()
    yield TlsBroker(srv, d / "ca.crt", d / "other-ca.crt")
    srv.stop()


def broker_cfg(b: TlsBroker, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": b.port,
        "username": USER,
        "password": PASSWORD,
        "tls": {"ca_file": str(b.ca)},
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
    }
    cfg.update(over)
    return cfg


def client_kwargs(b: TlsBroker) -> dict[str, Any]:
    import ssl

    ctx = ssl.create_default_context(cafile=str(b.ca))
    return {"username": USER, "password": PASSWORD, "tls_context": ctx}


async def offline_reason(h: Harness, device: str) -> str:
    events = await h.until(
        lambda: [e for e in h.events("device.offline") if e.source == device],
        what=f"{device} to be reported offline",
    )
    return str(events[0].data["reason"])


async def test_uplink_and_ingest_over_tls_with_password(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    site = unique_prefix()
    up = make_uplink(tls_broker.port, broker=broker_cfg(tls_broker))
    ingest = MqttIngestDriver(
        MqttIngestConfig.model_validate(
            {
                "type": "mqtt",
                "id": "in",
                "broker": broker_cfg(tls_broker),
                "subscriptions": [
                    {
                        "topic": f"{site}/+",
                        "format": "number",
                        "device": "{1}",
                        "values": [{"point": "v"}],
                    }
                ],
            }
        )
    )
    kw = client_kwargs(tls_broker)
    async with (
        Watcher(tls_broker.port, f"estate/v1/{site}/gateway/status", **kw) as w,
        running(up, tmp_path / "up", site=site),
        running(ingest, tmp_path / "in", site=site) as h,
    ):
        await w.until(lambda: w.payloads() == [b"online"], what="the uplink over TLS")
        await h.until(
            lambda: any(e.source == "in" for e in h.events("device.online")),
            what="the ingest over TLS",
        )
        async with publisher(tls_broker.port, **kw) as pub:
            await pub.publish(f"{site}/meter1", b"42.5")
        await h.until(
            lambda: [r for r in h.readings() if r.point == "meter1.v"], what="the reading over TLS"
        )
    assert [r.value for r in h.readings() if r.point == "meter1.v"] == [42.5]


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ({"password": "wrong"}, "authori"),  # "Not authorized"
        ({"username": None, "password": None}, "authori"),
        ({"tls": {"ca_file": "OTHER"}}, "certificate verify failed"),
        ({"tls": {"ca_file": "/nonexistent/ca.pem"}}, "tls.ca_file"),
        # Plain MQTT to a TLS-only port: the broker drops it, and aiomqtt only
        # notices when the wait for its CONNACK times out.
        ({"tls": None, "port": None, "timeout_s": 0.5}, "timed out"),
    ],
)
async def test_bad_credentials_and_certificates_are_reported(
    tls_broker: TlsBroker, tmp_path: Path, change: dict[str, Any], expect: str
) -> None:
    over = dict(change)
    if over.get("tls", {}) and over["tls"].get("ca_file") == "OTHER":
        over["tls"] = {"ca_file": str(tls_broker.other_ca)}
    if "port" in over:
        over["port"] = tls_broker.port
    up: MqttUplinkDriver = make_uplink(tls_broker.port, broker=broker_cfg(tls_broker, **over))
    async with running(up, tmp_path, site=unique_prefix()) as h:
        reason = await offline_reason(h, "up")
        assert expect.lower() in reason.lower(), reason
        assert not up.stats().connected
