"""The Sentry routes of the gateway in process, over REAL auth and ingest daemons.

As in test_gateway.py, ingest runs without writers: the project's queue depth says exactly how
many events became logs. The real SDKs are in tests/e2e/test_sentry_sdks.py.
"""

from __future__ import annotations

import asyncio
import gzip
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import brotli
import httpx
import orjson
import pytest

from ledger.config import Settings
from ledger.core import sentry
from tests.integration import test_gateway
from tests.integration.test_gateway import DAILY_QUOTA, MAX_BODY, Env, assert_error
from tests.restenv import Rest, rest_stack

env = test_gateway.env  # the same fixture: gateway in process, real auth and ingest


def event(**extra: Any) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "timestamp": time.time(), "platform": "python",
            "level": "error", "exception": {"values": [{
                "type": "ValueError", "value": "bad sku", "stacktrace": {"frames": [
                    {"function": "buy", "filename": "shop.py", "abs_path": "/app/shop.py",
                     "lineno": 3, "in_app": True}]}}]}, **extra}


def envelope(*items: tuple[str, bytes], header: dict[str, Any] | None = None) -> bytes:
    lines = [orjson.dumps(header or {})]
    for kind, payload in items:
        lines += [orjson.dumps({"type": kind, "length": len(payload)}), payload]
    return b"\n".join(lines) + b"\n"


def event_item(data: dict[str, Any]) -> tuple[str, bytes]:
    return ("event", orjson.dumps(data))


def auth(key: str) -> dict[str, str]:
    return {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=test/1, sentry_key={key}"}


async def send(env: Env, body: bytes, *, key: str | None = None, number: int | None = None,
               path: str = "envelope/", headers: dict[str, str] | None = None,
               ) -> httpx.Response:
    sent = {"Content-Type": "application/x-sentry-envelope", **auth(key or env.key),
            **(headers or {})}
    number = env.project.dsn_id if number is None else number
    return await env.http.post(f"/api/{number}/{path}", content=body, headers=sent)


async def test_an_envelope_event_is_queued_and_answered_with_its_id(env: Env) -> None:
    data = event()
    response = await send(env, envelope(event_item(data), ("client_report", b"{}")))
    assert response.status_code == 200, response.text
    assert response.json() == {"id": data["event_id"]}
    assert await env.queued() == 1
    metrics = (await env.http.get("/metrics")).text
    assert 'ledger_sentry_items_total{type="event"} 1' in metrics
    assert 'ledger_sentry_items_total{type="client_report"} 1' in metrics


async def test_items_that_are_not_events_are_accepted_and_not_stored(env: Env) -> None:
    body = envelope(("transaction", b'{"type":"transaction"}'), ("session", b'{"sid":"x"}'),
                    ("attachment", b"\x00\x01binary\n"), ("statsd", b"a:1|c"),
                    ("something_new", b"?"), header={"event_id": "a" * 32})
    response = await send(env, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": "a" * 32}
    assert await env.queued() == 0
    assert 'ledger_sentry_items_total{type="other"} 1' in (await env.http.get("/metrics")).text


async def test_the_key_may_come_from_the_query_the_envelope_dsn_or_x_api_key(env: Env) -> None:
    number = env.project.dsn_id
    body = envelope(event_item(event()))
    by_query = await env.http.post(f"/api/{number}/envelope/?sentry_key={env.key}&"
                                   "sentry_version=7", content=body)
    assert by_query.status_code == 200, by_query.text
    dsn = sentry.dsn(env.key, "ledger.example", number)
    by_dsn = await env.http.post(f"/api/{number}/envelope/",
                                 content=envelope(event_item(event()), header={"dsn": dsn}))
    assert by_dsn.status_code == 200, by_dsn.text
    by_api_key = await env.http.post(f"/api/{number}/envelope", content=body,
                                     headers={"X-API-Key": env.key})
    assert by_api_key.status_code == 200, by_api_key.text  # the path without its slash too
    assert await env.queued() == 3


async def test_the_legacy_store_route_takes_one_event(env: Env) -> None:
    data = event()
    response = await send(env, orjson.dumps(data), path="store/")
    assert response.status_code == 200, response.text
    assert response.json() == {"id": data["event_id"]}
    assert await env.queued() == 1
    malformed = await send(env, b"[1]", path="store/")
    assert "must be a JSON object" in assert_error(malformed, 400)


async def test_a_key_of_another_project_is_403_and_no_key_is_401(env: Env) -> None:
    _, other_key = await env.other_project_key("other", daily_quota=1000)
    body = envelope(event_item(event()))
    refused = await send(env, body, key=other_key)
    detail = assert_error(refused, 403)
    assert "'other'" in detail and str(env.project.dsn_id) in detail
    unknown = await send(env, body, number=999_999)
    assert_error(unknown, 403)
    missing = await env.http.post(f"/api/{env.project.dsn_id}/envelope/", content=body)
    assert "DSN" in assert_error(missing, 401)
    wrong = await send(env, body, key="ledger_abcdef234567_" + "a" * 52)
    assert_error(wrong, 401)
    not_a_number = await env.http.post("/api/shop/envelope/", content=body,
                                       headers=auth(env.key))
    assert "path parameter 'project'" in assert_error(not_a_number, 422)
    assert await env.queued() == 0


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_compressed_bodies_are_accepted(env: Env, encoding: str) -> None:
    body = envelope(event_item(event()))
    packed = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress}[encoding]
    response = await send(env, packed(body), headers={"Content-Encoding": encoding})
    assert response.status_code == 200, response.text
    assert await env.queued() == 1
    corrupt = await send(env, b"not " + encoding.encode(),
                         headers={"Content-Encoding": encoding})
    assert f"not valid {encoding}" in assert_error(corrupt, 400)


async def test_malformed_envelopes_are_400_naming_the_item(env: Env) -> None:
    good = orjson.dumps(event())
    broken = b"{}\n" + b'{"type":"event"}\n' + good + b'\n{"type":"event","length":9999}\n{}'
    detail = assert_error(await send(env, broken), 400)
    assert "item 1 (event)" in detail and "past the end" in detail
    not_json = envelope(event_item(event()), ("event", b"{oops"))
    assert "item 1 (event) is not a JSON event" in assert_error(await send(env, not_json), 400)
    assert await env.queued() == 0  # nothing half-stored


async def test_an_event_the_log_rules_refuse_is_400_naming_the_item(env: Env) -> None:
    old = (datetime.now(UTC) - timedelta(days=400)).timestamp()
    body = envelope(("session", b"{}"), event_item(event(timestamp=old)))
    detail = assert_error(await send(env, body), 400)
    assert detail.startswith("item 1 (event): timestamp:")
    assert await env.queued() == 0


async def test_an_oversized_envelope_is_413(env: Env) -> None:
    body = envelope(event_item(event(extra={"blob": "x" * MAX_BODY})))
    assert_error(await send(env, body), 413)
    bomb = gzip.compress(b"{}\n" + b" " * (MAX_BODY * 4))
    assert_error(await send(env, bomb, headers={"Content-Encoding": "gzip"}), 413)


async def test_limits_are_429_with_retry_after_and_x_sentry_rate_limits(env: Env) -> None:
    key = await env.new_key(rate_limit_minute=2)
    body = envelope(event_item(event()))
    await send(env, body, key=key)
    await asyncio.sleep(1 - time.time() % 1 + 0.02)  # the test app's minute lasts 1 s
    for _ in range(2):
        assert (await send(env, body, key=key)).status_code == 200
    refused = await send(env, body, key=key)
    assert_error(refused, 429)
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["X-Sentry-Rate-Limits"] == "1::key"


async def test_the_daily_quota_is_429_the_sdk_understands(env: Env) -> None:
    many = envelope(*(event_item(event()) for _ in range(DAILY_QUOTA)))
    assert (await send(env, many)).status_code == 200
    over = await send(env, envelope(event_item(event())))
    assert "quota" in assert_error(over, 429)
    retry = over.headers["Retry-After"]
    assert over.headers["X-Sentry-Rate-Limits"] == f"{retry}::key"
    assert await env.queued() == DAILY_QUOTA


async def test_openapi_documents_the_sentry_routes(env: Env) -> None:
    paths = (await env.http.get("/openapi.json")).json()["paths"]
    for path in ("/api/{project}/envelope/", "/api/{project}/store/"):
        operation = paths[path]["post"]
        assert {"200", "400", "403", "413", "429"} <= set(operation["responses"])
        assert "application/x-sentry-envelope" in operation["requestBody"]["content"]


@pytest.fixture
async def rest(settings: Settings) -> AsyncIterator[Rest]:
    async with rest_stack(settings) as running:
        yield running


async def test_projects_have_distinct_stable_dsn_ids_and_new_keys_come_with_a_dsn(
        rest: Rest) -> None:
    first, second = await rest.account(), await rest.account()
    numbers = [first.project["dsn_id"], second.project["dsn_id"]]
    assert all(isinstance(n, int) and n > 0 for n in numbers) and numbers[0] != numbers[1]
    again = await rest.http.get(f"/api/v1/projects/{first.project['slug']}",
                                headers=first.bearer)
    assert again.json()["dsn_id"] == numbers[0]
    created = await rest.http.post(f"/api/v1/projects/{first.project_id}/api-keys",
                                   headers=first.bearer, json={"scopes": ["ingest"]})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["dsn"] == f"http://{body['full_key']}@gateway/{numbers[0]}"
