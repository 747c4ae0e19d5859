"""Fingerprint rules, the in-app setting and merges, end to end: REST through the gateway (in
process) to the query daemon, and real ingest (accept side and writers) applying them.

Ingest reads the setting with no cache (``LEDGER_INGEST_GROUPING_CACHE_SECONDS=0``) so that
each step sees the previous one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ledger.config import Settings
from tests.ingest_support import error_log, eventually, running_ingest, send
from tests.restenv import Account, Rest, detail, rest_stack

PY_TRACE = """\
Traceback (most recent call last):
  File "/srv/app/{module}.py", line 10, in {func}
    connect()
ConnectionError: connection refused
"""


@pytest.fixture
async def rest(settings: Settings) -> AsyncIterator[Rest]:
    async with rest_stack(settings) as env:
        yield env


def _groups(rest: Rest, project_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(rest.settings.logs_database_url or "", row_factory=dict_row) as conn:
        return conn.execute("SELECT id, fingerprint, event_count, merged_into, components"
                            " FROM error_groups WHERE project_id = %s ORDER BY first_seen",
                            [project_id]).fetchall()


def _event(module: str, func: str, i: int = 0, **extra: Any) -> dict[str, Any]:
    return error_log(i, error_type="ConnectionError", error_message="connection refused",
                     stack_trace=PY_TRACE.format(module=module, func=func), **extra)


async def _triage_key(rest: Rest, owner: Account) -> str:
    return await rest.key(owner, ["read", "triage"])


async def test_rules_need_triage_are_versioned_and_applied_at_ingest(
        rest: Rest, settings: Settings) -> None:
    owner = await rest.account()
    rules = f"/api/v1/projects/{owner.project_id}/fingerprint-rules"
    body = {"rule": "error.type:ConnectionError -> connection-errors"}
    # The default key (ingest + read) may read the setting but not change it.
    assert detail(await rest.http.post(rules, json=body, headers={"X-API-Key": owner.key}),
                  403).startswith("this API key lacks the 'triage' scope")
    triage = await _triage_key(rest, owner)
    added = await rest.http.post(rules, json=body, headers={"X-API-Key": triage})
    assert added.status_code == 201, added.text
    assert added.json()["revision"] == 1
    assert added.json()["rules"][0]["rule"] == "error.type:ConnectionError -> connection-errors"
    second = await rest.http.post(rules, headers=owner.bearer,  # an account may too
                                  json={"rule": 'message:"*timeout*" -> {{ default }}, timeout'})
    assert second.json()["revision"] == 2
    bad = await rest.http.post(rules, headers=owner.bearer, json={"rule": "nonsense"})
    assert "->" in detail(bad, 400)
    unknown = await rest.http.post(rules, headers=owner.bearer, json={"rule": "x:y -> z"})
    assert "unknown matcher 'x'" in detail(unknown, 400)

    async with running_ingest(settings, ingest_grouping_cache_seconds=0.0) as (_, client):
        await send(client, owner.project_id, {"logs": [_event("billing", "charge", 1),
                                                      _event("users", "login", 2)]})
        groups = await eventually(lambda: _groups(rest, owner.project_id))
    # Two different stack traces, one rule: one group, which says which rule made it.
    assert len(groups) == 1 and groups[0]["event_count"] == 2
    assert groups[0]["components"]["rule"] == {"matcher": "error.type:ConnectionError",
                                               "revision": 2}
    shown = await rest.http.get(f"/api/v1/error-groups/{groups[0]['id']}",
                                headers=owner.bearer)
    assert "fingerprint rule error.type:ConnectionError" in shown.json()["why_grouped"]

    tester = f"/api/v1/projects/{owner.project_id}/grouping/test"
    tested = await rest.http.post(tester, headers={"X-API-Key": owner.key}, json={
        "event": {"level": "error", "message": "upstream timeout after 30s"}})
    assert tested.status_code == 200, tested.text
    assert tested.json()["rule"]["matcher"] == "message:*timeout*"  # stored normalised
    instead = await rest.http.post(tester, headers={"X-API-Key": owner.key}, json={
        "event": {"level": "error", "message": "upstream timeout after 30s"}, "rules": []})
    assert instead.json()["rule"] is None and instead.json()["method"] == "message"

    removed = await rest.http.delete(f"{rules}/0", headers={"X-API-Key": triage})
    assert removed.json()["revision"] == 3 and len(removed.json()["rules"]) == 1
    setting = await rest.http.get(f"/api/v1/projects/{owner.project_id}/grouping",
                                  headers={"X-API-Key": owner.key})
    assert [h["revision"] for h in setting.json()["history"]] == [3, 2, 1]
    assert setting.json()["history"][0]["changed_by"].startswith("key ")
    assert detail(await rest.http.delete(f"{rules}/7", headers=owner.bearer), 404)


async def test_another_accounts_project_is_not_found(rest: Rest) -> None:
    owner, other = await rest.account(), await rest.account()
    response = await rest.http.post(f"/api/v1/projects/{owner.project_id}/fingerprint-rules",
                                    headers=other.bearer, json={"rule": "level:error -> x"})
    detail(response, 404)


async def test_in_app_setting_changes_which_frames_count(rest: Rest, settings: Settings) -> None:
    owner = await rest.account()
    trace = """\
Traceback (most recent call last):
  File "/srv/app/api/{caller}.py", line 3, in handle
    client.fetch()
  File "/srv/app/vendored/acmeclient/http.py", line 9, in fetch
    raise ConnectionError("refused")
ConnectionError: refused
"""

    def event(caller: str) -> dict[str, Any]:
        return error_log(0, error_type="ConnectionError", error_message="refused",
                         stack_trace=trace.format(caller=caller))

    put = await rest.http.put(f"/api/v1/projects/{owner.project_id}/in-app",
                              headers=owner.bearer,
                              json={"include": [], "exclude": ["acmeclient/"]})
    assert put.status_code == 200, put.text
    assert put.json()["in_app"] == {"include": [], "exclude": ["acmeclient/"]}
    async with running_ingest(settings, ingest_grouping_cache_seconds=0.0) as (_, client):
        await send(client, owner.project_id, {"logs": [event("orders"), event("users")]})
        groups = await eventually(lambda: len(_groups(rest, owner.project_id)) == 2 and
                                  _groups(rest, owner.project_id))
    frames = sorted(g["components"]["exceptions"][0]["frames"][0] for g in groups)
    assert frames == ["api/orders:handle", "api/users:handle"]  # the client's frame is out


async def test_merge_is_persistent_visible_and_can_be_undone(rest: Rest,
                                                             settings: Settings) -> None:
    owner = await rest.account()
    triage = {"X-API-Key": await _triage_key(rest, owner)}
    async with running_ingest(settings, ingest_grouping_cache_seconds=0.0) as (_, client):
        await send(client, owner.project_id, {"logs": [
            _event("billing", "charge", 1), _event("billing", "charge", 2),
            _event("users", "login", 3)]})
        groups = await eventually(
            lambda: sum(g["event_count"] for g in _groups(rest, owner.project_id)) == 3
            and _groups(rest, owner.project_id))
        charge = next(g for g in groups if g["event_count"] == 2)
        login = next(g for g in groups if g["event_count"] == 1)
        path = f"/api/v1/error-groups/{charge['id']}"

        denied = await rest.http.post(f"{path}/merge", headers={"X-API-Key": owner.key},
                                      json={"group_ids": [str(login["id"])]})
        detail(denied, 403)
        merged = await rest.http.post(f"{path}/merge", headers=triage,
                                      json={"group_ids": [str(login["id"])]})
        assert merged.status_code == 200, merged.text
        assert merged.json()["event_count"] == 3
        assert merged.json()["merges"][0]["source_group_id"] == str(login["id"])
        assert merged.json()["merges"][0]["active"] is True
        listed = await rest.http.get("/api/v1/error-groups", headers=triage)
        assert [g["id"] for g in listed.json()["error_groups"]] == [str(charge["id"])]
        again = await rest.http.post(f"{path}/merge", headers=triage,
                                     json={"group_ids": [str(login["id"])]})
        assert "already merged" in detail(again, 400)
        itself = await rest.http.post(f"{path}/merge", headers=triage,
                                      json={"group_ids": [str(charge["id"])]})
        assert "itself" in detail(itself, 400)

        # A later event of the merged fingerprint goes to the surviving group.
        await send(client, owner.project_id, {"logs": [_event("users", "login", 4)]})
        await eventually(lambda: next(g for g in _groups(rest, owner.project_id)
                                      if g["id"] == charge["id"])["event_count"] == 4)
        login_row = next(g for g in _groups(rest, owner.project_id) if g["id"] == login["id"])
        assert login_row["event_count"] == 1 and login_row["merged_into"] == charge["id"]
        shown = (await rest.http.get(f"/api/v1/error-groups/{login['id']}",
                                     headers=triage)).json()
        assert shown["merged_into"] == str(charge["id"])

        undone = await rest.http.post(f"{path}/unmerge", headers=triage,
                                      json={"group_id": str(login["id"])})
        assert undone.status_code == 200, undone.text
        # The count it brought goes back; the event that arrived while merged stays.
        assert undone.json()["event_count"] == 3
        assert undone.json()["merges"][0]["active"] is False
        assert undone.json()["merges"][0]["unmerged_by"].startswith("key ")
        listed = await rest.http.get("/api/v1/error-groups", headers=triage)
        assert {g["id"] for g in listed.json()["error_groups"]} == {str(charge["id"]),
                                                                    str(login["id"])}
        await send(client, owner.project_id, {"logs": [_event("users", "login", 5)]})
        await eventually(lambda: next(g for g in _groups(rest, owner.project_id)
                                      if g["id"] == login["id"])["event_count"] == 2)
        twice = await rest.http.post(f"{path}/unmerge", headers=triage,
                                     json={"group_id": str(login["id"])})
        assert "is not merged into" in detail(twice, 404)
