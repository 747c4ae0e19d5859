"""Who is calling (issue 9, items 12 and 15): client addresses, key-failure throttles, the
breaker's state, revocations racing the caches.

Over the gateway app of ``test_gateway`` (real auth and ingest daemons, real Redis).
"""

from __future__ import annotations

import httpx

from ledger import bus
from ledger.core import api_keys
from ledger.daemons.gateway import create as create_gateway_daemon
from ledger.daemons.gateway.app import create_app
from ledger.daemons.gateway.edge.client_address import forwarded_client
from tests.integration.test_gateway import (
    CLIENT_IP,
    Env,
    assert_error,
    log,
)
from tests.integration.test_gateway import env as env

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
