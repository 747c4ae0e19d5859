"""Ledger on a real Redis Cluster (3 masters, one replica each, on loopback ports).

Projects are picked so that their queue streams lie on different masters: the writers must
read each slot on its own (a cross-slot XREADGROUP is refused), the enqueue script, the live
feeds, the rate limits and ``ledger queue`` must each stay in one slot. Then a master fails
over to its replica while logs keep coming, and every log is still stored exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from typer.testing import CliRunner

from ledger import bus
from ledger.cli.main import app as cli_app
from ledger.config import Settings
from ledger.core import accounts, api_keys, projects
from ledger.daemons import auth as auth_daemon
from ledger.daemons import gateway as gateway_daemon
from ledger.daemons import ingest as ingest_daemon
from ledger.daemons.ingest.service import prepare
from ledger.errors import LedgerError
from ledger.queue import names
from ledger.queue.client import Queue, Refused
from ledger.sse_client import Connection, EventSource, ServerEvent
from tests import redis_cluster
from tests.ingest_support import BATCH, count_logs, eventually, log, running_ingest, send
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis_cluster.RedisCluster]:
    started = redis_cluster.start(Path(tmp_path_factory.mktemp("redis-cluster")))
    yield started
    started.stop()


def master_port(client: Any, project_id: str) -> int:
    """The port of the master that holds the project's queue stream."""
    cluster = bus.cluster_of(client)
    assert cluster is not None
    return int(cluster.get_node_from_key(names.queue_stream(project_id)).port)


def spread_ids(client: Any, n_masters: int, per_master: int = 1) -> list[str]:
    """Project ids whose streams lie on ``n_masters`` different masters, ``per_master`` each."""
    by_master: dict[int, list[str]] = {}
    while len(by_master) < n_masters or any(len(v) < per_master for v in by_master.values()):
        project_id = str(uuid.uuid4())
        found = by_master.setdefault(master_port(client, project_id), [])
        if len(found) < per_master:
            found.append(project_id)
    return [p for ids in by_master.values() for p in ids]


def stored_once(url: str, project_id: str) -> int | None:
    """How many logs the project has, or None when some id is stored twice. Blocking: call it
    through a thread, since a sync query on the loop could wait on a lock that the in-process
    writers (the same loop) hold, e.g. while creating a partition, and never get it."""
    count = count_logs(url, project_id)
    return count if count == distinct_ids(url, project_id) else None


def distinct_ids(url: str, project_id: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(DISTINCT id) FROM logs WHERE project_id = %s",
                           (project_id,)).fetchone()
    return int(row[0]) if row else 0


async def take(stream: AsyncIterator[ServerEvent | Connection], n: int, kind: str,
               ) -> list[ServerEvent]:
    got: list[ServerEvent] = []

    async def run() -> None:
        async for item in stream:
            if isinstance(item, ServerEvent) and item.event == kind:
                got.append(item)
                if len(got) == n:
                    return

    await asyncio.wait_for(run(), 15)
    return got


def cli(settings: Settings, *args: str) -> Any:
    result = CliRunner().invoke(cli_app, list(args), env=settings.to_env())
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


async def test_gateway_ingest_live_rate_limits_and_queue_cli_across_masters(
        settings: Settings, cluster: redis_cluster.RedisCluster) -> None:
    base = settings.with_overrides(redis_url=cluster.url, ingest_writers=2)
    logs_url = str(base.logs_database_url)
    async with contextlib.AsyncExitStack() as stack:
        redis = bus.client(cluster.url)
        stack.push_async_callback(redis.aclose)
        assert await redis.ping()  # learns the slot map
        conn = await psycopg.AsyncConnection.connect(str(base.auth_database_url),
                                                     autocommit=True)
        stack.push_async_callback(conn.close)
        account = await accounts.register(conn, "cluster@example.com", "correct horse battery")
        # Projects until their streams lie on all three masters, one project per master.
        chosen: dict[int, tuple[str, str]] = {}
        n = 0
        while len(chosen) < 3:
            project = await projects.create_project(conn, account_id=account.id,
                                                    name=f"p{n}", slug=f"p{n}")
            n += 1
            if master_port(redis, project.id) not in chosen:
                _, key = await api_keys.create_key(conn, project.id, "test")
                chosen[master_port(redis, project.id)] = (project.id, key)
        ids = [project_id for project_id, _ in chosen.values()]
        keys = [key for _, key in chosen.values()]
        assert len({master_port(redis, p) for p in ids}) == 3

        daemons = {}
        for name, module in (("auth", auth_daemon), ("ingest", ingest_daemon)):
            daemons[name] = module.create(base)
            await daemons[name].start()
            stack.push_async_callback(daemons[name].stop)
        gateway = gateway_daemon.create(base.with_overrides(
            auth_addr=f"127.0.0.1:{daemons['auth'].port}",
            ingest_addr=f"127.0.0.1:{daemons['ingest'].port}"))
        await gateway.start()
        stack.push_async_callback(gateway.stop)
        url = f"http://127.0.0.1:{gateway.port}"
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=url))

        # Live: error notifications of the first project, the tail of the second.
        notes = EventSource(f"{url}/api/v1/notifications/stream",
                            headers={"X-API-Key": keys[0]}, retry_seconds=0.05).stream()
        tail = EventSource(f"{url}/api/v1/logs/tail", headers={"X-API-Key": keys[1]},
                           retry_seconds=0.05).stream()
        await take(notes, 1, "connected")
        await take(tail, 1, "connected")

        async def post(key: str, body: Any) -> httpx.Response:
            return await http.post("/api/v1/ingest/batch", json=body,
                                   headers={"X-API-Key": key})

        batches = 3
        answers = await asyncio.gather(*[
            post(key, {"logs": [log(i, message=f"{p} {b} {i}") for i in range(199)]
                       + [log(0, level="error", log_type="exception", error_type="KeyError",
                              error_message=f"missing {b}", message=f"{p} error {b}")]})
            for p, key in zip(ids, keys, strict=True) for b in range(batches)])
        assert all(a.status_code == 202 for a in answers), [a.text for a in answers]

        for project_id in ids:
            await eventually(lambda p=project_id: count_logs(logs_url, p) >= 200 * batches,
                             timeout=30)
            assert await asyncio.to_thread(stored_once, logs_url, project_id) == 200 * batches
        errors = await take(notes, batches, "error_notification")
        assert sorted(e.json()["message"] for e in errors) == [
            f"{ids[0]} error {b}" for b in range(batches)]
        tailed = await take(tail, 1, "log")
        assert tailed[0].json()["project_id"] == ids[1]
        await notes.aclose()
        await tail.aclose()

        # Rate limits: a key of 2 requests a minute (counters in the key's own slot).
        _, limited = await api_keys.create_key(conn, ids[2], "limited", rate_limit_minute=2)
        codes = [(await http.post("/api/v1/ingest/single", json=log(0),
                                  headers={"X-API-Key": limited})) for _ in range(5)]
        refused = [r for r in codes if r.status_code == 429]
        assert refused and all(r.status_code in (202, 429) for r in codes)
        assert refused[0].headers["X-RateLimit-Limit-Minute"] == "2"
        assert int(refused[0].headers["Retry-After"]) >= 1

        # Backpressure: the enqueue script refuses a request that would pass the depth cap
        # (over the HTTP API, with writers draining, "full" depends on timing; the script
        # itself is what decides, on the project's own master).
        full = prepare(ids[1], BATCH, orjson.dumps({"logs": [log(i) for i in range(3)]}),
                       retention_days=90, now=datetime.now(UTC))
        with pytest.raises(Refused) as refused_enqueue:
            await Queue(redis).enqueue(ids[1], full.entry, max_depth=2)
        assert refused_enqueue.value.reason == "queue_full"

        # ``ledger queue``: status of every project, and a dead letter on a third master.
        await redis.xadd(names.queue_stream(ids[2]), {"n": "2", "rows": "garbage"})
        await redis.incrby(names.queue_depth(ids[2]), 2)
        await wait_until(lambda: redis.xlen(names.dead_letters(ids[2])),
                         "the unreadable entry was dead-lettered")

        def drained() -> list[dict[str, Any]] | None:
            rows = [r for r in cli(base, "queue", "status", "--json") if r["project_id"] in ids]
            return rows if all(r["depth"] == 0 and r["length"] == 0 for r in rows) else None

        status = await wait_until(lambda: asyncio.to_thread(drained), "the queues drained")
        assert {r["project_id"]: (r["pending"], r["lag"], r["dead_letters"]) for r in status} \
            == {ids[0]: (0, 0, 0), ids[1]: (0, 0, 0), ids[2]: (0, 0, 1)}
        dead = await asyncio.to_thread(cli, base, "queue", "dead-letters", "--project", ids[2],
                                       "--json")
        assert len(dead) == 1 and dead[0]["error"]


async def test_a_master_fails_over_during_ingest_and_nothing_is_lost_or_duplicated(
        settings: Settings, cluster: redis_cluster.RedisCluster) -> None:
    base = settings.with_overrides(redis_url=cluster.url, ingest_writers=2)
    logs_url = str(base.logs_database_url)
    redis = bus.client(cluster.url)
    try:
        assert await redis.ping()
        ids = spread_ids(redis, 3)
        victim = master_port(redis, ids[0])
        replica = cluster.replica_of(victim)
        per_batch = 50
        sent: dict[str, int] = dict.fromkeys(ids, 0)
        retried = 0
        async with running_ingest(base) as (_, client):

            async def deliver(project_id: str, body: dict[str, Any]) -> None:
                nonlocal retried
                for _ in range(200):
                    try:
                        await send(client, project_id, body)
                        return
                    except LedgerError:
                        retried += 1  # a 503 while the slot moves: the client sends again
                        await asyncio.sleep(0.05)
                raise AssertionError("ingest never took the batch back")

            async def deliver_round(r: int) -> None:
                await asyncio.gather(*[deliver(p, {"logs": [
                    log(i, log_id=str(uuid.uuid4()), message=f"r{r} {i}")
                    for i in range(per_batch)]}) for p in ids])
                for p in ids:
                    sent[p] += per_batch

            r = 0
            for r in range(4):
                await deliver_round(r)
            # A manual failover: the replica takes the victim's slots over; logs keep coming
            # while it happens and after.
            cluster.cli(replica, "cluster", "failover")
            after = 0
            while after < 4:
                r += 1
                await deliver_round(r)
                if cluster.role(replica) == "master":
                    after += 1
                assert r < 400, "the replica never became master"
            rounds = r + 1
            for project_id in ids:
                await eventually(lambda p=project_id: count_logs(logs_url, p) >= sent[p],
                                 timeout=30)

            async def drained() -> bool:
                depths = [await redis.get(names.queue_depth(p)) for p in ids]
                return all(int(d or 0) == 0 for d in depths)

            await wait_until(drained, "every queue depth back to 0")
        for project_id in ids:
            assert await asyncio.to_thread(stored_once, logs_url, project_id) \
                == rounds * per_batch
        assert master_port(redis, ids[0]) == replica  # the client followed the move
        print(f"failover: {rounds} rounds, {retried} batches sent again")
    finally:
        await redis.aclose()



def _pings(cluster: redis_cluster.RedisCluster, port: int) -> int:
    stats = cluster.cli(port, "info", "commandstats")
    found = re.search(r"cmdstat_ping:calls=(\d+)", stats)
    return int(found.group(1)) if found else 0


async def test_alerts_read_every_project_on_every_master_and_fire_once(
        cluster: redis_cluster.RedisCluster, logs_db_url: str) -> None:
    """The evaluator's read of the notification streams is one XREADGROUP per slot (a
    cross-slot read is refused by a cluster): a new error on each of three masters fires its
    rule, once, and the entries are acknowledged."""
    from psycopg_pool import AsyncConnectionPool

    from ledger.core.alerts import channels, history, rules
    from ledger.daemons.alerts.evaluator import Evaluator
    from tests.alert_receivers import WebhookReceiver

    client = bus.client(cluster.url)
    receiver = WebhookReceiver().start()
    pool = AsyncConnectionPool(logs_db_url, open=False, kwargs={"autocommit": True})
    await pool.open()
    try:
        assert await client.ping()  # learns the slot map
        project_ids = spread_ids(client, 3)
        async with pool.connection() as conn:
            for project_id in project_ids:
                name, kind, config, secret = channels.validate({
                    "name": "hook", "kind": "webhook", "url": receiver.url,
                    "allow_insecure_localhost": True})
                await channels.insert(conn, project_id, name, kind, config, secret)
                await rules.create(conn, project_id, {"name": "new", "kind": "new_group",
                                                      "channels": ["hook"]})
        evaluator = Evaluator(pool, client, refresh_seconds=60, claim_idle_seconds=60,
                              give_up_seconds=3600, on_fired=lambda: None)
        await evaluator.refresh_rules(force=True)
        for project_id in project_ids:
            event = {"id": str(uuid.uuid4()), "project_id": project_id,
                     "timestamp": datetime.now(UTC).isoformat(), "level": "error",
                     "log_type": "exception", "error_type": "KeyError",
                     "error_message": "k", "error_fingerprint": f"fp-{project_id[:8]}"}
            await client.xadd(names.notifications_stream(project_id),
                              {"data": orjson.dumps(event)})
        done = 0
        for _ in range(20):
            done += await evaluator.step(block_ms=100)
            if done >= 3:
                break
        assert done == 3
        async with pool.connection() as conn:
            fired = await history.list_alerts(conn, project_ids)
        assert sorted(a["project_id"] for a in fired) == sorted(project_ids)
        for project_id in project_ids:
            pending = await client.xpending(names.notifications_stream(project_id),
                                            bus.ALERTS_GROUP)
            assert pending["pending"] == 0
    finally:
        await pool.close()
        receiver.stop()
        await client.aclose()


async def test_health_asks_every_master_and_no_replica(
        cluster: redis_cluster.RedisCluster) -> None:
    """Last in this module: it shuts a replica down for good. redis-py sends PING to one
    default node only, so a master down whose slots nobody serves went unseen unless it was
    that one; a replica down must not count."""
    from ledger.daemons.checks import redis_health

    client = bus.client(cluster.url)
    try:
        assert await redis_health(client) == "ok"
        masters = cluster.masters()
        before = {port: _pings(cluster, port) for port in masters}
        assert await redis_health(client) == "ok"
        assert all(_pings(cluster, port) > before[port] for port in masters), before

        replica = cluster.replica_of(masters[0])
        with contextlib.suppress(Exception):  # it closes the connection instead of answering
            cluster.cli(replica, "shutdown", "nosave")
        cluster.processes[replica].wait(10)
        assert await redis_health(client) == "ok"  # every slot is still served
    finally:
        await client.aclose()
