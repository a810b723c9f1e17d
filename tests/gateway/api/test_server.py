import socket

import httpx
import pytest
from fastapi import FastAPI

from gateway.api.server import ApiServer, ApiServerError


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    return app


async def test_serves_in_the_gateway_loop_on_a_free_port() -> None:
    server = ApiServer(_app(), "127.0.0.1", 0)
    await server.start()
    try:
        assert server.port > 0
        async with httpx.AsyncClient() as client:
            r = await client.get(f"{server.url}/ping")
        assert r.json() == {"pong": "yes"}
    finally:
        await server.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"{server.url}/ping")


async def test_a_taken_port_is_a_clear_error_not_an_exit() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ApiServer(_app(), "127.0.0.1", port)
        with pytest.raises(ApiServerError, match=f"127.0.0.1:{port}"):
            await server.start()
