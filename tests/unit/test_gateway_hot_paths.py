"""The lean ingest routes get every cross-cutting concern of the app, including later ones.

The gateway answers its two hot routes ahead of FastAPI's stack (``edge/hot_paths.py``). A
middleware or exception handler added to the app after the gateway's own must reach them too:
these tests add one of each, the way a future concern (request ids, CORS) would be added, and
check that the lean routes went through it.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ledger.config import Settings
from ledger.daemons.gateway.app import create_app
from ledger.daemons.gateway.edge.hot_paths import HotPaths
from ledger.daemons.gateway.routes.ingest import LEAN_ROUTES
from ledger.daemons.gateway.routes.otlp import LEAN_ROUTES as OTLP_LEAN_ROUTES
from ledger.errors import AuthenticationError

LEAN_PATHS = [route.path for route in (*LEAN_ROUTES, *OTLP_LEAN_ROUTES)]


class Probe:
    """A new concern: notes each request it sees and answers 418 when asked to."""

    seen: list[str] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            Probe.seen.append(scope["path"])
            if (b"x-probe", b"answer") in scope["headers"]:
                await Response(status_code=418)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _gateway_app() -> FastAPI:
    # Nothing connects until the lifespan starts, and these requests never need it.
    return create_app(Settings(internal_token="token", redis_url="redis://127.0.0.1:1/0"))


async def _post(app: FastAPI, path: str, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.post(path, content=b"{}", headers=headers)


@pytest.mark.parametrize("path", LEAN_PATHS)
async def test_a_middleware_added_later_reaches_the_lean_routes(path: str) -> None:
    app = _gateway_app()
    app.add_middleware(Probe)
    Probe.seen.clear()
    answer = await _post(app, path, {"x-probe": "answer", "content-type": "application/json"})
    assert answer.status_code == 418
    assert Probe.seen == [path]


@pytest.mark.parametrize("path", LEAN_PATHS)
async def test_an_exception_handler_added_later_answers_on_the_lean_routes(path: str) -> None:
    app = _gateway_app()

    async def refused(request: Request, exc: Exception) -> Response:
        return Response(b"refused by the new handler", status_code=499)

    app.add_exception_handler(AuthenticationError, refused)
    answer = await _post(app, path, {"content-type": "application/json"})  # no API key
    assert answer.status_code == 499
    assert answer.content == b"refused by the new handler"


async def test_the_lean_path_is_built_from_the_apps_own_registries() -> None:
    app = _gateway_app()
    app.add_middleware(Probe)
    stack = app.build_middleware_stack()
    assert isinstance(stack, HotPaths)
    assert sorted(stack.routes) == sorted(LEAN_PATHS)
    assert stack.concerns == [m.cls for m in app.user_middleware]
    assert stack.concerns[0] is Probe
