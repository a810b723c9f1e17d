"""Every route answers 503 (with Retry-After) when the event store fails, the
authentication in front of it included, and works again once it is back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.fixtures.api import ApiHarness, api_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with api_gateway(tmp_path_factory.mktemp("store-down")) as h:
        yield h


@pytest.mark.parametrize(
    "path", ["/api/v1/events", "/api/v1/kpi", "/api/v1/audit", "/api/v1/users", "/api/v1/tokens"]
)
async def test_reads_answer_503_while_the_store_is_closed(api: ApiHarness, path: str) -> None:
    admin = await api.client("admin")
    assert (await admin.get(path)).status_code == 200
    await api.ctx.store.close()  # the store goes away under the running API
    try:
        r = await admin.get(path)  # the bearer token cannot be checked either
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "5"
        assert "event store" in r.json()["detail"]
    finally:
        await api.ctx.store.open()
    assert (await admin.get(path)).status_code == 200
