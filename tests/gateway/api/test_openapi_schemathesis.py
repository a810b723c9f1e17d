"""Schemathesis against the real gateway's OpenAPI: every operation, as admin.

The gateway runs in a thread with its own event loop (schemathesis' cases
are synchronous HTTP calls, which would block a loop shared with the
server). It has data in every resource first: readings, active alarms of
three priorities, an access event with a card UID, an audit trail.

The run is bounded and deterministic: derandomized generation, a few
positive and a few negative examples per operation, no example database,
no shrinking; every distinct failure of every operation is collected and
reported at once. Checks: no 5xx, status codes, content types and response
bodies as the OpenAPI documents them. Another test calls every non-public
operation without credentials and expects 401.

The cases are run with Hypothesis over ``operation.as_strategy()`` rather
than ``schemathesis.pytest.from_fixture(...).parametrize()``: the latter
(schemathesis 4.32.5) sets ``request.node._nodeid``, which pytest 9.2 no
longer has, and a lazily loaded schema is needed because the gateway only
runs once the fixture has started it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fixtures.api import ApiHarness, api_gateway

MAX_EXAMPLES = 12
# Public without credentials (the login page needs them before anyone logs in).
PUBLIC = {
    ("GET", "/api/v1/meta"),
    ("GET", "/api/v1/i18n/{locale}"),
    ("POST", "/api/v1/auth/login"),
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class GatewayThread(threading.Thread):
    """The real gateway (tests/fixtures/api.py) on a loop of its own."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(name="gateway-under-test", daemon=True)
        self.tmp = tmp
        self.ready = threading.Event()
        self.url = ""
        self.admin_token = ""
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001 - re-raised in the test thread
            self.error = e
            self.ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        async with api_gateway(self.tmp) as h:
            await _seed(h)
            self.url = h.url
            self.admin_token = await h.token("admin")
            self.ready.set()
            await self._stopping.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout=30)


async def _seed(h: ApiHarness) -> None:
    """Something in every resource, so response bodies are checked with content."""
    await h.user("operator1", "guard")
    await h.reading("tx1.load_pct", 42.0)
    await h.reading("tx1.winding_temp_a", 120.0)  # tx1-hot, high
    await h.reading("pump1.pressure", 0.1)  # pump-low, medium
    await h.reading("fire1.alarm", True)  # fire-relay, critical
    await h.event("access.granted", "gate1", {"card_uid": "04A1B2C3D4", "door": "north"})
    for alarm_id in (
        "tx1-hot@tx1.winding_temp_a",
        "pump-low@pump1.pressure",
        "fire-relay@fire1.alarm",
    ):
        await h.wait_alarm(alarm_id)
    await h.gw.health.device_offline("pump1", "no answer", driver="modbus1")
    await h.wait_for(lambda: "tx1.load_pct" in h.ctx.hub.latest)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    thread = GatewayThread(tmp_path_factory.mktemp("schemathesis"))
    thread.start()
    if not thread.ready.wait(60):
        raise TimeoutError("the gateway did not start within 60 s")
    if thread.error is not None:
        raise thread.error
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def api_schema(gateway: GatewayThread) -> BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "base-url": gateway.url,
            "headers": {"Authorization": f"Bearer {gateway.admin_token}"},
            "request-timeout": 10,
        }
    )
    return schemathesis.openapi.from_url(f"{gateway.url}/api/v1/openapi.json", config=config)


def test_the_public_operations_answer_anonymously(gateway: GatewayThread) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10) as anonymous:
        assert anonymous.get("/api/v1/meta").status_code == 200
        assert anonymous.get("/api/v1/i18n/en").status_code == 200
        r = anonymous.post("/api/v1/auth/login", json={"username": "nobody", "password": "x"})
        assert r.status_code == 401


def test_every_non_public_operation_needs_credentials(gateway: GatewayThread) -> None:
    doc = httpx.get(f"{gateway.url}/api/v1/openapi.json", timeout=10).json()
    called = 0
    with httpx.Client(base_url=gateway.url, timeout=10) as anonymous:
        for path, item in doc["paths"].items():
            for method in item:
                if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                    continue
                if (method.upper(), path) in PUBLIC or not path.startswith("/api/v1/"):
                    continue  # public, or the acknowledgement links (their token is the key)
                url = path.replace("{", "").replace("}", "")  # any value will do
                r = anonymous.request(method.upper(), url)
                assert r.status_code == 401, f"{method.upper()} {path}: {r.status_code} {r.text}"
                assert r.headers.get("www-authenticate") == "Bearer", f"{method} {path}"
                called += 1
    assert called >= 10  # the API's resources are all there


def _run_operation(
    operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode
) -> dict[str, str]:
    """Up to MAX_EXAMPLES cases of one operation; the distinct failures, by title."""
    found: dict[str, str] = {}

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case[Any]) -> None:
        try:
            case.call_and_validate(checks=CHECKS)
        except (Failure, FailureGroup) as e:
            failures = e.exceptions if isinstance(e, FailureGroup) else (e,)
            for f in failures:
                found.setdefault(f"{mode.value} {operation.label}: {f.title}", str(e))

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # No parameter or body to make invalid (GET /auth/me): nothing to send.
    return found


def test_every_operation_conforms_to_the_openapi(api_schema: BaseSchema) -> None:
    """Every operation, positive and negative data, as admin: all failures at once."""
    failures: dict[str, str] = {}
    operations = 0
    for result in api_schema.get_all_operations():
        if not isinstance(result, Ok):
            raise result.err()  # an operation the OpenAPI cannot describe
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures.update(_run_operation(operation, mode))
    assert operations >= 10
    report = "\n\n".join(f"== {title}\n{detail}" for title, detail in sorted(failures.items()))
    assert not failures, f"{len(failures)} distinct failures:\n{report}"
