"""The browser view's routes in process: the page and its files, and stream tickets."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from ledger.config import Settings
from ledger.daemons.gateway.routes.web import bundle
from tests.restenv import Rest, detail, rest_stack


@pytest.fixture
async def rest(settings: Settings) -> AsyncIterator[Rest]:
    async with rest_stack(settings) as env:
        yield env


def csp(headers: object) -> str:
    return str(headers["content-security-policy"])  # type: ignore[index]


async def test_every_page_url_answers_the_page_with_a_strict_policy(rest: Rest) -> None:
    group = "6b3f0c1e-0000-7000-8000-000000000000"
    for path in ("/", "/signin", "/p/shop/live", f"/p/shop/errors/{group}",
                 "/p/shop/logs?level=error"):
        answer = await rest.http.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["cache-control"] == "no-cache"
        policy = csp(answer.headers)
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
    page = (await rest.http.get("/")).text
    assert re.search(r'<script type="module" src="/web/[0-9a-f]{12}/app\.js"></script>', page)


async def test_no_script_in_the_page_is_inline() -> None:
    page = bundle().page.body.decode()
    for tag in re.findall(r"<script[^>]*>(.*?)</script>", page, re.S):
        assert tag.strip() == ""
    assert not re.search(r"\son[a-z]+=", page)


async def test_files_are_cached_for_a_year_under_their_version(rest: Rest) -> None:
    version = bundle().version
    answer = await rest.http.get(f"/web/{version}/app.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    again = await rest.http.get(f"/web/{version}/app.js",
                                headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert answer.headers["content-encoding"] == "gzip"  # httpx decodes it: compare below
    plain = await rest.http.get(f"/web/{version}/app.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == answer.content
    old = await rest.http.get("/web/000000000000/app.css")
    assert old.status_code == 200 and old.headers["cache-control"] == "no-cache"
    assert (await rest.http.get(f"/web/{version}/../routes/web.py")).status_code == 404
    assert (await rest.http.get(f"/web/{version}/index.html")).status_code == 404


async def test_the_whole_view_weighs_less_than_60_kb() -> None:
    current = bundle()
    total = len(current.page.body) + sum(len(a.body) for a in current.assets.values())
    assert total < 60_000, f"the view weighs {total} bytes"


async def test_a_ticket_is_for_an_account_and_one_of_its_projects(rest: Rest) -> None:
    mine, theirs = await rest.account(), await rest.account()
    minted = await rest.http.post("/api/v1/live/tickets", headers=mine.bearer,
                                  json={"project_id": mine.project["slug"]})
    assert minted.status_code == 201, minted.text
    body = minted.json()
    assert body["project_id"] == mine.project_id and body["expires_in"] == 60
    assert body["ticket"].startswith("lst1.") and minted.headers["cache-control"] == "no-store"

    other = await rest.http.post("/api/v1/live/tickets", headers=mine.bearer,
                                 json={"project_id": theirs.project_id})
    assert "not found" in detail(other, 404)
    with_key = await rest.http.post("/api/v1/live/tickets", headers={"X-API-Key": mine.key},
                                    json={"project_id": mine.project_id})
    assert "API keys" in detail(with_key, 403)
    anonymous = await rest.http.post("/api/v1/live/tickets", json={"project_id": "x"})
    detail(anonymous, 401)


async def _ticket(rest: Rest, bearer: dict[str, str], project: str) -> str:
    minted = await rest.http.post("/api/v1/live/tickets", headers=bearer,
                                  json={"project_id": project})
    assert minted.status_code == 201, minted.text
    return str(minted.json()["ticket"])


async def test_a_ticket_opens_one_stream_only_and_nothing_else(rest: Rest) -> None:
    account = await rest.account()
    ticket = await _ticket(rest, account.bearer, account.project_id)
    # Spent by its first use, even one the route then refuses (a bad level here).
    first = await rest.http.get("/api/v1/notifications/stream",
                                params={"ticket": ticket, "level": "nope"})
    assert "unknown level" in detail(first, 400)
    again = await rest.http.get("/api/v1/notifications/stream", params={"ticket": ticket})
    assert "already used" in detail(again, 401)

    ticket = await _ticket(rest, account.bearer, account.project_id)
    for path in ("/api/v1/logs", "/api/v1/error-groups", "/api/v1/logs/tail"):
        refused = await rest.http.get(path, params={"ticket": ticket,
                                                    "project_id": account.project_id})
        assert refused.status_code == 401, path
    tampered = await rest.http.get("/api/v1/notifications/stream",
                                   params={"ticket": ticket[:-3] + "abc"})
    assert "not valid" in detail(tampered, 401)


async def test_a_ticket_follows_its_own_project_only(rest: Rest) -> None:
    account = await rest.account()
    second = await rest.http.post("/api/v1/projects", headers=account.bearer,
                                  json={"name": "Second", "slug": f"{account.project['slug']}-2"})
    assert second.status_code == 201
    ticket = await _ticket(rest, account.bearer, account.project_id)
    other = await rest.http.get("/api/v1/notifications/stream",
                                params={"ticket": ticket, "project_id": second.json()["id"]})
    assert "not found" in detail(other, 404)


async def test_a_logged_out_sessions_tickets_are_refused(rest: Rest) -> None:
    account = await rest.account()
    ticket = await _ticket(rest, account.bearer, account.project_id)
    out = await rest.http.post("/api/v1/accounts/logout",
                               json={"refresh_token": account.tokens["refresh_token"]})
    assert out.status_code == 204
    refused = await rest.http.get("/api/v1/notifications/stream", params={"ticket": ticket})
    assert "logged out" in detail(refused, 401)
