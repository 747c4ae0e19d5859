"""The query daemon over real gRPC, on a real logs database filled with COPY."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import sql

from ledger.config import Settings
from ledger.core import log_search
from ledger.daemons.query import create
from ledger.errors import InvalidInputError, NotFoundError
from ledger.proto import query_pb2
from ledger.rpc.query_client import QueryClient
from tests.logrows import insert_group, insert_logs, log
from tests.waiting import wait_until

A = str(uuid.uuid4())
B = str(uuid.uuid4())


@pytest.fixture
async def query(settings: Settings) -> AsyncIterator[QueryClient]:
    # A long grace: these tests check exact totals, which a loaded machine may count slowly.
    daemon = create(settings, count_grace_seconds=10.0)
    await daemon.start()
    client = QueryClient(f"127.0.0.1:{daemon.port}", str(settings.internal_token))
    yield client
    await client.close()
    await daemon.stop()


async def list_logs(client: QueryClient, project: str = A, errors_only: bool = False,
                    **params: str) -> tuple[list[dict[str, Any]], query_pb2.ListLogsResponse]:
    response = await client.call(client.stub.ListLogs, query_pb2.ListLogsRequest(
        project_id=project, retention_days=90, params=params, errors_only=errors_only))
    return orjson.loads(response.logs_json), response


def messages(rows: list[dict[str, Any]]) -> list[str]:
    return [r["message"] for r in rows]


async def test_health_reports_postgres_and_redis(query: QueryClient) -> None:
    health = await query.check_health()
    assert health.healthy and dict(health.checks) == {"postgres": "ok", "redis": "ok"}


async def test_every_filter(query: QueryClient, logs_db_url: str) -> None:
    now = datetime.now(UTC)
    insert_logs(logs_db_url, [
        log(A, now - timedelta(minutes=1), message="m-info", environment="prod", release="1.0"),
        log(A, now - timedelta(minutes=2), message="m-error", level="error",
            log_type="exception", error_type="KeyError", error_message="missing 'user'",
            environment="staging", release="1.1", error_fingerprint="fp1"),
        log(A, now - timedelta(minutes=3), message="m-critical", level="critical",
            log_type="database", environment="prod", release="1.1", error_fingerprint="fp2"),
        log(A, now - timedelta(days=3), message="m-old", level="warning"),
        log(B, now - timedelta(minutes=1), message="m-other-project", level="error"),
    ])
    rows, resp = await list_logs(query)
    assert messages(rows) == ["m-info", "m-error", "m-critical", "m-old"]
    assert (resp.total, resp.total_exact, resp.has_more, resp.next_cursor) == (4, True, False, "")
    assert messages((await list_logs(query, level="error"))[0]) == ["m-error"]
    assert messages((await list_logs(query, level="error,critical"))[0]) == [
        "m-error", "m-critical"]
    assert messages((await list_logs(query, log_type="database"))[0]) == ["m-critical"]
    assert messages((await list_logs(query, environment="prod"))[0]) == ["m-info", "m-critical"]
    assert messages((await list_logs(query, release="1.1"))[0]) == ["m-error", "m-critical"]
    assert messages((await list_logs(query, error_fingerprint="fp2"))[0]) == ["m-critical"]
    assert messages((await list_logs(query, search="KEYERR"))[0]) == ["m-error"]  # error_type
    assert messages((await list_logs(query, search="'user'"))[0]) == ["m-error"]
    assert messages((await list_logs(query, period="last24h"))[0]) == [
        "m-info", "m-error", "m-critical"]
    assert messages((await list_logs(query, period="last7days"))[0])[-1] == "m-old"
    window = {"periodFrom": (now - timedelta(days=4)).isoformat(),
              "periodTo": (now - timedelta(days=2)).isoformat()}
    assert messages((await list_logs(query, **window))[0]) == ["m-old"]
    errors, resp = await list_logs(query, errors_only=True)
    assert messages(errors) == ["m-error", "m-critical"] and resp.total == 2
    # A combination narrows further; the other project's rows never show up.
    assert messages((await list_logs(query, level="error,critical", environment="prod",
                                     period="today"))[0]) in (["m-critical"], [])
    assert messages((await list_logs(query, B))[0]) == ["m-other-project"]
    row = (await list_logs(query, level="error"))[0][0]
    assert row["error_type"] == "KeyError" and row["project_id"] == A
    assert row["timestamp"].endswith("+00:00") and "fingerprint" in row


async def test_search_treats_sql_and_like_metacharacters_as_text(query: QueryClient,
                                                                 logs_db_url: str) -> None:
    now = datetime.now(UTC)
    texts = ["100% done", "100 percent done", "a_b", "axb", "back\\slash", "backslash",
             "o'brien; DROP TABLE logs; --", "plain"]
    insert_logs(logs_db_url, [log(A, now - timedelta(seconds=i), message=t)
                              for i, t in enumerate(texts)])
    assert messages((await list_logs(query, search="100%"))[0]) == ["100% done"]
    assert messages((await list_logs(query, search="a_b"))[0]) == ["a_b"]
    assert messages((await list_logs(query, search="k\\s"))[0]) == ["back\\slash"]
    assert messages((await list_logs(query, search="%"))[0]) == ["100% done"]
    assert messages((await list_logs(query, search="_"))[0]) == ["a_b"]
    assert messages((await list_logs(query, search="'brien; DROP TABLE logs; --"))[0]) == [
        "o'brien; DROP TABLE logs; --"]
    rows, _ = await list_logs(query)
    assert len(rows) == len(texts)  # the table is still there


async def test_cursor_walk_has_no_gaps_or_repeats_while_logs_arrive(query: QueryClient,
                                                                     logs_db_url: str) -> None:
    now = datetime.now(UTC) - timedelta(minutes=10)
    # Several rows per timestamp: the id breaks ties, so page edges inside a tie are exact.
    original = insert_logs(logs_db_url, [
        log(A, now - timedelta(seconds=i // 3), message=f"m{i}") for i in range(50)])
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        params = {"limit": "7"} | ({"cursor": cursor} if cursor else {})
        rows, resp = await list_logs(query, **params)
        seen.extend(r["id"] for r in rows)
        pages += 1
        # New logs keep arriving during the walk: they are newer than the cursor position.
        insert_logs(logs_db_url, [log(A, datetime.now(UTC), message=f"new{pages}")])
        if not resp.has_more:
            break
        assert resp.next_cursor and resp.total == 50  # counted once, then from the cache
        cursor = resp.next_cursor
    expected = sorted(original, key=lambda r: (r["timestamp"], r["id"]), reverse=True)
    assert seen == [r["id"] for r in expected]
    assert len(set(seen)) == 50 and pages == 8


async def test_offset_paging_and_limits(query: QueryClient, logs_db_url: str) -> None:
    now = datetime.now(UTC)
    insert_logs(logs_db_url, [log(A, now - timedelta(seconds=i), message=f"m{i}")
                              for i in range(12)])
    rows, resp = await list_logs(query, limit="5", offset="10")
    assert messages(rows) == ["m10", "m11"] and not resp.has_more and resp.total == 12
    rows, resp = await list_logs(query, limit="5", offset="5")
    assert messages(rows) == [f"m{i}" for i in range(5, 10)] and resp.has_more
    # The keyset cursor also works after an offset page.
    rows, _ = await list_logs(query, limit="5", cursor=resp.next_cursor)
    assert messages(rows) == ["m10", "m11"]
    rows, resp = await list_logs(query, limit="5", offset="50")
    assert rows == [] and resp.total == 12


async def test_total_is_capped_and_counted_once_per_walk(logs_db_url: str) -> None:
    now = datetime.now(UTC)
    insert_logs(logs_db_url, [log(A, now - timedelta(seconds=i)) for i in range(30)])
    query = log_search.parse_log_query({}, project_id=A, retention_days=90)
    async with await psycopg.AsyncConnection.connect(logs_db_url, autocommit=True) as conn:
        assert await log_search.count_matching(conn, query, cap=100) == (30, True)
        assert await log_search.count_matching(conn, query, cap=10) == (10, False)
        assert await log_search.count_matching(conn, query, cap=30) == (30, True)


async def test_total_comes_from_the_cache_on_later_pages(query: QueryClient, logs_db_url: str,
                                                         aredis: Any) -> None:
    now = datetime.now(UTC)
    insert_logs(logs_db_url, [log(A, now - timedelta(seconds=i)) for i in range(5)])
    _, first = await list_logs(query, limit="2")
    assert first.total == 5
    keys = [k async for k in aredis.scan_iter(match=f"ledger:{{p:{A}}}:total:*")]
    assert len(keys) == 1
    await aredis.set(keys[0], "4242:0")  # what a previous count left: later pages reuse it
    _, second = await list_logs(query, limit="2", cursor=first.next_cursor)
    assert (second.total, second.total_exact) == (4242, False)


async def test_a_slow_count_does_not_hold_the_page(settings: Settings,
                                                  logs_db_url: str) -> None:
    daemon = create(settings, count_grace_seconds=0.0)  # never wait for a count
    await daemon.start()
    client = QueryClient(f"127.0.0.1:{daemon.port}", str(settings.internal_token))
    try:
        now = datetime.now(UTC)
        insert_logs(logs_db_url, [log(A, now - timedelta(seconds=i)) for i in range(30)])
        rows, first = await list_logs(client, limit="5")
        assert len(rows) == 5 and first.has_more
        # Either the count beat the page, or the answer says "at least the rows seen + 1".
        assert (first.total, first.total_exact) in ((30, True), (6, False))
        # The count went on in the background: a later page of the walk gets it.
        async def exact_page() -> Any:
            _, later = await list_logs(client, limit="5", cursor=first.next_cursor)
            return later if later.total_exact else None

        later = await wait_until(exact_page, "a later page carries the exact count")
        assert (later.total, later.total_exact) == (30, True)
    finally:
        await client.close()
        await daemon.stop()


async def test_bad_parameters_are_invalid_argument(query: QueryClient) -> None:
    with pytest.raises(InvalidInputError, match="limit must be between 1 and 1000"):
        await list_logs(query, limit="5000")
    with pytest.raises(InvalidInputError, match="cursor is not valid"):
        await list_logs(query, cursor="bm90IGEgY3Vyc29y")
    with pytest.raises(InvalidInputError, match="project_id must be a UUID"):
        await list_logs(query, project="not-a-uuid")
    with pytest.raises(InvalidInputError, match="not a valid log id"):
        await query.call(query.stub.GetLog, query_pb2.GetLogRequest(project_ids=[A],
                                                                       log_id="42"))


async def test_a_log_of_another_project_is_not_found(query: QueryClient, logs_db_url: str) -> None:
    now = datetime.now(UTC)
    [mine, theirs] = insert_logs(logs_db_url, [log(A, now, message="mine"),
                                               log(B, now, message="theirs")])
    found = await query.call(query.stub.GetLog, query_pb2.GetLogRequest(
        project_ids=[A], log_id=mine["id"]))
    assert orjson.loads(found.log_json)["message"] == "mine"
    for project_ids in ([A], []):
        with pytest.raises(NotFoundError):
            await query.call(query.stub.GetLog, query_pb2.GetLogRequest(
                project_ids=project_ids, log_id=theirs["id"]))


async def test_error_groups_list_show_and_status(query: QueryClient, logs_db_url: str) -> None:
    now = datetime.now(UTC)
    [sample] = insert_logs(logs_db_url, [log(A, now, level="error", message="boom")])
    old = insert_group(logs_db_url, A, "fp-old", event_count=50,
                       last_seen=now - timedelta(hours=2), title="OldError: x")
    new = insert_group(logs_db_url, A, "fp-new", event_count=3, last_seen=now,
                       sample_log_id=sample["id"], title="KeyError: 'user_id'",
                       components={"method": "stacktrace", "error_type": "KeyError",
                                   "frames": ["views.py:checkout"], "in_app": True})
    other = insert_group(logs_db_url, B, "fp-b")

    async def groups(**params: str) -> tuple[list[str], query_pb2.ListErrorGroupsResponse]:
        resp = await query.call(query.stub.ListErrorGroups, query_pb2.ListErrorGroupsRequest(
            project_id=A, params=params))
        return [g["fingerprint"] for g in orjson.loads(resp.groups_json)], resp

    names, resp = await groups()
    assert names == ["fp-new", "fp-old"] and resp.total == 2 and not resp.has_more
    assert (await groups(sort="count"))[0] == ["fp-old", "fp-new"]
    assert (await groups(search="user_"))[0] == ["fp-new"]
    names, resp = await groups(limit="1")
    assert names == ["fp-new"] and resp.has_more and resp.total == 2
    names, resp = await groups(search="user_", offset="5")  # past the end: still counted
    assert names == [] and resp.total == 1 and not resp.has_more

    detail = orjson.loads((await query.call(query.stub.GetErrorGroup,
                                            query_pb2.GetErrorGroupRequest(
                                                project_ids=[A], group_id=new["id"]))).group_json)
    assert detail["components"]["frames"] == ["views.py:checkout"]
    assert "views.py:checkout" in detail["why_grouped"]
    assert detail["sample_log"]["message"] == "boom"
    assert detail["event_count"] == 3 and detail["status"] == "unresolved"

    async def set_status(group: str, status: str, release: str = "",
                         projects: tuple[str, ...] = (A,)) -> dict[str, Any]:
        resp = await query.call(query.stub.UpdateErrorGroupStatus,
                                query_pb2.UpdateErrorGroupStatusRequest(
                                    project_ids=list(projects), group_id=group, status=status,
                                    resolved_in_release=release))
        return dict(orjson.loads(resp.group_json))

    resolved = await set_status(old["id"], "resolved", "2.0.1")
    assert resolved["status"] == "resolved" and resolved["resolved_in_release"] == "2.0.1"
    assert resolved["resolved_at"] is not None
    assert (await groups(status="unresolved"))[0] == ["fp-new"]
    reopened = await set_status(old["id"], "unresolved")
    assert reopened["resolved_at"] is None and reopened["resolved_in_release"] is None
    assert (await set_status(new["id"], "ignored"))["status"] == "ignored"
    with pytest.raises(InvalidInputError, match="only allowed with status 'resolved'"):
        await set_status(new["id"], "ignored", "1.0")
    with pytest.raises(InvalidInputError, match="status must be one of"):
        await set_status(new["id"], "closed")
    # Another project's group: not found, and untouched.
    with pytest.raises(NotFoundError):
        await set_status(other["id"], "ignored")
    with pytest.raises(NotFoundError):
        await query.call(query.stub.GetErrorGroup, query_pb2.GetErrorGroupRequest(
            project_ids=[A], group_id=other["id"]))
    with psycopg.connect(logs_db_url) as conn:
        row = conn.execute("SELECT status FROM error_groups WHERE id = %s",
                           [other["id"]]).fetchone()
    assert row == ("unresolved",)


def _plan(url: str, query: log_search.LogQuery, *, count: bool = False) -> str:
    statement, args = (log_search.build_count_sql(query) if count
                       else log_search.build_page_sql(query))
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(sql.SQL("EXPLAIN ") + statement, args).fetchall()
    return "\n".join(str(r[0]) for r in rows)


def test_partitions_outside_the_window_are_pruned(logs_db_url: str) -> None:
    months = [datetime(2024, m, 15, tzinfo=UTC) for m in (1, 2, 3)]
    insert_logs(logs_db_url, [log(A, m) for m in months])

    def parse(**params: str) -> log_search.LogQuery:
        return log_search.parse_log_query(params, project_id=A, retention_days=90)

    february = parse(periodFrom="2024-02-01T00:00:00Z", periodTo="2024-02-20T00:00:00Z")
    for plan in (_plan(logs_db_url, february), _plan(logs_db_url, february, count=True)):
        assert "logs_2024_02" in plan
        assert "logs_2024_01" not in plan and "logs_2024_03" not in plan

    quarter = {"periodFrom": "2024-01-01T00:00:00Z", "periodTo": "2024-04-01T00:00:00Z"}
    plan = _plan(logs_db_url, parse(**quarter))
    assert all(f"logs_2024_0{m}" in plan for m in (1, 2, 3))

    # A cursor deep in the walk also prunes the months after it.
    token = log_search.encode_cursor(months[1], str(uuid.uuid4()), parse(**quarter).digest)
    plan = _plan(logs_db_url, parse(**quarter, cursor=token))
    assert "logs_2024_01" in plan and "logs_2024_02" in plan and "logs_2024_03" not in plan

    # The errors list is served by the partial index on error levels.
    errors = log_search.parse_log_query({"periodFrom": "2024-02-01T00:00:00Z"}, project_id=A,
                                        retention_days=90, errors_only=True)
    with psycopg.connect(logs_db_url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # a 3-row table would rather scan
        statement, args = log_search.build_page_sql(errors)
        plan = "\n".join(str(r[0]) for r in conn.execute(
            sql.SQL("EXPLAIN ") + statement, args).fetchall())
        partial = conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index"
            " WHERE indrelid = 'logs_2024_02'::regclass AND indpred IS NOT NULL"
            " AND pg_get_expr(indpred, indrelid) LIKE '%critical%'").fetchone()
    assert partial is not None and partial[0] in plan
