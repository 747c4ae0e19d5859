"""Logs, errors and error groups over REST: gateway in process, real auth and query daemons.

Covers every filter and paging mode through the API, the access rules (an API key reads only
its project with the read scope; an account reads only its projects; anything else is 404),
tokens that expired or were logged out, and parameters that are wrong.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from ledger.config import Settings
from ledger.core import sessions
from tests.logrows import insert_group, insert_logs, log
from tests.restenv import Rest, detail, rest_stack
from tests.waiting import wait_until


@pytest.fixture
async def rest(settings: Settings) -> AsyncIterator[Rest]:
    async with rest_stack(settings) as env:
        yield env


def key_headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def get(rest: Rest, path: str, key: str | None = None,
              headers: dict[str, str] | None = None, **params: str) -> Any:
    response = await rest.http.get(path, params=params,
                                   headers=headers or key_headers(key or ""))
    assert response.status_code == 200, response.text
    return response.json()


def messages(page: dict[str, Any]) -> list[str]:
    return [row["message"] for row in page["logs"]]


async def test_every_filter_through_the_api(rest: Rest) -> None:
    owner = await rest.account()
    now = datetime.now(UTC)
    p = owner.project_id
    insert_logs(rest.settings.logs_database_url or "", [
        log(p, now - timedelta(minutes=1), message="info prod", environment="prod",
            release="2.0"),
        log(p, now - timedelta(minutes=2), message="error staging", level="error",
            log_type="exception", error_type="TimeoutError", environment="staging",
            release="2.1", error_fingerprint="fp-a"),
        log(p, now - timedelta(minutes=3), message="critical db", level="critical",
            log_type="database", environment="prod", release="2.1", error_fingerprint="fp-b"),
        log(p, now - timedelta(days=10), message="old warning", level="warning"),
    ])
    expectations: list[tuple[dict[str, str], list[str]]] = [
        ({}, ["info prod", "error staging", "critical db", "old warning"]),
        ({"level": "error"}, ["error staging"]),
        ({"level": "error,critical"}, ["error staging", "critical db"]),
        ({"log_type": "database"}, ["critical db"]),
        ({"environment": "prod"}, ["info prod", "critical db"]),
        ({"release": "2.1"}, ["error staging", "critical db"]),
        ({"error_fingerprint": "fp-a"}, ["error staging"]),
        ({"search": "timeout"}, ["error staging"]),
        ({"period": "last24h"}, ["info prod", "error staging", "critical db"]),
        ({"period": "last30days", "level": "warning"}, ["old warning"]),
        ({"periodFrom": (now - timedelta(days=11)).isoformat(),
          "periodTo": (now - timedelta(days=9)).isoformat()}, ["old warning"]),
        ({"project_id": owner.project["slug"], "limit": "1"}, ["info prod"]),
    ]
    for params, expected in expectations:
        page = await get(rest, "/api/v1/logs", owner.key, **params)
        assert messages(page) == expected, params
    # Repeated parameters mean the same as a comma-separated list.
    response = await rest.http.get("/api/v1/logs?level=error&level=critical",
                                   headers=key_headers(owner.key))
    assert [r["message"] for r in response.json()["logs"]] == ["error staging", "critical db"]
    errors = await get(rest, "/api/v1/errors/list", owner.key)
    assert messages(errors) == ["error staging", "critical db"]
    assert (errors["total"], errors["total_exact"], errors["has_more"]) == (2, True, False)
    # The account reads the same through its access token.
    page = await get(rest, "/api/v1/logs", headers=owner.bearer, level="critical")
    assert messages(page) == ["critical db"]
    one = page["logs"][0]
    assert await get(rest, f"/api/v1/logs/{one['id']}", owner.key) == one


async def test_cursor_walk_through_the_api_while_logs_arrive(rest: Rest) -> None:
    owner = await rest.account()
    url = rest.settings.logs_database_url or ""
    base = datetime.now(UTC) - timedelta(minutes=5)
    original = insert_logs(url, [log(owner.project_id, base - timedelta(seconds=i // 4),
                                     message=f"m{i}") for i in range(40)])
    seen: list[str] = []
    params = {"limit": "9", "period": "last1h"}
    while True:
        page = await get(rest, "/api/v1/logs", owner.key, **params)
        seen.extend(row["id"] for row in page["logs"])
        insert_logs(url, [log(owner.project_id, datetime.now(UTC), message="late")])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        params["cursor"] = page["next_cursor"]
    expected = sorted(original, key=lambda r: (r["timestamp"], r["id"]), reverse=True)
    assert seen == [r["id"] for r in expected]


async def test_search_with_sql_and_like_metacharacters(rest: Rest) -> None:
    owner = await rest.account()
    now = datetime.now(UTC)
    texts = ["50% off", "50 off", "snake_case", "snakeXcase", "C:\\temp", "C:temp",
             "'; DELETE FROM logs; --"]
    insert_logs(rest.settings.logs_database_url or "",
                [log(owner.project_id, now - timedelta(seconds=i), message=t)
                 for i, t in enumerate(texts)])
    for search, expected in [("50%", ["50% off"]), ("e_c", ["snake_case"]),
                             ("C:\\", ["C:\\temp"]), ("'; DELETE", ["'; DELETE FROM logs; --"]),
                             ("%_%", [])]:
        assert messages(await get(rest, "/api/v1/logs", owner.key, search=search)) == expected
    assert len((await get(rest, "/api/v1/logs", owner.key))["logs"]) == len(texts)


@pytest.mark.parametrize(("params", "named"), [
    ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"), ({"offset": "-5"}, "offset"),
    ({"level": "fatal"}, "level"), ({"log_type": "weird"}, "log_type"),
    ({"period": "forever"}, "period"), ({"periodFrom": "yesterday"}, "periodFrom"),
    ({"periodFrom": "2024-02-01", "periodTo": "2024-01-01"}, "periodFrom"),
    ({"cursor": "!!!"}, "cursor"), ({"search": "s" * 500}, "search"),
    ({"search": "nul\x00byte"}, "search"), ({"colour": "red"}, "colour"),
])
async def test_bad_parameters_are_400_naming_the_parameter(rest: Rest, params: dict[str, str],
                                                           named: str) -> None:
    owner = await rest.account()
    response = await rest.http.get("/api/v1/logs", params=params, headers=key_headers(owner.key))
    assert named in detail(response, 400)


async def test_bad_parameters_of_error_routes(rest: Rest) -> None:
    owner = await rest.account()
    headers = key_headers(owner.key)
    response = await rest.http.get("/api/v1/errors/list", params={"level": "debug"},
                                   headers=headers)
    assert "level" in detail(response, 400)
    response = await rest.http.get("/api/v1/error-groups", params={"sort": "random"},
                                   headers=headers)
    assert "sort" in detail(response, 400)
    group = insert_group(rest.settings.logs_database_url or "", owner.project_id, "fp")
    response = await rest.http.patch(f"/api/v1/error-groups/{group['id']}/status",
                                     json={"status": "done"}, headers=headers)
    assert "status" in detail(response, 400)
    response = await rest.http.patch(f"/api/v1/error-groups/{group['id']}/status",
                                     json={"status": "ignored", "resolved_in_release": "1"},
                                     headers=headers)
    assert "resolved_in_release" in detail(response, 400)
    response = await rest.http.patch(f"/api/v1/error-groups/{group['id']}/status",
                                     content=b"{not json", headers=headers)
    assert response.status_code == 422 and "detail" in response.json()
    assert (await rest.http.get("/api/v1/logs/not-a-uuid", headers=headers)).status_code == 404


async def test_error_groups_through_the_api(rest: Rest) -> None:
    owner = await rest.account()
    url = rest.settings.logs_database_url or ""
    now = datetime.now(UTC)
    [sample] = insert_logs(url, [log(owner.project_id, now, level="error",
                                     message="charge failed", error_fingerprint="fp-pay")])
    pay = insert_group(url, owner.project_id, "fp-pay", event_count=7, sample_log_id=sample["id"],
                       title="CardError: declined",
                       components={"method": "type_message", "error_type": "CardError",
                                   "message": "declined for <num>"})
    insert_group(url, owner.project_id, "fp-noise", event_count=70,
                 last_seen=now - timedelta(hours=1))
    page = await get(rest, "/api/v1/error-groups", owner.key)
    assert [g["fingerprint"] for g in page["error_groups"]] == ["fp-pay", "fp-noise"]
    assert page["total"] == 2 and page["has_more"] is False
    by_count = await get(rest, "/api/v1/error-groups", owner.key, sort="count")
    assert by_count["error_groups"][0]["fingerprint"] == "fp-noise"
    shown = await get(rest, f"/api/v1/error-groups/{pay['id']}", owner.key)
    assert shown["why_grouped"].startswith("Same error type and normalised message: CardError")
    assert shown["components"]["message"] == "declined for <num>"
    assert shown["sample_log"]["message"] == "charge failed" and shown["event_count"] == 7
    # The group's events: the logs filter by its fingerprint.
    events = await get(rest, "/api/v1/logs", owner.key, error_fingerprint=shown["fingerprint"])
    assert messages(events) == ["charge failed"]
    response = await rest.http.patch(f"/api/v1/error-groups/{pay['id']}/status",
                                     json={"status": "resolved", "resolved_in_release": "3.1.0"},
                                     headers=owner.bearer)
    assert response.status_code == 200, response.text
    resolved = response.json()
    assert resolved["status"] == "resolved" and resolved["resolved_in_release"] == "3.1.0"
    assert resolved["resolved_at"] is not None
    unresolved = await get(rest, "/api/v1/error-groups", owner.key, status="unresolved")
    assert [g["fingerprint"] for g in unresolved["error_groups"]] == ["fp-noise"]


async def test_no_idor_with_keys_or_tokens_of_other_accounts(rest: Rest) -> None:
    alice, mallory = await rest.account(), await rest.account()
    url = rest.settings.logs_database_url or ""
    now = datetime.now(UTC)
    [secret] = insert_logs(url, [log(alice.project_id, now, level="error",
                                     message="alice-private")])
    group = insert_group(url, alice.project_id, "fp-alice")
    attempts: list[tuple[str, str, dict[str, str]]] = []
    for creds in (key_headers(mallory.key), mallory.bearer):
        attempts += [
            ("GET", f"/api/v1/logs?project_id={alice.project_id}", creds),
            ("GET", f"/api/v1/logs?project_id={alice.project['slug']}", creds),
            ("GET", f"/api/v1/errors/list?project_id={alice.project_id}", creds),
            ("GET", f"/api/v1/error-groups?project_id={alice.project_id}", creds),
            ("GET", f"/api/v1/logs/{secret['id']}", creds),
            ("GET", f"/api/v1/error-groups/{group['id']}", creds),
            ("PATCH", f"/api/v1/error-groups/{group['id']}/status", creds),
        ]
    attempts += [  # projects and keys of another account, with an access token
        ("GET", f"/api/v1/projects/{alice.project['slug']}", mallory.bearer),
        ("PATCH", f"/api/v1/projects/{alice.project_id}", mallory.bearer),
        ("GET", f"/api/v1/projects/{alice.project_id}/quota", mallory.bearer),
        ("GET", f"/api/v1/projects/{alice.project_id}/api-keys", mallory.bearer),
        ("POST", f"/api/v1/projects/{alice.project_id}/api-keys", mallory.bearer),
        ("DELETE", f"/api/v1/api-keys/{alice.key.split('_')[1]}", mallory.bearer),
    ]
    bodies = {"PATCH": {"status": "ignored"}, "POST": {}}
    for method, path, creds in attempts:
        body = ({"name": "x"} if "/projects/" in path and method == "PATCH"
                else bodies.get(method))
        response = await rest.http.request(method, path, headers=creds, json=body)
        assert response.status_code == 404, (method, path, response.text)
        # The answer is the same as for an id that does not exist: nothing of Alice's shows.
        assert "alice-private" not in response.text and "fp-alice" not in response.text
        assert alice.email not in response.text
    # Nothing changed, and Alice still reads her data.
    assert (await get(rest, f"/api/v1/error-groups/{group['id']}", alice.key))["status"] == \
        "unresolved"
    assert messages(await get(rest, "/api/v1/logs", alice.key)) == ["alice-private"]
    assert (await rest.http.get(f"/api/v1/logs/{alice.key}", headers=alice.bearer)).status_code \
        == 404
    # Mallory sees only his own (empty) project.
    assert (await get(rest, "/api/v1/logs", headers=mallory.bearer))["logs"] == []


async def test_key_scopes_and_account_with_several_projects(rest: Rest) -> None:
    owner = await rest.account()
    ingest_only = await rest.key(owner, ["ingest"])
    response = await rest.http.get("/api/v1/logs", headers=key_headers(ingest_only))
    assert "'read' scope" in detail(response, 403)
    read_only = await rest.key(owner, ["read"])
    assert (await get(rest, "/api/v1/logs", read_only))["logs"] == []
    # With a second project, an account must say which one it reads.
    second = await rest.http.post("/api/v1/projects", headers=owner.bearer,
                                  json={"name": "Second", "slug": f"s-{uuid.uuid4().hex[:6]}"})
    assert second.status_code == 201
    response = await rest.http.get("/api/v1/logs", headers=owner.bearer)
    assert "project_id is required" in detail(response, 400)
    page = await get(rest, "/api/v1/logs", headers=owner.bearer,
                     project_id=second.json()["slug"])
    assert page["logs"] == []
    # A revoked key stops reading.
    key_id = read_only.split("_")[1]
    revoked = await rest.http.delete(f"/api/v1/api-keys/{key_id}", headers=owner.bearer)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"

    async def refused() -> bool:
        response = await rest.http.get("/api/v1/logs", headers=key_headers(read_only))
        return response.status_code == 401

    await wait_until(refused, "the revoked key is refused")


async def test_expired_tampered_and_logged_out_tokens(rest: Rest) -> None:
    owner = await rest.account()
    secret = rest.settings.jwt_secret
    old, _ = sessions.issue_access_token(
        secret, account_id=str(uuid.uuid4()), email="x@example.com",
        session_id=str(uuid.uuid4()), now=datetime.now(UTC) - timedelta(minutes=16))
    forged, _ = sessions.issue_access_token(
        "another-secret-that-is-long-enough-32b", account_id=str(uuid.uuid4()),
        email="x@example.com", session_id=str(uuid.uuid4()))
    token = owner.tokens["access_token"]
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for bad, reason in [(old, "expired"), (forged, "not valid"), (tampered, "not valid"),
                        ("not.a.jwt", "not valid")]:
        for path in ("/api/v1/logs", "/api/v1/accounts/me", "/api/v1/projects"):
            response = await rest.http.get(path, headers={"Authorization": f"Bearer {bad}"})
            assert reason in detail(response, 401), path
    assert (await rest.http.get("/api/v1/logs", headers=owner.bearer)).status_code == 200
    response = await rest.http.post("/api/v1/accounts/logout",
                                    json={"refresh_token": owner.tokens["refresh_token"]})
    assert response.status_code == 204
    for path in ("/api/v1/logs", "/api/v1/accounts/me"):
        response = await rest.http.get(path, headers=owner.bearer)
        assert "logged out" in detail(response, 401)
    # The project's API key is not tied to the session.
    assert (await rest.http.get("/api/v1/logs", headers=key_headers(owner.key))).status_code \
        == 200
    response = await rest.http.get("/api/v1/logs")
    assert "missing credentials" in detail(response, 401)


async def test_deleted_project_rows_are_unreachable_by_id(rest: Rest) -> None:
    """A log id is found only inside the caller's projects, even with a direct id lookup."""
    owner = await rest.account()
    stranger = str(uuid.uuid4())
    [row] = insert_logs(rest.settings.logs_database_url or "",
                        [log(stranger, datetime.now(UTC), message="orphan")])
    response = await rest.http.get(f"/api/v1/logs/{row['id']}", headers=key_headers(owner.key))
    assert "not found" in detail(response, 404)
    with psycopg.connect(rest.settings.logs_database_url or "") as conn:
        assert conn.execute("SELECT count(*) FROM logs").fetchone() == (1,)
