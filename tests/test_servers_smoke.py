"""The shared server fixtures start, answer, and restart on the same port."""

import urllib.request

from tests.fixtures.servers import Server


def test_influxdb1_answers_ping(influxdb1: Server) -> None:
    with urllib.request.urlopen(f"{influxdb1.url}/ping") as r:
        assert r.status == 204


def test_victoriametrics_answers_health(victoriametrics: Server) -> None:
    with urllib.request.urlopen(f"{victoriametrics.url}/health") as r:
        assert r.read().strip() == b"OK"


def test_mosquitto_restarts_on_same_port(mosquitto: Server) -> None:
    port = mosquitto.port
    mosquitto.restart()
    assert mosquitto.port == port and mosquitto.proc is not None
