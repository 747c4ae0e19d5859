"""A full queue refuses whole requests (503, Retry-After) and queues nothing of them.

Ingest runs without writers and with a small queue cap, so the queue fills; each refused batch
must leave no trace, and once writers drain the queue the same batch is accepted and stored.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ledger.config import Settings
from tests.faults.support import account, logs, post_batch, stored_ids, wait_stored
from tests.stack import Stack

pytestmark = pytest.mark.e2e

CAP = 300
SIZE = 100


def test_a_full_queue_refuses_whole_requests_and_queues_nothing_of_them(
        settings: Settings, tmp_path: Path) -> None:
    url = str(settings.logs_database_url)
    env = {"LEDGER_INGEST_WRITERS": "0", "LEDGER_INGEST_QUEUE_MAX_DEPTH": str(CAP)}
    with Stack(settings, tmp_path, extra_env=env) as stack:
        stack.start("auth", "ingest", "gateway")
        with httpx.Client(base_url=stack.url, timeout=10) as http:
            _, project, key = account(http)
            accepted: set[str] = set()
            refused: list[list[dict[str, object]]] = []
            for n in range(CAP // SIZE + 3):
                batch = logs(SIZE, f"batch {n}")
                answer = post_batch(http, key, batch)
                if answer.status_code == 202:
                    accepted.update(str(r["log_id"]) for r in batch)
                    continue
                assert answer.status_code == 503, answer.text
                assert answer.headers["Retry-After"] == "60"
                assert "queue" in answer.json()["detail"].lower()
                refused.append(batch)
            assert len(accepted) == CAP and len(refused) == 3
            # Writers drain the queue: exactly what was accepted is stored.
            assert stack.stop("ingest") == 0
            stack.extra_env["LEDGER_INGEST_WRITERS"] = "2"
            stack.start("ingest")
            wait_stored(url, project["id"], len(accepted))
            assert stored_ids(url, project["id"]) == accepted
            # The client retries a refused batch once there is room: accepted, stored once.
            retry = post_batch(http, key, refused[0])
            assert retry.status_code == 202, retry.text
            accepted.update(str(r["log_id"]) for r in refused[0])
        wait_stored(url, project["id"], len(accepted))
        assert stored_ids(url, project["id"]) == accepted
