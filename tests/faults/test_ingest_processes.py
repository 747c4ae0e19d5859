"""Ingest as several processes (``--role api`` and ``--role writer``), one of them SIGKILLed
under load: nothing lost, nothing stored twice.

1. Two writer processes share the consumer group; one is killed while it holds entries it read
   and did not acknowledge; the other reclaims them (``XAUTOCLAIM``, after a short
   ``LEDGER_INGEST_CLAIM_IDLE_SECONDS``) and stores them once.
2. Two ingest API processes behind one gateway (``LEDGER_INGEST_ADDR`` lists both); one is
   killed mid-stream; the gateway's channel sends the next calls to the other, and a client
   that retries the same logs after a 503 gets every log stored once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from ledger.config import Settings
from ledger.queue import names
from ledger.rpc.ingest_client import IngestClient
from tests.faults.support import (
    account,
    logs,
    send_until_accepted,
    stored_ids,
    wait_stored,
)
from tests.stack import Stack

pytestmark = pytest.mark.e2e

BATCHES = 30
BATCH_SIZE = 1000
API_BATCHES = 20
SENDERS = 4
# Enough work before the kill that each API process's share stands clear of an idle one's CPU
# (~0.01 s): at ~10 µs of ingest CPU per log, 12 batches are ~0.06 s each.
KILL_AT = 12 * BATCH_SIZE


def _pending_by_consumer(queue: redis.Redis, project: str) -> dict[str, int]:
    try:
        summary: Any = queue.xpending(names.queue_stream(project), names.WRITER_GROUP)
    except redis.ResponseError:  # NOGROUP: no writer has seen the project yet
        return {}
    return {(c["name"].decode() if isinstance(c["name"], bytes) else c["name"]): int(c["pending"])
            for c in summary.get("consumers") or ()}


def _error_counts(url: str, project: str) -> list[tuple[int]]:
    with psycopg.connect(url) as conn:
        return [(int(r[0]),) for r in conn.execute(
            "SELECT event_count FROM error_groups WHERE project_id = %s", (project,))]


def _cpu_seconds(stack: Stack, name: str) -> float:
    """User + system CPU time of one of the stack's processes so far."""
    fields = Path(f"/proc/{stack.daemons[name].proc.pid}/stat").read_text().rsplit(")", 1)[1]
    utime, stime = fields.split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


async def test_sigkill_one_of_two_writer_processes(settings: Settings, tmp_path: Path) -> None:
    url = str(settings.logs_database_url)
    project = str(uuid.uuid4())
    bodies = [{"logs": logs(BATCH_SIZE, f"w{n}")} for n in range(BATCHES)]
    stack = Stack(settings.with_overrides(ingest_claim_idle_seconds=1.0), tmp_path)
    with stack, redis.Redis.from_url(str(settings.redis_url)) as queue:
        stack.settings = stack.settings.with_overrides(ingest_role="api")
        prefixes = {label: f"{socket.gethostname()}:"
                           f"{stack.add(label, 'ingest', ingest_role='writer')}:"
                    for label in ("writer-1", "writer-2")}
        stack.start("ingest", *prefixes)
        victim = ""
        client = IngestClient(f"127.0.0.1:{stack.ports['ingest']}",
                              str(settings.internal_token), timeout=10.0)
        stack_done: list[asyncio.Task[int]] = []
        try:
            async def send_all() -> int:
                return sum([await send_until_accepted(client, project, body)
                            for body in bodies])

            sender = asyncio.create_task(send_all())
            stack_done.append(sender)
            # Kill a writer process while it holds unacknowledged entries: both are frozen
            # (SIGSTOP) while the pending counts are read, so neither acknowledges meanwhile.
            procs = {label: stack.daemons[label].proc for label in prefixes}
            deadline = time.monotonic() + 20
            held: dict[str, int] = {}
            while not held:
                assert time.monotonic() < deadline, "no writer process held pending entries"
                await asyncio.sleep(0.002)
                for proc in procs.values():
                    proc.send_signal(signal.SIGSTOP)
                pending = _pending_by_consumer(queue, project)
                for label, prefix in prefixes.items():
                    held = {n: c for n, c in pending.items() if n.startswith(prefix) and c}
                    if held:
                        victim = label
                        break
                if held:
                    stack.kill(victim)
                for proc in procs.values():
                    proc.send_signal(signal.SIGCONT)
            accepted = await sender
        finally:
            for task in stack_done:
                task.cancel()
            await client.close()
        expected = BATCHES * BATCH_SIZE
        assert accepted == expected
        wait_stored(url, project, expected, seconds=30)
        assert _error_counts(url, project) == [(expected // 10,)]  # each error counted once
        assert int(queue.get(names.queue_depth(project)) or 0) == 0
        assert queue.xlen(names.queue_stream(project)) == 0
        assert not any(_pending_by_consumer(queue, project).values())
        survivor = next(label for label in prefixes if label != victim)
        survivor_log = stack.daemons[survivor].log.read_text()
        assert "reclaimed" in survivor_log, (held, survivor_log[-2000:])


async def test_sigkill_one_of_two_ingest_api_processes(settings: Settings,
                                                       tmp_path: Path) -> None:
    url = str(settings.logs_database_url)
    batches = [logs(BATCH_SIZE, f"api {n}") for n in range(API_BATCHES)]
    with Stack(settings, tmp_path) as stack:
        stack.settings = stack.settings.with_overrides(ingest_role="api")
        second = stack.add("ingest-2", "ingest")
        stack.add("writer-1", "ingest", ingest_role="writer")
        stack.settings = stack.settings.with_overrides(
            ingest_addr=f"127.0.0.1:{stack.ports['ingest']},127.0.0.1:{second}")
        stack.start("auth", "ingest", "ingest-2", "writer-1")
        stack.start("gateway")
        with httpx.Client(base_url=stack.url, timeout=10) as http:
            _, project, key = account(http)
        answers: dict[int | str, int] = {}
        accepted: set[str] = set()
        todo = list(reversed(batches))
        before = {n: _cpu_seconds(stack, n) for n in ("ingest", "ingest-2")}
        spent: dict[str, float] = {}

        async def sender(http: httpx.AsyncClient) -> None:
            while todo:
                batch = todo.pop()
                while True:  # what an SDK does: the same logs again until accepted
                    try:
                        response = await http.post("/api/v1/ingest/batch", json={"logs": batch},
                                                   headers={"X-API-Key": key})
                        status: int | str = response.status_code
                    except httpx.TransportError as exc:
                        status = type(exc).__name__
                    answers[status] = answers.get(status, 0) + 1
                    if status == 202:
                        accepted.update(r["log_id"] for r in batch)
                        break
                    assert sum(answers.values()) < 10 * API_BATCHES, answers
                    await asyncio.sleep(0.05)
                if len(accepted) >= KILL_AT and not spent:
                    # Both API processes took calls: the gateway spreads them.
                    spent.update({n: _cpu_seconds(stack, n) - before[n] for n in before})
                    stack.kill("ingest-2")

        async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
            await asyncio.gather(*(sender(http) for _ in range(SENDERS)))
        assert min(spent.values()) > 0.04, spent  # an idle daemon spends ~0.01 s meanwhile
        wait_stored(url, project["id"], len(accepted), seconds=30)
        assert len(accepted) == API_BATCHES * BATCH_SIZE
        assert stored_ids(url, project["id"]) == accepted
        assert "Traceback" not in stack.daemons["gateway"].log.read_text()
