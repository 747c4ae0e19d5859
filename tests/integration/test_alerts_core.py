"""Alert rules firing exactly when they should, cooldown, snooze, replay, and the outbox.

Real PostgreSQL (a migrated logs database per test), real Redis, a real HTTP receiver.
Notifications are built as ingest writes them to the stream (an id whose milliseconds are the
ingest time, and the notification fields).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
import redis.asyncio as aioredis

from ledger.core.alerts import channels, evaluate, history, outbox, rules, senders
from ledger.core.alerts.evaluate import Notification
from ledger.errors import ConflictError, InvalidInputError, NotFoundError
from tests.alert_receivers import WebhookReceiver
from tests.logrows import insert_group, insert_logs, log
from tests.waiting import wait_until

P = str(uuid.uuid4())
EXPIRES = timedelta(hours=24)
_seq = itertools.count(1)


@pytest.fixture
async def conn(logs_db_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    connection = await psycopg.AsyncConnection.connect(logs_db_url, autocommit=True)
    yield connection
    await connection.close()


@pytest.fixture
def receiver() -> Any:
    running = WebhookReceiver().start()
    yield running
    running.stop()


async def webhook(conn: psycopg.AsyncConnection[Any], receiver: WebhookReceiver,
                  name: str = "hook") -> channels.Channel:
    name_, kind, config, secret = channels.validate({
        "name": name, "kind": "webhook", "url": receiver.url, "allow_insecure_localhost": True})
    return await channels.insert(conn, P, name_, kind, config, secret)


def note(fingerprint: str, *, at: datetime | None = None, **fields: Any) -> Notification:
    at = at or datetime.now(UTC)
    event = {"id": str(uuid.uuid4()), "project_id": P, "timestamp": at.isoformat(),
             "level": "error", "log_type": "exception", "message": "boom",
             "error_type": "KeyError", "error_message": f"key {fingerprint}",
             "error_fingerprint": fingerprint, "stack_trace": None, "attributes": {},
             "environment": "production", "release": "1.0"}
    event.update(fields)
    return Notification(f"{int(at.timestamp() * 1000)}-{next(_seq)}", event)


async def run(conn: psycopg.AsyncConnection[Any], redis: aioredis.Redis,
              notes: list[Notification], now: datetime | None = None) -> list[str]:
    found = await rules.enabled(conn)
    async with conn.transaction():
        stats = await evaluate.evaluate_events(conn, redis, P, found, notes,
                                               now=now or datetime.now(UTC),
                                               expires_after=EXPIRES)
    return stats.fired


async def add_rule(conn: psycopg.AsyncConnection[Any], channel: channels.Channel,
                   **body: Any) -> rules.Rule:
    rule = await rules.create(conn, P, {"name": f"r{next(_seq)}", "channels": [channel.name],
                                        **body})
    # Rules ignore what happened before them: date them back so that "now" events count.
    await conn.execute("UPDATE alert_rules SET created_at = created_at - interval '1 hour'"
                       " WHERE id = %s", (rule.id,))
    return await rules.get(conn, P, rule.id)


async def deliveries(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT count(*) FROM alert_deliveries")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_new_group_fires_once_per_group_and_not_for_old_groups(
        conn: psycopg.AsyncConnection[Any], aredis: aioredis.Redis,
        receiver: WebhookReceiver, logs_db_url: str) -> None:
    hook = await webhook(conn, receiver)
    await add_rule(conn, hook, kind="new_group", filters={"environment": ["production"]})
    insert_group(logs_db_url, P, "old", first_seen=datetime.now(UTC) - timedelta(days=3))

    fired = await run(conn, aredis, [note("fresh"), note("fresh"), note("old"),
                                     note("staging-only", environment="staging")])
    assert len(fired) == 1
    alerts = await history.list_alerts(conn, [P])
    assert [a["subject"] for a in alerts] == ["fresh"]
    assert alerts[0]["status"] == "pending" and len(alerts[0]["deliveries"]) == 1

    # Seen once: a later event of the group, or a replay of the same batch, fires nothing.
    assert await run(conn, aredis, [note("fresh")]) == []
    assert await run(conn, aredis, [note("staging-only")]) == []
    assert await deliveries(conn) == 1


async def test_a_rule_ignores_events_from_before_it_existed(
        conn: psycopg.AsyncConnection[Any], aredis: aioredis.Redis,
        receiver: WebhookReceiver) -> None:
    hook = await webhook(conn, receiver)
    await rules.create(conn, P, {"name": "new", "kind": "new_group", "channels": ["hook"]})
    before = datetime.now(UTC) - timedelta(minutes=5)
    assert await run(conn, aredis, [note("ancient", at=before)]) == []
    assert len(await run(conn, aredis, [note("recent")])) == 1
    assert hook.id


async def test_regression_fires_on_a_newer_release_only_and_once(
        conn: psycopg.AsyncConnection[Any], aredis: aioredis.Redis,
        receiver: WebhookReceiver, logs_db_url: str) -> None:
    hook = await webhook(conn, receiver)
    await add_rule(conn, hook, kind="regression", cooldown_seconds=0)
    resolved_at = datetime.now(UTC) - timedelta(minutes=1)
    insert_group(logs_db_url, P, "fixed", status="resolved", resolved_at=resolved_at,
                 resolved_in_release="2.0",
                 first_seen=resolved_at - timedelta(days=1))
    insert_group(logs_db_url, P, "open")

    assert await run(conn, aredis, [note("fixed", release="1.9")]) == []  # older release
    assert await run(conn, aredis, [note("open", release="3.0")]) == []   # never resolved
    first = await run(conn, aredis, [note("fixed", release="2.0")])
    assert len(first) == 1

    # The writer reopens the group; a notification read after that is the same regression.
    await conn.execute("UPDATE error_groups SET status = 'unresolved', resolved_at = NULL,"
                       " resolved_in_release = NULL WHERE fingerprint = 'fixed'")
    assert await run(conn, aredis, [note("fixed", release="2.1")]) == []
    alerts = await history.list_alerts(conn, [P])
    assert len(alerts) == 1 and alerts[0]["kind"] == "regression"


async def test_regression_seen_only_after_the_writer_reopened_the_group(
        conn: psycopg.AsyncConnection[Any], aredis: aioredis.Redis,
        receiver: WebhookReceiver, logs_db_url: str) -> None:
    hook = await webhook(conn, receiver)
    await add_rule(conn, hook, kind="regression")
    insert_group(logs_db_url, P, "back", status="resolved",
                 resolved_at=datetime.now(UTC) - timedelta(minutes=1))
    await conn.execute("UPDATE error_groups SET status = 'unresolved', resolved_at = NULL"
                       " WHERE fingerprint = 'back'")
    assert len(await run(conn, aredis, [note("back")])) == 1


async def test_group_frequency_threshold_window_and_cooldown(
        conn: psycopg.AsyncConnection[Any], aredis: aioredis.Redis,
        receiver: WebhookReceiver) -> None:
    hook = await webhook(conn, receiver)
    await add_rule(conn, hook, kind="group_frequency", threshold=3, window_minutes=1,
                   cooldown_seconds=600)
    now = datetime.now(UTC)
    old = note("spiky", at=now - timedelta(minutes=3))  # outside the window
    two = [note("spiky", at=now - timedelta(seconds=2)), note("spiky", at=now)]
    assert await run(conn, aredis, [old, *two]) == []
    third = note("spiky", at=now)
    assert len(await run(conn, aredis, [third])) == 1
    # Within the cooldown: more events, or the same one replayed, fire nothing.
    assert await run(conn, aredis, [third, note("spiky"), note("spiky")]) == []
    # Other groups count apart.
    assert await run(conn, aredis, [note("calm"), note("calm")]) == []
    alerts = await history.list_alerts(conn, [P])
    assert len(alerts) == 1
    assert "3 events in 1 min" in alerts[0]["text"]


async def test_without_cooldown_every_event_over_the_threshold_fires(
        conn: psycopg.AsyncConnection[Any], aredis: aioredis.Redis,
        receiver: WebhookReceiver) -> None:
    hook = await webhook(conn, receiver)
    await add_rule(conn, hook, kind="group_frequency", threshold=2, window_minutes=5,
                   cooldown_seconds=0)
    fired = await run(conn, aredis, [note("g"), note("g"), note("g")])
    assert len(fired) == 2


async def test_error_rate_counts_errors_in_the_window_with_filters(
        conn: psycopg.AsyncConnection[Any], receiver: WebhookReceiver,
        logs_db_url: str) -> None:
    hook = await webhook(conn, receiver)
    now = datetime.now(UTC)
    rows = [log(P, now - timedelta(seconds=10 + i), level="error", environment="production")
            for i in range(6)]
    rows += [log(P, now - timedelta(seconds=5), level="info", environment="production"),
             log(P, now - timedelta(seconds=5), level="error", environment="staging"),
             log(P, now - timedelta(minutes=30), level="critical", environment="production")]
    insert_logs(logs_db_url, rows)
    hit = await add_rule(conn, hook, kind="error_rate", threshold=3, window_minutes=2,
                         filters={"environment": ["production"]})  # 6 / 2 = 3 per minute
    miss = await add_rule(conn, hook, kind="error_rate", threshold=3.5, window_minutes=2,
                          filters={"environment": ["production"]})
    async with conn.transaction():
        stats = await evaluate.evaluate_periodic(conn, [hit, miss], now=now,
                                                 interval_seconds=30, expires_after=EXPIRES)
    assert stats.rules_evaluated == 2 and len(stats.fired) == 1
    alerts = await history.list_alerts(conn, [P])
    assert alerts[0]["rule_id"] == hit.id and "6 error/critical logs" in alerts[0]["text"]
    # The cooldown holds at the next interval.
    async with conn.transaction():
        again = await evaluate.evaluate_periodic(conn, [hit], now=now + timedelta(seconds=30),
                                                 interval_seconds=30, expires_after=EXPIRES)
    assert again.fired == []


async def test_no_logs_fires_only_after_a_silent_window(
        conn: psycopg.AsyncConnection[Any], receiver: WebhookReceiver,
        logs_db_url: str) -> None:
    hook = await webhook(conn, receiver)
    now = datetime.now(UTC)
    insert_logs(logs_db_url, [log(P, now - timedelta(minutes=2), environment="production"),
                              log(P, now - timedelta(minutes=20), environment="staging")])
    quiet_staging = await add_rule(conn, hook, kind="no_logs", window_minutes=10,
                                   filters={"environment": ["staging"]})
    busy_project = await add_rule(conn, hook, kind="no_logs", window_minutes=10)
    fresh = await rules.create(conn, P, {"name": "fresh", "kind": "no_logs",
                                         "window_minutes": 10, "channels": ["hook"],
                                         "filters": {"environment": ["qa"]}})
    async with conn.transaction():
        stats = await evaluate.evaluate_periodic(
            conn, [quiet_staging, busy_project, fresh], now=now, interval_seconds=30,
            expires_after=EXPIRES)
    # staging is silent for 20 min; the project is not; the new rule has not watched 10 min.
    alerts = await history.list_alerts(conn, [P])
    assert [a["rule_id"] for a in alerts] == [quiet_staging.id] and len(stats.fired) == 1
    assert alerts[0]["subject"] == "staging"


async def test_snoozed_rule_and_group_record_without_sending(
        conn: psycopg.AsyncConnection[Any], aredis: aioredis.Redis,
        receiver: WebhookReceiver, logs_db_url: str) -> None:
    hook = await webhook(conn, receiver)
    rule = await add_rule(conn, hook, kind="group_frequency", threshold=1, window_minutes=5,
                          cooldown_seconds=0)
    await rules.snooze(conn, P, rule.name, "2h")
    assert len(await run(conn, aredis, [note("a")])) == 1
    await rules.snooze(conn, P, rule.name, None)
    group = insert_group(logs_db_url, P, "b")
    snoozed = await rules.snooze(conn, P, group["id"], "30m")
    assert snoozed.target == "group"
    assert len(await run(conn, aredis, [note("b"), note("a")])) == 2
    alerts = {a["subject"]: a for a in await history.list_alerts(conn, [P])}
    assert alerts["b"]["status"] == "snoozed" and alerts["b"]["deliveries"] == []
    assert [a["status"] for a in await history.list_alerts(conn, [P]) if a["subject"] == "a"] \
        == ["pending", "snoozed"]
    assert await deliveries(conn) == 1
    with pytest.raises(NotFoundError):
        await rules.snooze(conn, P, str(uuid.uuid4()), "1h")
    with pytest.raises(InvalidInputError):
        await rules.snooze(conn, P, rule.name, "forever")


async def test_outbox_retries_with_backoff_records_attempts_and_signs(
        conn: psycopg.AsyncConnection[Any], aredis: aioredis.Redis,
        receiver: WebhookReceiver) -> None:
    hook = await webhook(conn, receiver)
    await add_rule(conn, hook, kind="new_group")
    await run(conn, aredis, [note("x")])
    now = datetime.now(UTC)
    receiver.status = 503
    due = await outbox.claim(conn, limit=10, lease=timedelta(seconds=60), now=now)
    assert len(due) == 1
    # Claimed: a second sender (another daemon) gets nothing during the lease.
    assert await outbox.claim(conn, limit=10, lease=timedelta(seconds=60), now=now) == []
    outcome = await senders.send(due[0].channel, due[0].payload, due[0].idempotency_key)
    assert not outcome.ok and outcome.status_code == 503
    state = await outbox.finish(conn, due[0], outcome, now=now, base_seconds=10,
                                max_seconds=60)
    assert state == "pending"
    assert await outbox.claim(conn, limit=10, lease=timedelta(seconds=60),
                              now=now + timedelta(seconds=9)) == []
    receiver.status = 200
    retry = await outbox.claim(conn, limit=10, lease=timedelta(seconds=60),
                               now=now + timedelta(seconds=11))
    outcome = await senders.send(retry[0].channel, retry[0].payload, retry[0].idempotency_key)
    assert await outbox.finish(conn, retry[0], outcome, now=now + timedelta(seconds=11),
                               base_seconds=10, max_seconds=60) == "delivered"

    first, second = receiver.received()
    assert first.signed_by(str(hook.secret)) and second.signed_by(str(hook.secret))
    assert not first.signed_by("another secret")
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    body = second.json()
    assert body["group"]["fingerprint"] == "x" and body["sample_event"]["error_type"]
    [alert] = await history.list_alerts(conn, [P])
    assert alert["status"] == "delivered"
    assert [a["status_code"] for a in alert["deliveries"][0]["attempts"]] == [503, 200]


async def test_outbox_gives_up_after_the_expiry(conn: psycopg.AsyncConnection[Any],
                                               aredis: aioredis.Redis,
                                               receiver: WebhookReceiver) -> None:
    hook = await webhook(conn, receiver)
    await add_rule(conn, hook, kind="new_group")
    await run(conn, aredis, [note("y")])
    receiver.stop()  # nobody listens: connection refused
    later = datetime.now(UTC) + EXPIRES + timedelta(seconds=1)
    [due] = await outbox.claim(conn, limit=10, lease=timedelta(seconds=60), now=later)
    outcome = await senders.send(due.channel, due.payload, due.idempotency_key)
    assert outcome.status_code is None and outcome.error
    assert await outbox.finish(conn, due, outcome, now=later, base_seconds=1,
                               max_seconds=1) == "failed"
    [alert] = await history.list_alerts(conn, [P])
    assert alert["status"] == "failed" and alert["deliveries"][0]["attempts"][0]["error"]


async def test_backoff_doubles_up_to_the_cap() -> None:
    waits = [outbox.backoff(n, 10, 300).total_seconds() for n in range(1, 8)]
    assert waits == [10, 20, 40, 80, 160, 300, 300]


async def test_rules_and_channels_refuse_bad_input_and_store_nothing(
        conn: psycopg.AsyncConnection[Any], receiver: WebhookReceiver) -> None:
    await webhook(conn, receiver)
    for body, message in [
        ({"name": "a", "kind": "new_group", "channels": ["nope"]}, "unknown channel 'nope'"),
        ({"name": "a", "kind": "group_frequency", "channels": ["hook"]}, "needs threshold"),
        ({"name": "a", "kind": "new_group", "threshold": 3, "channels": ["hook"]},
         "has no threshold"),
        ({"name": "a", "kind": "bogus", "channels": ["hook"]}, "kind must be one of"),
        ({"name": "a", "kind": "new_group", "channels": ["hook"], "colour": "red"},
         "unknown field 'colour'"),
        ({"name": "a", "kind": "new_group", "channels": ["hook"],
          "filters": {"level": ["fatal"]}}, "'fatal' is not one of"),
        ({"name": "a", "kind": "no_logs", "window_minutes": 5, "channels": ["hook"],
          "filters": {"level": ["error"]}}, "environment only"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            await rules.create(conn, P, body)
    assert await rules.list_for(conn, P) == []
    await rules.create(conn, P, {"name": "a", "kind": "new_group", "channels": ["hook"]})
    with pytest.raises(ConflictError):
        await rules.create(conn, P, {"name": "a", "kind": "new_group", "channels": ["hook"]})
    with pytest.raises(ConflictError, match="used by rule 'a'"):
        await channels.delete(conn, P, "hook")
    with pytest.raises(NotFoundError):
        await rules.get(conn, str(uuid.uuid4()), "a")  # another project's rule
    updated = await rules.update(conn, P, "a", {"cooldown_seconds": 60,
                                                "filters": {"environment": "prod"}})
    assert updated.cooldown_seconds == 60 and updated.filters == {"environment": ["prod"]}
    with pytest.raises(InvalidInputError, match="kind cannot change"):
        await rules.update(conn, P, "a", {"kind": "regression"})


@pytest.fixture
async def new_group_pool(conn: psycopg.AsyncConnection[Any], receiver: WebhookReceiver,
                         logs_db_url: str) -> AsyncIterator[Any]:
    """A webhook channel with a new_group rule on it, and the pool an Evaluator reads with."""
    from psycopg_pool import AsyncConnectionPool

    hook = await webhook(conn, receiver)
    await add_rule(conn, hook, kind="new_group")
    pool = AsyncConnectionPool(logs_db_url, open=False, kwargs={"autocommit": True})
    await pool.open()
    try:
        yield pool
    finally:
        await pool.close()


async def test_notifications_a_killed_reader_left_are_taken_over_and_counted_once(
        conn: psycopg.AsyncConnection[Any], aredis: aioredis.Redis, new_group_pool: Any) -> None:
    from ledger import bus
    from ledger.daemons.alerts.evaluator import Evaluator
    from ledger.queue import names

    def evaluator(idle: float) -> Evaluator:
        return Evaluator(new_group_pool, aredis, refresh_seconds=0, claim_idle_seconds=idle,
                         give_up_seconds=3600, on_fired=lambda: None)

    crashed, survivor = evaluator(3600), evaluator(0)
    await crashed.refresh_rules(force=True)
    stream = names.notifications_stream(P)
    for fingerprint in ("k1", "k2"):
        await aredis.xadd(stream, {"data": orjson.dumps(note(fingerprint).event)})
    # The first reader takes both entries and dies before evaluating them.
    taken = await aredis.xreadgroup(bus.ALERTS_GROUP, crashed.consumer, {stream: ">"})
    assert len(taken[0][1]) == 2
    assert await survivor.step(block_ms=10) == 2
    # Evaluated and acknowledged, but suppose the ack was lost: a replay adds nothing.
    entries = (await aredis.xrange(stream))
    assert await survivor._process(P, entries) == 2
    assert len(await history.list_alerts(conn, [P])) == 2
    assert (await aredis.xpending(stream, bus.ALERTS_GROUP))["pending"] == 0


async def test_a_deleted_stream_gets_its_group_back(
        conn: psycopg.AsyncConnection[Any], aredis: aioredis.Redis, new_group_pool: Any) -> None:
    import asyncio

    from ledger.daemons.alerts.evaluator import Evaluator
    from ledger.queue import names

    stopping = asyncio.Event()
    evaluator = Evaluator(new_group_pool, aredis, refresh_seconds=60, claim_idle_seconds=60,
                          give_up_seconds=3600, on_fired=lambda: None)
    task = asyncio.create_task(evaluator.run(stopping))
    try:
        stream = names.notifications_stream(P)
        await wait_until(lambda: aredis.exists(stream), "the evaluator's group exists")
        await aredis.delete(stream)  # e.g. an operator's cleanup: the group goes with it
        await aredis.xadd(stream, {"data": orjson.dumps(note("after").event)})
        await wait_until(lambda: history.list_alerts(conn, [P]), "an alert is recorded")
        assert [a["subject"] for a in await history.list_alerts(conn, [P])] == ["after"]
    finally:
        stopping.set()
        await task


async def test_a_rule_made_after_the_cache_was_loaded_sees_the_next_events(
        conn: psycopg.AsyncConnection[Any], aredis: aioredis.Redis, receiver: WebhookReceiver,
        new_group_pool: Any) -> None:
    """A spike rule added and then hit at once: the evaluator's cache (60 s old here) must not
    make it miss the events (the e2e test lost the first of three to a 0.2 s refresh)."""
    from ledger.daemons.alerts.evaluator import Evaluator
    from ledger.queue import names

    evaluator = Evaluator(new_group_pool, aredis, refresh_seconds=60, claim_idle_seconds=60,
                          give_up_seconds=3600, on_fired=lambda: None)
    await evaluator.refresh_rules(force=True)
    assert [r.kind for r in evaluator.rules[P]] == ["new_group"]
    spike = await rules.create(conn, P, {"name": "spike", "kind": "group_frequency",
                                         "threshold": 3, "window_minutes": 5,
                                         "channels": ["hook"]})
    stream = names.notifications_stream(P)
    for _ in range(3):
        await aredis.xadd(stream, {"data": orjson.dumps(note("spiky").event)})
        await evaluator.step(block_ms=10)
    fired = [a["rule_id"] for a in await history.list_alerts(conn, [P])]
    assert fired.count(str(spike.id)) == 1, fired
