"""Who is calling (issue 9, items 12, 14 and 15): client addresses, key-failure throttles,
/health/deep, the breaker's state, revocations racing the caches.

Over the gateway app of ``test_gateway`` (real auth and ingest daemons, real Redis).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
from psycopg import sql

from ledger import __version__, bus
from ledger.core import api_keys
from ledger.daemons import auth as auth_daemon
from ledger.daemons.gateway import create as create_gateway_daemon
from ledger.daemons.gateway.app import create_app
from ledger.daemons.gateway.edge.breaker import BreakerState
from ledger.daemons.gateway.edge.client_address import forwarded_client
from tests.integration.test_gateway import (
    CLIENT_IP,
    Env,
    assert_error,
    log,
    start_daemon,
)
from tests.integration.test_gateway import env as env
from tests.waiting import wait_until

SINGLE = "/api/v1/ingest/single"


def wrong_secret(full_key: str) -> str:
    key_id, secret = api_keys.parse_key(full_key)
    return f"ledger_{key_id}_{'b' * len(secret)}"


async def test_one_keys_failures_do_not_lock_out_the_other_keys_of_that_address(
        env: Env) -> None:
    guessed = await env.new_key()
    assert (await env.post(SINGLE, log(), key=guessed)).status_code == 202
    env.gateway.keys.cache.clear()  # memory forgets it; its Redis entry remains
    for _ in range(5):  # the env's limit: 5 failures per (address, key id)
        assert_error(await env.post(SINGLE, log(), key=wrong_secret(guessed)), 401)
    assert_error(await env.post(SINGLE, log(), key=wrong_secret(guessed)), 429)
    # Another key of the same address, never validated (in no cache): it works.
    fresh = await env.new_key()
    assert (await env.post(SINGLE, log(), key=fresh)).status_code == 202
    # The guessed key itself, whose holder knows the secret, keeps working too.
    assert (await env.post(SINGLE, log(), key=guessed)).status_code == 202


async def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
        env: Env) -> None:
    unknown = "ledger_zzzzzzzzzzzz_" + "a" * 52
    key_id, _ = api_keys.parse_key(unknown)
    response = await env.post(SINGLE, log(), key=unknown,
                              headers={"X-Forwarded-For": "192.0.2.55"})
    assert_error(response, 401)
    assert await env.redis.exists(bus.auth_failures(CLIENT_IP, key_id))
    assert not await env.redis.exists(bus.auth_failures("192.0.2.55", key_id))

    behind_proxy = create_app(env.settings.with_overrides(
        gateway_trusted_proxies=(f"{CLIENT_IP}/32",)))
    transport = httpx.ASGITransport(app=behind_proxy, client=(CLIENT_IP, 1))
    async with behind_proxy.router.lifespan_context(behind_proxy), httpx.AsyncClient(
            transport=transport, base_url="http://gateway") as http:
        response = await http.post(SINGLE, json=log(), headers={
            "X-API-Key": unknown, "X-Forwarded-For": "10.9.9.9, 192.0.2.66"})
        assert_error(response, 401)
    assert await env.redis.exists(bus.auth_failures("192.0.2.66", key_id))
    assert not await env.redis.exists(bus.auth_failures("10.9.9.9", key_id))


def test_forwarded_client_reads_from_the_right_past_trusted_proxies() -> None:
    trusted = ("10.0.0.0/8",)
    assert forwarded_client("10.0.0.1", "203.0.113.9", ()) == "10.0.0.1"
    assert forwarded_client("192.0.2.1", "203.0.113.9", trusted) == "192.0.2.1"
    assert forwarded_client("10.0.0.1", "203.0.113.9", trusted) == "203.0.113.9"
    assert forwarded_client("10.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.7", trusted) \
        == "203.0.113.9"
    assert forwarded_client("10.0.0.1", "10.0.0.9, 10.0.0.7", trusted) == "10.0.0.9"
    assert forwarded_client("10.0.0.1", "not-an-address", trusted) == "10.0.0.1"
    assert forwarded_client("10.0.0.1", "", trusted) == "10.0.0.1"


async def test_the_http_server_does_not_rewrite_the_peer_from_x_forwarded_for(
        env: Env) -> None:
    daemon = create_gateway_daemon(env.settings)
    await daemon.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.port}") as http:
            response = await http.post("/api/v1/accounts/login", headers={
                "X-Forwarded-For": "192.0.2.77"},
                json={"email": "nobody@example.com", "password": "wrong password"})
            assert response.status_code == 401, response.text
    finally:
        await daemon.stop()
    assert await env.redis.exists(bus.login_failures_client("127.0.0.1"))
    assert not await env.redis.exists(bus.login_failures_client("192.0.2.77"))


# -- /health/deep and the breaker (item 14, 15) ----------------------------------------------


async def test_deep_health_tells_the_public_only_the_status(env: Env) -> None:
    for headers in ({}, {"X-Ledger-Internal-Token": "not the token"}):
        response = await env.http.get("/health/deep", headers=headers)
        assert response.status_code == 503  # query is not running
        assert response.json() == {"status": "unavailable", "version": __version__}
    operator = {"X-Ledger-Internal-Token": str(env.settings.internal_token)}
    body = (await env.http.get("/health/deep", headers=operator)).json()
    assert body["checks"]["query"].startswith("unavailable at 127.0.0.1:")
    assert body["breakers"] == {"auth": "closed", "query": "closed"}


async def test_a_database_outage_is_the_databases_not_the_daemons(env: Env) -> None:
    auth_db = psycopg.conninfo.conninfo_to_dict(str(env.settings.auth_database_url))["dbname"]
    admin = await psycopg.AsyncConnection.connect(
        str(env.settings.auth_database_url).rsplit("/", 1)[0] + "/postgres", autocommit=True)
    operator = {"X-Ledger-Internal-Token": str(env.settings.internal_token)}
    try:
        # The auth database goes away: no new connection, every open one cut.
        await admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(
            sql.Identifier(auth_db)))
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = %s AND pid <> pg_backend_pid()", (auth_db,))
        response = await env.http.get("/health/deep", headers=operator)
        checks = response.json()["checks"]
        assert response.status_code == 503
        assert checks["auth"] == "ok", checks  # the daemon answered, within the budget
        assert checks["auth.postgres"].startswith("error"), checks
        assert checks["auth.redis"] == "ok" and checks["ingest"] == "ok", checks
    finally:
        await admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(
            sql.Identifier(auth_db)))
        await admin.close()


async def test_the_breaker_closes_by_itself_once_auth_is_back(env: Env) -> None:
    await env.daemons["auth"].stop()
    never_seen = await env.new_key()
    while env.gateway.keys.breaker.state is not BreakerState.OPEN:
        assert_error(await env.post(SINGLE, log(), key=never_seen), 503)
    operator = {"X-Ledger-Internal-Token": str(env.settings.internal_token)}
    shown = (await env.http.get("/health/deep", headers=operator)).json()
    assert shown["breakers"]["auth"] in ("open", "half_open")
    port = int(env.settings.auth_addr.rsplit(":", 1)[1])
    env.daemons["auth"] = await start_daemon(auth_daemon, env.settings.with_overrides(
        auth_listen=f"127.0.0.1:{port}"))
    # No request comes by: the gateway's own probe closes the circuit.
    await wait_until(lambda: env.gateway.keys.breaker.state is BreakerState.CLOSED,
                     "the breaker closed with auth back and no request")
    assert (await env.post(SINGLE, log(), key=never_seen)).status_code == 202


class _PausingAuth:
    """The real auth client, held after its answer until the test releases it."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.answered = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def validate_api_key(self, full_key: str, **kwargs: Any) -> Any:
        identity = await self.real.validate_api_key(full_key, **kwargs)
        self.answered.set()
        await self.release.wait()
        return identity


async def test_a_revocation_during_a_lookup_is_not_undone_by_the_cache(env: Env) -> None:
    keys = env.gateway.keys
    key = await env.new_key()  # in no cache yet: its check goes to auth
    paused = _PausingAuth(keys.auth)
    keys.auth = paused  # type: ignore[assignment]
    try:
        first = asyncio.create_task(env.post(SINGLE, log(), key=key))
        await asyncio.wait_for(paused.answered.wait(), 10)
        # auth said "valid"; before the gateway caches it, the key is revoked everywhere.
        generation = keys.generation
        await api_keys.revoke_key(env.conn, env.redis, api_keys.parse_key(key)[0])
        await wait_until(lambda: keys.generation != generation,
                         "the revocation reached this gateway")
        paused.release.set()
        assert (await first).status_code == 202  # answered before the revocation
    finally:
        keys.auth = paused.real
    assert_error(await env.post(SINGLE, log(), key=key), 401)
