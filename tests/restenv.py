"""The gateway app in process over REAL auth and query gRPC daemons, for the read-side REST tests.

Logs are written straight into the logs database (``tests.logrows``): these tests are about
reading back, and the ingest path has its own.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from ledger.config import Settings
from ledger.daemons import auth as auth_daemon
from ledger.daemons import query as query_daemon
from ledger.daemons.gateway.app import create_app
from tests.ports import free_port


@dataclass
class Account:
    """An account registered over REST, with one project and a full-scope key."""

    email: str
    password: str
    tokens: dict[str, Any]
    project: dict[str, Any]
    key: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}

    @property
    def project_id(self) -> str:
        return str(self.project["id"])


@dataclass
class Rest:
    settings: Settings
    app: FastAPI
    http: httpx.AsyncClient

    async def register(self, email: str | None = None,
                       password: str = "correct horse battery") -> dict[str, Any]:
        email = email or f"{uuid.uuid4().hex[:10]}@example.com"
        response = await self.http.post("/api/v1/accounts/register",
                                        json={"email": email, "password": password})
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def account(self, slug: str | None = None) -> Account:
        """A new account with a project and an ingest+read key."""
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        tokens = await self.register(email)
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        slug = slug or f"p-{uuid.uuid4().hex[:8]}"
        project = await self.http.post("/api/v1/projects", headers=bearer,
                                       json={"name": slug.title(), "slug": slug})
        assert project.status_code == 201, project.text
        key = await self.http.post(f"/api/v1/projects/{slug}/api-keys", headers=bearer,
                                   json={"name": "default"})
        assert key.status_code == 201, key.text
        return Account(email, "correct horse battery", tokens, project.json(),
                       key.json()["full_key"])

    async def key(self, account: Account, scopes: list[str]) -> str:
        response = await self.http.post(
            f"/api/v1/projects/{account.project_id}/api-keys", headers=account.bearer,
            json={"scopes": scopes})
        assert response.status_code == 201, response.text
        return str(response.json()["full_key"])


@contextlib.asynccontextmanager
async def rest_stack(settings: Settings) -> AsyncIterator[Rest]:
    """Auth and query daemons on free ports and the gateway app in process, over them."""
    daemons = [auth_daemon.create(settings),
               query_daemon.create(settings, count_grace_seconds=10.0)]
    for daemon in daemons:
        await daemon.start()
    gateway_settings = settings.with_overrides(
        auth_addr=f"127.0.0.1:{daemons[0].port}", query_addr=f"127.0.0.1:{daemons[1].port}",
        ingest_addr=f"127.0.0.1:{free_port()}")
    app = create_app(gateway_settings)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 40000))
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=transport, base_url="http://gateway") as http:
            yield Rest(gateway_settings, app, http)
    finally:
        for daemon in reversed(daemons):
            await daemon.stop()


def detail(response: httpx.Response, status: int) -> str:
    """The ``detail`` of an error answer, after checking its status."""
    assert response.status_code == status, response.text
    return str(response.json()["detail"])
