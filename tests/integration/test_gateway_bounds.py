"""Issue 9 item 6: no route buffers an unbounded body.

A 200 MiB body to the unauthenticated ``/accounts/login`` took the gateway to 1.3 GB: only the
ingest routes capped their bodies. Every other route now refuses a body over 64 KiB with 413,
whether it declares its length or streams it in chunks; the ingest routes keep their own cap.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledger.daemons.gateway.edge.body_limit import DEFAULT_MAX_BYTES, BodyLimitMiddleware
from tests.integration.test_gateway import MAX_BODY, Env, log
from tests.integration.test_gateway import env as env  # the in-process gateway fixture

OVER = DEFAULT_MAX_BYTES + 1


async def test_a_large_body_to_any_route_is_413_before_it_is_read(env: Env) -> None:
    body = orjson.dumps({"email": "a@example.com", "password": "x" * OVER})
    for path in ("/api/v1/accounts/login", "/api/v1/accounts/register", "/api/v1/projects"):
        response = await env.http.post(path, content=body,
                                       headers={"Content-Type": "application/json"})
        assert response.status_code == 413, (path, response.text)
        assert "over 65536 bytes" in response.json()["detail"]


async def test_a_chunked_body_is_cut_off_once_it_passes_the_cap(env: Env) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"email": "a@example.com", "password": "'
        for _ in range(1000):  # 16 MiB if read to the end
            sent += 16 * 1024
            yield b"x" * (16 * 1024)
        yield b'"}'

    response = await env.http.post("/api/v1/accounts/login", content=chunks(),
                                   headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert sent < 1000 * 16 * 1024  # the gateway stopped reading


async def test_the_ingest_routes_keep_their_own_larger_cap(env: Env) -> None:
    body = orjson.dumps({"logs": [log(message="x" * 1000) for _ in range(100)]})
    assert DEFAULT_MAX_BYTES < len(body) < MAX_BODY
    response = await env.post("/api/v1/ingest/batch", body)
    assert response.status_code == 202, response.text


async def test_routes_that_cap_their_own_bodies_are_matched_by_their_path_pattern() -> None:
    """Lean routes with path parameters (Sentry's ``/api/{project:int}/envelope/``) keep
    their own cap; a path next to them does not."""

    async def echo(request: Request) -> Response:
        return Response(str(len(await request.body())))

    envelope = Route("/api/{project:int}/envelope/", echo, methods=["POST"])
    app = BodyLimitMiddleware(Starlette(routes=[envelope, Route("/api/other", echo,
                                                                methods=["POST"])]),
                              own_caps=[envelope])
    body = b"x" * OVER
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gateway") as http:
        own = await http.post("/api/42/envelope/", content=body)
        assert (own.status_code, own.text) == (200, str(OVER))
        assert (await http.post("/api/other", content=body)).status_code == 413
