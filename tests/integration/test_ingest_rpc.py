"""IngestService over real gRPC, with real writers, Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
import psycopg
import pytest
import redis.asyncio as aioredis
from psycopg.rows import dict_row

from ledger.config import Settings
from ledger.core.fingerprints import FINGERPRINT_VERSION
from ledger.core.rpc_models import IngestRequest, IngestResult
from ledger.daemons.ingest import IngestDaemon, service
from ledger.errors import InvalidInputError, QueueFullError, RateLimitedError
from ledger.proto import ingest_pb2
from ledger.queue import names
from ledger.rpc.ingest_client import IngestClient
from tests.ingest_support import (
    BATCH,
    SINGLE,
    count_logs,
    error_log,
    eventually,
    fetch_logs,
    log,
    new_project,
    queue_depth,
    running_ingest,
    send,
    stored,
)

LEVELS = ("debug", "info", "warning", "error", "critical")
TYPES = ("console", "logger", "network", "database", "custom")


@pytest.fixture
async def ingest(settings: Settings) -> AsyncIterator[tuple[IngestDaemon, IngestClient]]:
    async with running_ingest(settings) as running:
        yield running


@pytest.fixture
async def paused(settings: Settings) -> AsyncIterator[IngestClient]:
    """An ingest daemon without writers (the queue only fills), depth capped at 1 500 logs."""
    async with running_ingest(settings, ingest_writers=0, queue_max_depth=1500) as (_, client):
        yield client


def full_log(i: int, start: datetime) -> dict[str, Any]:
    record: dict[str, Any] = {
        "timestamp": (start + timedelta(milliseconds=i)).isoformat(),
        "level": LEVELS[i % 5].upper() if i % 7 == 0 else LEVELS[i % 5],
        "log_type": TYPES[i % 5],
        "importance": ("critical", "high", "standard", "low")[i % 4],
        "message": f"message {i} ünïcödé",
        "environment": "test",
        "release": f"1.{i % 3}.0",
        "sdk_version": "0.1.0",
        "platform": "python",
        "platform_version": "3.11",
        "attributes": {"i": i, "nested": {"even": i % 2 == 0, "list": [1, "two", None]}},
        "trace_id": f"{i + 1:032x}",
        "span_id": f"{i + 1:016x}",
        "a_field_from_a_newer_sdk": "ignored",
    }
    if i % 3 == 0:
        record["log_id"] = str(uuid.uuid4())
    if i % 10 == 0:
        record |= {"log_type": "exception", "level": "error", "error_type": "KeyError",
                   "error_message": f"missing key {i}", "fingerprint": ["checkout", f"{i % 2}"],
                   "stack_trace": 'File "app/shop.py", line 3, in checkout\nKeyError'}
    return record


async def test_batch_of_1000_is_stored_field_for_field(
    ingest: tuple[IngestDaemon, IngestClient], settings: Settings
) -> None:
    _, client = ingest
    project = new_project()
    start = datetime.now(UTC) - timedelta(minutes=1)
    logs = [full_log(i, start) for i in range(1000)]
    before = datetime.now(UTC)
    response = await send(client, project, {"logs": logs})
    assert (response.accepted, response.rejected, list(response.errors)) == (1000, 0, [])
    assert len(set(response.ids)) == 1000
    await stored(str(settings.logs_database_url), project, 1000)
    rows = {str(r["id"]): r for r in fetch_logs(str(settings.logs_database_url), project)}
    for i, (sent, log_id) in enumerate(zip(logs, response.ids, strict=True)):
        row = rows[log_id]
        if "log_id" in sent:
            assert log_id == sent["log_id"]
        assert row["timestamp"] == datetime.fromisoformat(sent["timestamp"])
        assert before - timedelta(seconds=1) <= row["ingested_at"] <= datetime.now(UTC)
        assert row["level"] == sent["level"].lower()
        for name in ("log_type", "importance", "message", "environment", "release",
                     "sdk_version", "platform", "platform_version", "attributes", "trace_id",
                     "span_id"):
            assert row[name] == sent[name], (i, name)
        assert row["error_type"] == sent.get("error_type")
        assert row["error_message"] == sent.get("error_message")
        assert row["stack_trace"] == sent.get("stack_trace")
        assert row["client_fingerprint"] == sent.get("fingerprint")
        is_error = row["level"] in ("error", "critical") or row["log_type"] == "exception"
        assert (row["error_fingerprint"] is not None) == is_error, i
        assert row["fingerprint_version"] == (FINGERPRINT_VERSION if is_error else None)
    with psycopg.connect(str(settings.logs_database_url)) as conn:
        groups = conn.execute("SELECT sum(event_count) FROM error_groups WHERE project_id = %s",
                              (project,)).fetchone()
    errors = sum(1 for r in rows.values() if r["error_fingerprint"] is not None)
    assert groups == (errors,)


async def test_single_log_is_stored(ingest: tuple[IngestDaemon, IngestClient],
                                    settings: Settings, aredis: aioredis.Redis) -> None:
    daemon, client = ingest
    project = new_project()
    response = await send(client, project, log(1, message="just one"), shape=SINGLE)
    assert (response.accepted, response.rejected, response.message) == (1, 0, "log accepted")
    await stored(str(settings.logs_database_url), project, 1)
    [row] = fetch_logs(str(settings.logs_database_url), project)
    assert (str(row["id"]), row["message"]) == (response.ids[0], "just one")
    # Committed, then acknowledged and deleted: nothing left waiting.
    await eventually(lambda: queue_depth(str(settings.redis_url), project) == 0)
    depth = await client.call(client.stub.GetQueueDepth,
                              ingest_pb2.GetQueueDepthRequest(project_id=project))
    assert depth.queue_depth == 0
    assert await aredis.xlen(names.queue_stream(project)) == 0
    assert sum(w.stored for w in daemon.writers) == 1


async def test_partial_batch_reports_each_invalid_item(
    ingest: tuple[IngestDaemon, IngestClient], settings: Settings
) -> None:
    _, client = ingest
    project = new_project()
    logs: list[Any] = [log(i) for i in range(6)]
    logs[1] = {"level": "info", "message": "no timestamp"}
    logs[3] = log(3, level="loud")
    logs[4] = "not an object"
    logs[5] = log(5, attributes=[1, 2], message=7)
    response = await send(client, project, {"logs": logs})
    assert (response.accepted, response.rejected) == (2, 4)
    assert [(e.index, e.field) for e in response.errors] == [
        (1, "timestamp"), (3, "level"), (4, "log"), (5, "message")]
    assert all(e.reason for e in response.errors)
    assert response.message == "accepted 2 of 6 logs"
    await stored(str(settings.logs_database_url), project, 2)
    assert {r["message"] for r in fetch_logs(str(settings.logs_database_url), project)} == {
        "message 0", "message 2"}


async def test_no_valid_item_queues_nothing(paused: IngestClient, aredis: aioredis.Redis) -> None:
    project = new_project()
    response = await send(paused, project, {"logs": [{"level": "info"}, {"timestamp": 5}]})
    assert (response.accepted, response.rejected, list(response.ids)) == (0, 2, [])
    assert [e.index for e in response.errors] == [0, 1]
    assert response.message == "no log of the batch is valid"
    single = await send(paused, project, {"message": "no level"}, shape=SINGLE)
    assert (single.accepted, single.rejected, single.errors[0].field) == (0, 1, "timestamp")
    assert await aredis.exists(names.queue_stream(project), names.queue_depth(project)) == 0


DEEP = b'{"logs": [' + b"[" * 10_000 + b"]" * 10_000 + b"]}"
MALFORMED = [
    pytest.param(BATCH, b'{"logs": [', "malformed JSON", id="truncated-json"),
    pytest.param(BATCH, b"[1, 2]", "JSON object", id="batch-not-object"),
    pytest.param(BATCH, b'{"logs": {"a": 1}}', "list of 1 to 1000", id="logs-not-list"),
    pytest.param(BATCH, b'{"entries": []}', '"logs"', id="logs-missing"),
    pytest.param(BATCH, b'{"logs": []}', "list of 1 to 1000", id="logs-empty"),
    pytest.param(BATCH, orjson.dumps({"logs": [log(i) for i in range(1001)]}), "got 1001",
                 id="1001-items"),
    pytest.param(BATCH, DEEP, "nested too deeply", id="10000-deep"),
    pytest.param(BATCH, b'{"logs": [\x00]}', "malformed JSON", id="raw-nul-byte"),
    pytest.param(SINGLE, b'"a string"', "JSON object", id="single-not-object"),
    pytest.param(SINGLE, b"\xff\xfe\xfa\x80", "malformed JSON", id="invalid-utf8-garbage"),
    pytest.param(SINGLE, b"", "empty", id="empty-body"),
    pytest.param(ingest_pb2.INGEST_SHAPE_UNSPECIFIED, b"{}", "SINGLE or BATCH", id="no-shape"),
]


@pytest.mark.parametrize(("shape", "body", "says"), MALFORMED)
async def test_malformed_body_is_invalid_argument_and_queues_nothing(
    paused: IngestClient, aredis: aioredis.Redis, shape: int, body: bytes, says: str
) -> None:
    project = new_project()
    with pytest.raises(InvalidInputError, match=says):
        await send(paused, project, body, shape=shape)
    assert await aredis.exists(names.queue_stream(project), names.queue_depth(project)) == 0


async def test_bad_project_id_is_invalid_argument(paused: IngestClient) -> None:
    with pytest.raises(InvalidInputError, match="project_id must be a UUID"):
        await send(paused, "not-a-uuid", {"logs": [log()]})


async def test_nul_and_invalid_utf8_inside_strings_are_cleaned_not_refused(
    ingest: tuple[IngestDaemon, IngestClient], settings: Settings
) -> None:
    _, client = ingest
    project = new_project()
    body = (b'{"logs": [{"timestamp": "' + datetime.now(UTC).isoformat().encode()
            + b'", "level": "info", "message": "a\\u0000b \xff end",'
            + b' "attributes": {"k\\u0000": "v\\ud800"}}]}')
    response = await send(client, project, body)
    assert response.accepted == 1
    await stored(str(settings.logs_database_url), project, 1)
    [row] = fetch_logs(str(settings.logs_database_url), project)
    assert row["message"] == "ab \ufffd end"
    assert row["attributes"] == {"k": "v\ufffd"}


async def test_same_log_id_sent_twice_is_stored_once(
    ingest: tuple[IngestDaemon, IngestClient], settings: Settings
) -> None:
    _, client = ingest
    project = new_project()
    log_id = str(uuid.uuid4())
    record = error_log(1, log_id=log_id)
    first = await send(client, project, {"logs": [record]})
    await stored(str(settings.logs_database_url), project, 1)
    # A client retry after a timeout: same id, same timestamp, plus one new log in the batch.
    second = await send(client, project, {"logs": [record, log(2)]})
    assert first.ids[0] == second.ids[0] == log_id
    await stored(str(settings.logs_database_url), project, 2)
    with psycopg.connect(str(settings.logs_database_url)) as conn:
        count = conn.execute("SELECT event_count FROM error_groups WHERE project_id = %s",
                             (project,)).fetchone()
    assert count == (1,)  # the duplicate did not count twice either


async def test_queue_full_refuses_the_whole_request(paused: IngestClient,
                                                    aredis: aioredis.Redis) -> None:
    project = new_project()
    await send(paused, project, {"logs": [log(i) for i in range(1000)]})
    with pytest.raises(QueueFullError, match="retry in a minute") as refused:
        await send(paused, project, {"logs": [error_log(i) for i in range(501)]})
    assert refused.value.retry_after == 60
    assert await aredis.xlen(names.queue_stream(project)) == 1
    assert int(await aredis.get(names.queue_depth(project))) == 1000
    assert await aredis.exists(names.notifications_stream(project)) == 0  # nothing half-done
    await send(paused, project, {"logs": [log(i) for i in range(500)]})  # exactly at the cap
    assert int(await aredis.get(names.queue_depth(project))) == 1500


async def test_daily_quota_refuses_the_whole_request(paused: IngestClient,
                                                     aredis: aioredis.Redis) -> None:
    project = new_project()
    await send(paused, project, {"logs": [log(i) for i in range(600)]}, daily_quota=1000)
    with pytest.raises(RateLimitedError, match="daily quota of 1000") as refused:
        await send(paused, project, {"logs": [log(i) for i in range(401)]}, daily_quota=1000)
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert refused.value.retry_after is not None
    assert abs(refused.value.retry_after - (midnight - now).total_seconds()) < 5
    day = now.strftime("%Y%m%d")
    assert int(await aredis.get(names.daily_quota(project, day))) == 600
    assert 86_400 < await aredis.ttl(names.daily_quota(project, day)) <= 2 * 86_400
    assert await aredis.xlen(names.queue_stream(project)) == 1
    await send(paused, project, {"logs": [log(i) for i in range(400)]}, daily_quota=1000)


async def test_error_events_are_notified(paused: IngestClient, aredis: aioredis.Redis) -> None:
    project = new_project()
    pubsub = aredis.pubsub()
    await pubsub.subscribe(names.notifications_channel(project))
    assert (await pubsub.get_message(timeout=2.0))["type"] == "subscribe"
    sent = error_log(1, release="2.0", environment="prod", attributes={"user": 7},
                     stack_trace="Traceback ...")
    response = await send(paused, project, {"logs": [log(0), sent, log(2, level="critical")]})
    published = []
    while len(published) < 2:
        message = await pubsub.get_message(timeout=2.0, ignore_subscribe_messages=True)
        assert message is not None, "no notification published"
        published.append(orjson.loads(message["data"]))
    await pubsub.aclose()
    entries = await aredis.xrange(names.notifications_stream(project))
    assert [e[0].decode() for e in entries] == [p["event_id"] for p in published]
    assert [orjson.loads(e[1][b"data"]) for e in entries] == [p["data"] for p in published]
    data = published[0]["data"]
    assert set(data) == {"id", "project_id", "timestamp", "level", "log_type", "message",
                         "error_type", "error_message", "error_fingerprint", "stack_trace",
                         "attributes", "environment", "release"}
    assert (data["id"], data["project_id"], data["error_type"], data["release"]) == (
        response.ids[1], project, "KeyError", "2.0")
    assert data["attributes"] == {"user": 7} and data["error_fingerprint"]
    assert published[1]["data"]["level"] == "critical"


async def test_tail_is_fed_only_while_watched(paused: IngestClient, aredis: aioredis.Redis) -> None:
    project = new_project()
    await send(paused, project, {"logs": [log(0)]})
    assert await aredis.exists(names.tail_stream(project)) == 0
    await aredis.set(names.tail_watchers(project), b"1", ex=15)
    pubsub = aredis.pubsub()
    await pubsub.subscribe(names.tail_channel(project))
    await pubsub.get_message(timeout=2.0)
    # The first request after a watcher appeared, then one while it is known.
    await send(paused, project, {"logs": [log(1), error_log(2)]})
    await send(paused, project, {"logs": [log(3)]})
    entries = await aredis.xrange(names.tail_stream(project))
    assert [orjson.loads(e[1][b"data"])["message"] for e in entries] == [
        "message 1", "message 2", "message 3"]
    pokes = [await pubsub.get_message(timeout=2.0, ignore_subscribe_messages=True)
             for _ in range(2)]
    assert [p["data"] for p in pokes if p] == [entries[1][0], entries[2][0]]
    await pubsub.aclose()


async def resolve(url: str, project: str, release: str | None) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE error_groups SET status = 'resolved', resolved_in_release = %s,"
                     " resolved_at = now() WHERE project_id = %s", (release, project))


def group_of(url: str, project: str) -> dict[str, Any]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM error_groups WHERE project_id = %s",
                            (project,)).fetchall()
    assert len(rows) == 1
    return rows[0]


async def counted(url: str, project: str, count: int) -> dict[str, Any]:
    await eventually(lambda: count_logs(url, project) == count)
    return group_of(url, project)


async def test_error_groups_count_and_regress(ingest: tuple[IngestDaemon, IngestClient],
                                              settings: Settings) -> None:
    _, client = ingest
    url = str(settings.logs_database_url)
    project = new_project()
    first = datetime.now(UTC) - timedelta(minutes=5)
    batch = [error_log(i, release="1.0", timestamp=(first + timedelta(seconds=i)).isoformat())
             for i in range(3)]
    response = await send(client, project, {"logs": batch})
    group = await counted(url, project, 3)
    assert (group["event_count"], group["status"], group["title"]) == (
        3, "unresolved", "KeyError: missing key user_2")
    assert (group["error_type"], group["level"], group["log_type"]) == (
        "KeyError", "error", "exception")
    assert (group["first_seen"], group["last_seen"]) == (first, first + timedelta(seconds=2))
    assert (group["last_release"], str(group["sample_log_id"])) == ("1.0", response.ids[2])
    assert group["components"]["method"] == "type_message"

    await resolve(url, project, "2.0")
    await send(client, project, {"logs": [error_log(3, release="1.9")]})
    group = await counted(url, project, 4)
    assert (group["event_count"], group["status"]) == (4, "resolved")  # older release

    await send(client, project, {"logs": [error_log(5, release="2.0.1", level="critical")]})
    group = await counted(url, project, 5)
    assert (group["event_count"], group["status"], group["resolved_at"]) == (5, "unresolved",
                                                                             None)
    assert (group["level"], group["last_release"]) == ("critical", "2.0.1")

    await resolve(url, project, "3.0")
    await send(client, project, {"logs": [error_log(6)]})  # no release: either NULL reopens
    group = await counted(url, project, 6)
    assert group["status"] == "unresolved"


async def test_a_client_clock_running_slow_does_not_hide_a_regression(
        ingest: tuple[IngestDaemon, IngestClient], settings: Settings) -> None:
    _, client = ingest
    url = str(settings.logs_database_url)
    project = new_project()
    await send(client, project, {"logs": [error_log(1, release="1.0")]})
    await counted(url, project, 1)
    await resolve(url, project, "1.0")
    # The client's clock is a day behind: its new event says it happened before the resolution,
    # but Ledger received it after, from the resolved release: a regression.
    slow = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    await send(client, project, {"logs": [error_log(2, release="1.1", timestamp=slow)]})
    group = await counted(url, project, 2)
    assert (group["status"], group["resolved_at"]) == ("unresolved", None)
    assert group["last_seen"] > datetime.fromisoformat(slow)  # the display keeps client time


async def test_health_reports_writers(ingest: tuple[IngestDaemon, IngestClient]) -> None:
    _, client = ingest
    health = await client.check_health()
    assert health.healthy
    assert dict(health.checks) == {"postgres": "ok", "redis": "ok", "writers": "ok"}


async def test_concurrent_requests_all_land(ingest: tuple[IngestDaemon, IngestClient],
                                            settings: Settings) -> None:
    _, client = ingest
    project = new_project()
    results = await asyncio.gather(*(send(client, project, {"logs": [log(i) for i in range(100)]})
                                     for _ in range(20)))
    assert sum(r.accepted for r in results) == 2000
    await stored(str(settings.logs_database_url), project, 2000)


async def test_a_coalesced_call_of_big_bodies_answers_each_request_on_its_own(
        ingest: tuple[IngestDaemon, IngestClient], settings: Settings) -> None:
    # Over PREPARE_INLINE_BYTES in all, so prepared in the worker thread (one hop for the
    # call): each request still gets the answer it would get alone.
    _, client = ingest
    project = new_project()
    chain = [{"type": "KeyError", "value": "'k'", "stacktrace": {"frames": [
        {"filename": f"m{j}.py", "function": f"f{j}", "lineno": j, "in_app": True,
         "context_line": "x" * 1000} for j in range(80)]}}]
    big = error_log(1, exceptions=chain)
    bodies: list[tuple[str, Literal["single", "batch"], bytes]] = [
        (project, "single", orjson.dumps(big)), (project, "single", b"{not json"),
        ("not-a-uuid", "single", orjson.dumps(log(2))),
        (project, "batch", orjson.dumps({"logs": [log(3), {"level": "info"}]}))]
    assert sum(len(body) for _, _, body in bodies) > service.PREPARE_INLINE_BYTES
    answers = await client.ingest_logs_many([
        IngestRequest(project_id=p, shape=shape, body=body, retention_days=90, daily_quota=0)
        for p, shape, body in bodies])
    first, malformed, bad_project, partial = answers
    assert isinstance(first, IngestResult) and (first.accepted, first.rejected) == (1, 0)
    assert isinstance(malformed, InvalidInputError) and "malformed JSON" in malformed.message
    assert isinstance(bad_project, InvalidInputError)
    assert "project_id must be a UUID" in bad_project.message
    assert isinstance(partial, IngestResult) and (partial.accepted, partial.rejected) == (1, 1)
    await stored(str(settings.logs_database_url), project, 2)
    rows = {str(r["id"]): r for r in fetch_logs(str(settings.logs_database_url), project)}
    assert rows[first.ids[0]]["attributes"]["$exceptions"][0]["stacktrace"]["frames"][79] == (
        chain[0]["stacktrace"]["frames"][79])
