"""Alerts (DESIGN §9, §11): ingest → webhook latency, and rule evaluations per second.

    .venv/bin/python bench/bench_alerts.py                       # both, own stack in a temp dir
    .venv/bin/python bench/bench_alerts.py --groups 200 --projects 100 --rules-per-project 10 \\
        --rate 5000 --seconds 30

1. ``--groups`` errors, each a new error group, sent one by one to ``POST /ingest/single``
   (``--gap`` apart) with a new_group rule on a webhook channel: latency from the moment the
   request is sent to the moment the webhook receiver (in this process, a thread) has read the
   alert's body. p50 / p99 / max.
2. ``--projects`` projects with ``--rules-per-project`` rules each (a mix of every kind), while
   ``--rate`` logs/s (10 % errors, over a pool of fingerprints, a few new ones) are ingested in
   batches across the projects for ``--seconds``: the rule evaluations per second the alerts
   daemon reports in its log, and how far behind the notification streams it was at the end.

Every process of the stack, the load generator and the receiver share the machine: note the
load average printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from harness import GENEROUS_LIMITS, import_tests, migrated_servers, percentile

import_tests()  # for tests.stack and tests.alert_receivers
from tests.alert_receivers import WebhookReceiver  # noqa: E402
from tests.stack import Stack  # noqa: E402

FAST_ENV = {"LEDGER_ALERTS_RULES_REFRESH_SECONDS": "1", "LEDGER_ALERTS_INTERVAL_SECONDS": "5"}
STATS = re.compile(r"alerts: (\d+) rule evaluations \((\d+) on events, (\d+) periodic\) in"
                   r" ([\d.]+) s")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def add_alerts(settings: Any, project_id: str, receiver: WebhookReceiver,
                     kinds: list[dict[str, Any]]) -> None:
    from ledger.core.alerts import manage
    from ledger.core.connections import connect_postgres

    conn = await connect_postgres(str(settings.logs_database_url))
    try:
        await manage.create_channel(conn, project_id, {
            "name": "hook", "kind": "webhook", "url": receiver.url,
            "allow_insecure_localhost": True})
        for i, body in enumerate(kinds):
            await manage.create_rule(conn, project_id, {"name": f"rule-{i}",
                                                        "channels": ["hook"], **body})
    finally:
        await conn.close()


async def new_project(settings: Any, slug: str) -> tuple[str, str]:
    from ledger.core import accounts, api_keys, projects
    from ledger.core.connections import auth_connections

    async with auth_connections(settings) as (conn, _redis):
        owner = await accounts.get_account_by_email(conn, "admin@ledger.local")
        project = await projects.create_project(conn, account_id=owner.id, name=slug,
                                                slug=slug, environment="production")
        _, full_key = await api_keys.create_key(conn, project.id, name="bench")
    return project.id, full_key


def catch_up(redis_url: str, project_ids: list[str]) -> float:
    """Seconds after the load stopped until every stream's group had read and acked all."""
    import redis

    from ledger import bus
    from ledger.queue import names

    client = redis.Redis.from_url(redis_url)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < 120:
            behind = 0
            for project_id in project_ids:
                stream = names.notifications_stream(project_id)
                last = client.xinfo_stream(stream)["last-generated-id"]
                for group in client.xinfo_groups(stream):
                    if group["name"] == bus.ALERTS_GROUP.encode():
                        behind += group["pending"] + (group["last-delivered-id"] != last)
            if not behind:
                break
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        client.close()


def error(kind: str, message: str) -> dict[str, Any]:
    return {"timestamp": datetime.now(UTC).isoformat(), "level": "error",
            "log_type": "exception", "error_type": kind, "error_message": message,
            "message": "bench", "environment": "production", "release": "1.0"}


async def latency(url: str, key: str, receiver: WebhookReceiver, groups: int,
                  gap: float) -> tuple[list[float], list[float]]:
    """Send → received, and send → recorded in the outbox (the alert's ``fired_at``), in ms."""
    sent: dict[str, tuple[float, float]] = {}
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=30) as http:
        for n in range(groups):
            kind = f"BenchError{n}x{secrets.token_hex(3)}"
            sent[kind] = (time.perf_counter(), time.time())
            answer = await http.post("/api/v1/ingest/single", json=error(kind, "first"))
            answer.raise_for_status()
            await asyncio.sleep(gap)
    await asyncio.to_thread(receiver.wait_for, groups, 60.0)
    total, fired = [], []
    for got in receiver.received():
        body = got.json()
        kind = (body.get("sample_event") or {}).get("error_type")
        if kind in sent:
            total.append((got.at - sent[kind][0]) * 1000)
            fired_at = datetime.fromisoformat(body["fired_at"]).timestamp()
            fired.append((fired_at - sent[kind][1]) * 1000)
    return total, fired


RULE_MIX: list[dict[str, Any]] = [
    {"kind": "new_group"},
    {"kind": "new_group", "filters": {"environment": ["staging"]}},
    {"kind": "regression"},
    {"kind": "regression", "filters": {"level": ["critical"]}},
    {"kind": "group_frequency", "threshold": 1000, "window_minutes": 5},
    {"kind": "group_frequency", "threshold": 50, "window_minutes": 1},
    {"kind": "group_frequency", "threshold": 10, "window_minutes": 1,
     "filters": {"release": ["9.9"]}},
    {"kind": "group_frequency", "threshold": 500, "window_minutes": 10},
    {"kind": "error_rate", "threshold": 1000, "window_minutes": 5},
    {"kind": "no_logs", "window_minutes": 5},
]


async def evaluations(stack: Stack, settings: Any, receiver: WebhookReceiver, projects: int,
                      rules_per_project: int, rate: int, seconds: float) -> dict[str, Any]:
    keys, project_ids = [], []
    for i in range(projects):
        project_id, key = await new_project(settings, f"bench-{i}-{secrets.token_hex(2)}")
        await add_alerts(settings, project_id, receiver,
                         [RULE_MIX[r % len(RULE_MIX)] for r in range(rules_per_project)])
        keys.append(key)
        project_ids.append(project_id)
    await asyncio.sleep(3)  # the daemon picks the rules up (refresh every second)
    log = stack.daemons["alerts"].log
    offset = log.stat().st_size
    batch = 100
    sent = 0
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=stack.url, timeout=30,
                                 limits=httpx.Limits(max_connections=16)) as http:
        async def send(key: str, n: int) -> None:
            logs = []
            for j in range(batch):
                if j % 10 == 0:  # 10 % errors over 20 groups per project (and a few new ones)
                    kind = f"E{(n + j) % 20}" if (n + j) % 97 else f"New{uuid.uuid4().hex[:6]}"
                    logs.append(error(kind, "boom"))
                else:
                    logs.append({"timestamp": datetime.now(UTC).isoformat(), "level": "info",
                                 "message": "ok", "environment": "production"})
            answer = await http.post("/api/v1/ingest/batch", json={"logs": logs},
                                     headers={"X-API-Key": key})
            answer.raise_for_status()

        n = 0
        while time.perf_counter() - started < seconds:
            tick = time.perf_counter()
            per_tick = max(1, rate // batch // 10)  # ten ticks a second
            await asyncio.gather(*(send(keys[(n + k) % len(keys)], n + k)
                                   for k in range(per_tick)))
            n += per_tick
            sent += per_tick * batch
            await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - tick)))
    elapsed = time.perf_counter() - started
    behind = await asyncio.to_thread(catch_up, str(settings.redis_url), project_ids)
    await asyncio.sleep(12)  # one more stats period of the daemon
    text = log.read_text(errors="replace")[offset:]
    periods = [(int(m[1]), int(m[2]), int(m[3]), float(m[4])) for m in STATS.finditer(text)]
    busy = [p for p in periods if p[0] > 0]
    drained = await drain(stack, keys, project_ids, str(settings.redis_url))
    return {"logs_sent": sent, "ingest_logs_per_s": sent / elapsed, "caught_up_s": behind,
            "drain": drained,
            "periods": periods,
            "evaluations_per_s_peak": max((p[0] / p[3] for p in busy), default=0.0),
            "evaluations_per_s_mean": (sum(p[0] for p in busy) / sum(p[3] for p in busy))
            if busy else 0.0}


async def drain(stack: Stack, keys: list[str], project_ids: list[str],
                redis_url: str) -> dict[str, float]:
    """Capacity: errors queued while the daemon is stopped, then the time it takes to catch up.

    Each project's notification stream keeps about 1 000 entries, so 500 per project are sent.
    """
    stack.stop("alerts")
    per_project = 500
    async with httpx.AsyncClient(base_url=stack.url, timeout=60,
                                 limits=httpx.Limits(max_connections=16)) as http:
        async def fill(key: str) -> None:
            for chunk in range(per_project // 100):
                logs = [error(f"E{(chunk * 100 + j) % 20}", "boom") for j in range(100)]
                answer = await http.post("/api/v1/ingest/batch", json={"logs": logs},
                                         headers={"X-API-Key": key})
                answer.raise_for_status()

        await asyncio.gather(*(fill(k) for k in keys))
    log = stack.daemons["alerts"].log
    offset = log.stat().st_size
    started = time.perf_counter()
    stack.start("alerts")
    await asyncio.to_thread(catch_up, redis_url, project_ids)
    seconds = time.perf_counter() - started  # from the daemon's start: its boot is included
    await asyncio.sleep(12)
    text = log.read_text(errors="replace")[offset:]
    on_events = sum(int(m[2]) for m in STATS.finditer(text))
    return {"notifications": per_project * len(keys), "seconds": seconds,
            "event_evaluations": on_events, "evaluations_per_s": on_events / seconds}


async def main_async(args: argparse.Namespace) -> None:
    from ledger.core.bootstrap import ensure_default_setup

    with tempfile.TemporaryDirectory(prefix="ledger-bench-alerts-") as tmp:
        workdir = Path(tmp)
        servers = contextlib.ExitStack()
        receiver = WebhookReceiver().start()
        try:
            settings = servers.enter_context(migrated_servers(workdir, **GENEROUS_LIMITS))
            setup = await ensure_default_setup(settings)
            assert setup.full_key is not None
            await add_alerts(settings, setup.project.id, receiver, [{"kind": "new_group"}])
            with Stack(settings, workdir / "stack", extra_env=dict(FAST_ENV)) as stack:
                stack.start("auth", "ingest", "alerts", "gateway")
                if args.groups:
                    print(f"1. ingest → webhook, {args.groups} new groups, load {load()}")
                    ms, fired = await latency(stack.url, setup.full_key, receiver,
                                              args.groups, args.gap)
                    print(f"   received {len(ms)}/{args.groups}: p50 {percentile(ms, 50):.0f} ms,"
                          f" p99 {percentile(ms, 99):.0f} ms, max {max(ms):.0f} ms;"
                          f" load {load()}")
                    print(f"   of which send → alert recorded: p50 {percentile(fired, 50):.0f}"
                          f" ms, p99 {percentile(fired, 99):.0f} ms")
                    receiver.requests.clear()
                if args.projects:
                    print(f"2. {args.projects * args.rules_per_project} rules over"
                          f" {args.projects} projects, {args.rate} logs/s for {args.seconds} s,"
                          f" load {load()}")
                    got = await evaluations(stack, settings, receiver, args.projects,
                                            args.rules_per_project, args.rate, args.seconds)
                    print(f"   evaluator caught up {got['caught_up_s']:.2f} s after the load")
                    print(f"   ingested {got['ingest_logs_per_s']:.0f} logs/s;"
                          f" rule evaluations {got['evaluations_per_s_mean']:.0f}/s mean,"
                          f" {got['evaluations_per_s_peak']:.0f}/s best period; load {load()}")
                    print(f"   daemon periods (evaluations, on events, periodic, seconds):"
                          f" {got['periods']}")
                    d = got["drain"]
                    print(f"3. capacity: {d['notifications']:.0f} notifications queued while the"
                          f" daemon was stopped, drained in {d['seconds']:.1f} s (start"
                          f" included): {d['event_evaluations']:.0f} rule evaluations ="
                          f" {d['evaluations_per_s']:.0f}/s; load {load()}")
        finally:
            receiver.stop()
            servers.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between new groups")
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--rules-per-project", type=int, default=10)
    parser.add_argument("--rate", type=int, default=5000, help="logs per second to ingest")
    parser.add_argument("--seconds", type=float, default=30.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
