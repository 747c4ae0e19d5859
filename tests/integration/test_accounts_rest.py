"""Accounts, sessions, projects and API keys over REST (gateway in process, real auth daemon)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import jwt
import psycopg
import pytest

from ledger import bus
from ledger.config import Settings
from ledger.core import sessions
from ledger.daemons.gateway.edge import throttles
from tests.restenv import Rest, detail, rest_stack


@pytest.fixture
async def rest(settings: Settings) -> AsyncIterator[Rest]:
    async with rest_stack(settings) as env:
        yield env


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_register_login_me_rename(rest: Rest) -> None:
    email = f"Ada.{uuid.uuid4().hex[:6]}@Example.com"
    response = await rest.http.post("/api/v1/accounts/register",
                                    json={"email": email, "password": "analytical engine",
                                          "name": "Ada"})
    assert response.status_code == 201, response.text
    tokens = response.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 15 * 60
    assert tokens["refresh_token"].startswith("lrt_")
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 15 * 60 and claims["sub"] == tokens["account"]["id"]
    me = await rest.http.get("/api/v1/accounts/me", headers=bearer(tokens["access_token"]))
    assert me.json()["name"] == "Ada" and me.json()["email"].lower() == email.lower()
    renamed = await rest.http.patch("/api/v1/accounts/me/name", json={"name": "Countess"},
                                    headers=bearer(tokens["access_token"]))
    assert renamed.status_code == 200 and renamed.json()["name"] == "Countess"
    login = await rest.http.post("/api/v1/accounts/login",
                                 json={"email": email.lower(), "password": "analytical engine"})
    assert login.status_code == 200 and login.json()["account"]["name"] == "Countess"
    # Stored bcrypt, never the password.
    with psycopg.connect(rest.settings.auth_database_url or "") as conn:
        row = conn.execute("SELECT password_hash FROM accounts WHERE id = %s",
                           [tokens["account"]["id"]]).fetchone()
    assert row is not None and str(row[0]).startswith("$2") and "analytical" not in str(row[0])


async def test_registration_and_login_errors(rest: Rest) -> None:
    tokens = await rest.register("dup@example.com")
    assert tokens["account"]["email"] == "dup@example.com"
    cases = [
        ("/register", {"email": "DUP@example.com", "password": "long enough pw"}, 409),
        ("/register", {"email": "not-an-email", "password": "long enough pw"}, 400),
        ("/register", {"email": "short@example.com", "password": "short"}, 400),
        ("/register", {"email": "x@example.com"}, 422),
        ("/login", {"email": "dup@example.com", "password": "wrong password"}, 401),
        ("/login", {"email": "nobody@example.com", "password": "whatever it is"}, 401),
        ("/refresh", {"refresh_token": "lrt_made_up"}, 401),
        ("/logout", {"refresh_token": "garbage"}, 401),
    ]
    for path, body, status in cases:
        response = await rest.http.post(f"/api/v1/accounts{path}", json=body)
        assert response.status_code == status, (path, body, response.text)
        assert response.json()["detail"]
    wrong = await rest.http.post("/api/v1/accounts/login",
                                 json={"email": "dup@example.com", "password": "wrong password"})
    unknown = await rest.http.post("/api/v1/accounts/login",
                                   json={"email": "nobody@example.com", "password": "x" * 9})
    assert wrong.json() == unknown.json()  # which emails exist is not told


def client_at(rest: Rest, address: str) -> httpx.AsyncClient:
    """Another caller of the same in-process gateway, from ``address``."""
    transport = httpx.ASGITransport(app=rest.app, client=(address, 40001))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


async def test_failed_logins_are_throttled_per_email_and_address(rest: Rest) -> None:
    victim, other = f"victim-{uuid.uuid4().hex[:6]}@example.com", "other@example.com"
    for email in (victim, other):
        await rest.register(email, password="the right password")
    redis = rest.app.state.gateway.redis
    email_key = bus.login_failures_email(hashlib.sha256(victim.encode()).hexdigest())
    wrong = {"email": victim, "password": "a wrong password"}
    right = {"email": victim, "password": "the right password"}
    async with client_at(rest, "203.0.113.7") as guesser:
        for _ in range(3):
            assert (await guesser.post("/api/v1/accounts/login", json=wrong)).status_code == 401
        assert await redis.get(email_key) == b"3"  # under the digest: no email in key names
        assert all(victim not in k.decode() for k in await redis.keys("*"))
        # A success forgets the email's failures (the address keeps its count).
        assert (await guesser.post("/api/v1/accounts/login", json=right)).status_code == 200
        assert await redis.exists(email_key) == 0
        assert await redis.get(bus.login_failures_client("203.0.113.7")) == b"3"

        for _ in range(throttles.EMAIL_FAILURE_LIMIT):
            assert (await guesser.post("/api/v1/accounts/login", json=wrong)).status_code == 401
        for body in (right, {**right, "email": victim.upper()}):  # even the right password
            refused = await guesser.post("/api/v1/accounts/login", json=body)
            assert refused.status_code == 429, refused.text
            seconds = int(refused.headers["Retry-After"])
            assert 0 < seconds <= throttles.FAILURE_WINDOW_SECONDS
            assert refused.json() == {
                "detail": f"too many failed logins: try again in {seconds} seconds"}
    # Another email from another address is unaffected.
    other_login = await rest.http.post("/api/v1/accounts/login",
                                       json={"email": other, "password": "the right password"})
    assert other_login.status_code == 200, other_login.text
    # One address failing for many emails is refused too, whatever email it tries next.
    await redis.set(bus.login_failures_client("192.0.2.50"), throttles.CLIENT_FAILURE_LIMIT,
                    ex=60)
    async with client_at(rest, "192.0.2.50") as sprayer:
        refused = await sprayer.post("/api/v1/accounts/login",
                                     json={"email": other, "password": "the right password"})
    assert "too many failed logins" in detail(refused, 429)
    assert 0 < int(refused.headers["Retry-After"]) <= 60


async def test_refresh_rotates_and_reuse_closes_the_session(rest: Rest) -> None:
    first = await rest.register()
    second = (await rest.http.post("/api/v1/accounts/refresh",
                                   json={"refresh_token": first["refresh_token"]})).json()
    assert second["refresh_token"] != first["refresh_token"]
    third = await rest.http.post("/api/v1/accounts/refresh",
                                 json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200
    # The first token was already used: presenting it again means it leaked.
    reuse = await rest.http.post("/api/v1/accounts/refresh",
                                 json={"refresh_token": first["refresh_token"]})
    assert "already used" in detail(reuse, 401)
    # ... so the whole session is closed: the newest refresh and access tokens die too.
    newest = await rest.http.post("/api/v1/accounts/refresh",
                                  json={"refresh_token": third.json()["refresh_token"]})
    assert newest.status_code == 401
    me = await rest.http.get("/api/v1/accounts/me",
                             headers=bearer(third.json()["access_token"]))
    assert "logged out" in detail(me, 401)
    # Another session of the same account is unaffected.
    login = await rest.http.post("/api/v1/accounts/login", json={
        "email": first["account"]["email"], "password": "correct horse battery"})
    assert (await rest.http.get("/api/v1/accounts/me", headers=bearer(
        login.json()["access_token"]))).status_code == 200


async def test_expired_refresh_token_is_refused(rest: Rest) -> None:
    tokens = await rest.register()
    with psycopg.connect(rest.settings.auth_database_url or "", autocommit=True) as conn:
        conn.execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'"
                     " WHERE token_hash = %s", [sessions.token_hash(tokens["refresh_token"])])
    response = await rest.http.post("/api/v1/accounts/refresh",
                                    json={"refresh_token": tokens["refresh_token"]})
    assert "expired" in detail(response, 401)


async def test_logout_revokes_refresh_and_access_tokens(rest: Rest) -> None:
    tokens = await rest.register()
    response = await rest.http.post("/api/v1/accounts/logout",
                                    json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 204 and response.content == b""
    again = await rest.http.post("/api/v1/accounts/logout",
                                 json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 204  # idempotent
    refresh = await rest.http.post("/api/v1/accounts/refresh",
                                   json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401
    me = await rest.http.get("/api/v1/accounts/me", headers=bearer(tokens["access_token"]))
    assert "logged out" in detail(me, 401)


async def test_password_change_ends_other_sessions(rest: Rest) -> None:
    tokens = await rest.register(password="old password 1")
    email = tokens["account"]["email"]
    other = (await rest.http.post("/api/v1/accounts/login",
                                  json={"email": email, "password": "old password 1"})).json()
    wrong = await rest.http.post("/api/v1/accounts/me/password",
                                 json={"current_password": "nope nope", "new_password": "x" * 12},
                                 headers=bearer(tokens["access_token"]))
    assert "current password" in detail(wrong, 401)
    short = await rest.http.post("/api/v1/accounts/me/password",
                                 json={"current_password": "old password 1",
                                       "new_password": "short"},
                                 headers=bearer(tokens["access_token"]))
    assert short.status_code == 400
    changed = await rest.http.post("/api/v1/accounts/me/password",
                                   json={"current_password": "old password 1",
                                         "new_password": "new password 2"},
                                   headers=bearer(tokens["access_token"]))
    assert changed.status_code == 200, changed.text
    fresh = changed.json()
    for old in (tokens, other):
        me = await rest.http.get("/api/v1/accounts/me", headers=bearer(old["access_token"]))
        assert me.status_code == 401
        refresh = await rest.http.post("/api/v1/accounts/refresh",
                                       json={"refresh_token": old["refresh_token"]})
        assert refresh.status_code == 401
    assert (await rest.http.get("/api/v1/accounts/me",
                                headers=bearer(fresh["access_token"]))).status_code == 200
    old_login = await rest.http.post("/api/v1/accounts/login",
                                     json={"email": email, "password": "old password 1"})
    assert old_login.status_code == 401
    new_login = await rest.http.post("/api/v1/accounts/login",
                                     json={"email": email, "password": "new password 2"})
    assert new_login.status_code == 200


async def test_projects_and_keys_of_an_account(rest: Rest) -> None:
    tokens = await rest.register()
    auth = bearer(tokens["access_token"])
    created = await rest.http.post("/api/v1/projects", headers=auth,
                                   json={"name": "Shop", "slug": "shop-x1",
                                         "environment": "staging"})
    assert created.status_code == 201, created.text
    project = created.json()
    assert project["account_id"] == tokens["account"]["id"] and project["environment"] == "staging"
    taken = await rest.http.post("/api/v1/projects", headers=auth,
                                 json={"name": "Shop", "slug": "shop-x1"})
    assert taken.status_code == 409
    bad_slug = await rest.http.post("/api/v1/projects", headers=auth,
                                    json={"name": "Shop", "slug": "Not A Slug"})
    assert bad_slug.status_code == 422 and "slug" in bad_slug.json()["detail"]
    listed = (await rest.http.get("/api/v1/projects", headers=auth)).json()["projects"]
    assert [p["slug"] for p in listed] == ["shop-x1"]
    assert (await rest.http.get("/api/v1/projects/shop-x1", headers=auth)).json() == project
    patched = await rest.http.patch(f"/api/v1/projects/{project['id']}", headers=auth,
                                    json={"retention_days": 30, "daily_quota": 500})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["retention_days"], patched.json()["daily_quota"]) == (30, 500)
    bad_patch = await rest.http.patch(f"/api/v1/projects/{project['id']}", headers=auth,
                                      json={"retention_days": 0})
    assert bad_patch.status_code == 422
    quota = (await rest.http.get(f"/api/v1/projects/{project['id']}/quota", headers=auth)).json()
    assert quota["daily_quota"] == 500 and quota["used_today"] == 0
    assert quota["remaining_today"] == 500
    assert datetime.fromisoformat(quota["resets_at"]) > datetime.now(UTC)

    key = await rest.http.post(f"/api/v1/projects/{project['id']}/api-keys", headers=auth,
                               json={"name": "app", "scopes": ["ingest"]})
    assert key.status_code == 201, key.text
    made = key.json()
    assert made["full_key"].startswith(f"ledger_{made['key_id']}_") and made["warning"]
    assert made["key"]["scopes"] == ["ingest"]
    bad_scope = await rest.http.post(f"/api/v1/projects/{project['id']}/api-keys", headers=auth,
                                     json={"scopes": ["admin"]})
    assert bad_scope.status_code == 400
    keys = (await rest.http.get("/api/v1/projects/shop-x1/api-keys",
                                headers=auth)).json()["api_keys"]
    assert [k["key_id"] for k in keys] == [made["key_id"]]
    assert made["full_key"] not in str(keys)
    # API keys cannot manage anything, whatever their scopes.
    for method, path in [("GET", "/api/v1/projects"), ("POST", "/api/v1/projects"),
                         ("GET", f"/api/v1/projects/{project['id']}/api-keys"),
                         ("DELETE", f"/api/v1/api-keys/{made['key_id']}"),
                         ("GET", "/api/v1/accounts/me")]:
        for headers in ({"X-API-Key": made["full_key"]}, bearer(made["full_key"])):
            response = await rest.http.request(method, path, headers=headers,
                                               json={"name": "x"} if method == "POST" else None)
            assert "API keys cannot manage" in detail(response, 403), (method, path)
    revoked = await rest.http.delete(f"/api/v1/api-keys/{made['key_id']}", headers=auth)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    missing = await rest.http.delete("/api/v1/api-keys/doesnotexist", headers=auth)
    assert missing.status_code == 404
    assert (await rest.http.get("/api/v1/projects/nope", headers=auth)).status_code == 404
    assert (await rest.http.get("/api/v1/projects")).status_code == 401
