"""Bad input to the account, project and key routes is a 4xx naming the field, never a 500
(issue 9, item 13): NUL characters, integers past what the database or the wire holds,
retention that cannot be subtracted from a date, a token that expires past year 9999.

Over the REST stack (real auth and query daemons, real PostgreSQL and Redis).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import jwt
import pytest

from ledger.config import Settings
from ledger.core import sessions
from tests.restenv import Rest, rest_stack

INT4 = 2**31
INT8 = 2**63


@pytest.fixture
async def rest(settings: Settings) -> AsyncIterator[Rest]:
    async with rest_stack(settings) as stack:
        yield stack


def refused(response: httpx.Response, *fields: str) -> str:
    """The detail of a 4xx answer, which names every one of ``fields``."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    detail = str(response.json()["detail"])
    for field in fields:
        assert field in detail, (field, detail)
    return detail


async def test_nul_characters_are_refused_naming_the_field(rest: Rest) -> None:
    owner = await rest.account()
    http, bearer = rest.http, owner.bearer
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    register = "/api/v1/accounts/register"
    refused(await http.post(register, json={"email": "a\x00" + email, "password": "long enough"}),
            "email")
    refused(await http.post(register, json={"email": email, "password": "long\x00enough"}),
            "password")
    refused(await http.post(register, json={"email": email, "password": "long enough",
                                            "name": "A\x00"}), "name")
    login = "/api/v1/accounts/login"
    refused(await http.post(login, json={"email": owner.email + "\x00",
                                         "password": "whatever1"}), "email")
    refused(await http.post(login, json={"email": owner.email, "password": "x\x00y"}),
            "password")
    refused(await http.patch("/api/v1/accounts/me/name", json={"name": "N\x00"},
                             headers=bearer), "name")
    refused(await http.post("/api/v1/projects", json={"name": "P\x00"}, headers=bearer), "name")
    refused(await http.post("/api/v1/projects", json={"name": "P", "environment": "p\x00"},
                            headers=bearer), "environment")
    refused(await http.patch(f"/api/v1/projects/{owner.project_id}", headers=bearer,
                             json={"environment": "e\x00"}), "environment")
    refused(await http.post(f"/api/v1/projects/{owner.project_id}/api-keys", headers=bearer,
                            json={"name": "k\x00"}), "name")
    # NUL in a path or a query parameter: the project refs, key ids and project_id values.
    for method, path in (("GET", "/api/v1/projects/a%00b"),
                         ("GET", "/api/v1/projects/a%00b/api-keys"),
                         ("DELETE", "/api/v1/api-keys/a%00b"),
                         ("GET", "/api/v1/logs?project_id=a%00b"),
                         ("GET", "/api/v1/error-groups?project_id=a%00b"),
                         ("GET", "/api/v1/logs?q=a%00b")):
        refused(await http.request(method, path, headers=bearer))
    # Nothing was stored: the account's name is unchanged.
    me = await http.get("/api/v1/accounts/me", headers=bearer)
    assert me.status_code == 200 and "\x00" not in me.text


async def test_integers_past_the_database_are_refused_naming_the_field(rest: Rest) -> None:
    owner = await rest.account()
    project = f"/api/v1/projects/{owner.project_id}"
    for field, value in (("retention_days", INT4), ("rate_limit_minute", INT4),
                         ("rate_limit_hour", INT4), ("daily_quota", INT8),
                         ("retention_days", 2_000_000_000)):
        response = await rest.http.patch(project, json={field: value}, headers=owner.bearer)
        refused(response, field)
    for field in ("rate_limit_minute", "rate_limit_hour"):
        response = await rest.http.post(f"{project}/api-keys", json={field: INT4},
                                        headers=owner.bearer)
        refused(response, field)
    # The project's reads still work: nothing out of range was stored.
    logs = await rest.http.get("/api/v1/logs", headers={"X-API-Key": owner.key})
    assert logs.status_code == 200, logs.text
    shown = await rest.http.get(project, headers=owner.bearer)
    assert shown.json()["retention_days"] == 90


async def test_a_token_expiring_past_the_calendar_is_401(rest: Rest) -> None:
    owner = await rest.account()
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": owner.tokens["account"]["id"], "sid": str(uuid.uuid4()), "typ": "access",
              "iss": sessions.ISSUER, "iat": now, "exp": 10**30}
    token = jwt.encode(claims, str(rest.settings.jwt_secret), algorithm=sessions.ALGORITHM)
    response = await rest.http.get("/api/v1/accounts/me",
                                   headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
