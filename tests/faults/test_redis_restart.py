"""Redis SIGKILLed with logs queued and not yet stored, restarted from its AOF: none is lost.

The embedded Redis writes its AOF before it answers (``appendfsync everysec`` fsyncs once a
second: a killed *process* loses nothing, an OS crash may lose the last second; see README
"Reliability"). Ingest runs without writers at first, so that every accepted log is still in
Redis when it dies; while Redis is down ingest answers 503 and the sender retries the same logs.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from ledger.config import Settings
from ledger.embedded import EmbeddedRedis
from ledger.rpc.ingest_client import IngestClient
from tests.faults.support import fault_dir, logs, send_until_accepted, stored_ids, wait_stored
from tests.ingest_support import new_project
from tests.stack import Stack

pytestmark = pytest.mark.e2e

BATCHES = 8
SIZE = 200


async def test_sigkill_redis_restart_from_aof_loses_nothing(settings: Settings,
                                                             tmp_path: Path) -> None:
    url = str(settings.logs_database_url)
    project = new_project()
    bodies = [{"logs": logs(SIZE, f"batch {n}")} for n in range(BATCHES)]
    with fault_dir() as folder:
        redis = EmbeddedRedis(folder / "redis")
        redis_url = redis.start()
        stack = Stack(settings.with_overrides(redis_url=redis_url), tmp_path,
                      extra_env={"LEDGER_INGEST_WRITERS": "0"})
        try:
            stack.start("ingest")
            client = IngestClient(f"127.0.0.1:{stack.ports['ingest']}",
                                  str(settings.internal_token), timeout=5.0)
            accepted = 0
            for body in bodies[:BATCHES // 2]:
                accepted += await send_until_accepted(client, project, body)
            # At once: Redis wrote each entry to its AOF before it answered, so a killed
            # process (unlike a crashed OS) has lost nothing even within the fsync second.
            assert redis.pid is not None
            os.kill(redis.pid, signal.SIGKILL)
            redis.stop()  # reaps the killed process
            restarted = False

            def restart() -> None:
                nonlocal restarted
                if not restarted:
                    restarted = True
                    redis.start()  # same port, same folder: replays the AOF

            for body in bodies[BATCHES // 2:]:
                accepted += await send_until_accepted(client, project, body, restart)
            assert restarted, "no request met Redis down"
            await client.close()
            # Now store: a restarted ingest with writers drains the restored queue.
            assert stack.stop("ingest") == 0
            stack.extra_env["LEDGER_INGEST_WRITERS"] = "2"
            stack.start("ingest")
            sent = {record["log_id"] for body in bodies for record in body["logs"]}
            assert accepted == len(sent)
            wait_stored(url, project, len(sent))
            assert stored_ids(url, project) == sent
        finally:
            stack.close()
            redis.stop()
