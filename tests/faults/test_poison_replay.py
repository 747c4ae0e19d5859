"""A log PostgreSQL refuses is dead-lettered (the rest of its batch is stored), and replayed by
`ledger queue dead-letters --replay` once the cause is gone: stored once, nothing lost.

Real processes throughout: the gateway and `ledger serve ingest`, and the CLI as a subprocess.
The "poison" is a CHECK constraint the test adds, the stand-in for any row PostgreSQL refuses.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest

from ledger.config import Settings
from tests.faults.support import account, logs, post_batch, stored, stored_ids, wait_stored
from tests.stack import LEDGER, Stack
from tests.waiting import wait_until_blocking

pytestmark = pytest.mark.e2e


def _cli(stack: Stack, *args: str) -> str:
    done = subprocess.run([*LEDGER, *args], env=stack.env(), capture_output=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def test_a_poison_log_is_dead_lettered_then_replayed_and_stored_once(
        settings: Settings, tmp_path: Path) -> None:
    url = str(settings.logs_database_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE logs ADD CONSTRAINT no_poison"
                     " CHECK (message IS DISTINCT FROM 'poison')")
    with Stack(settings, tmp_path) as stack:
        stack.start("auth", "ingest", "gateway")
        with httpx.Client(base_url=stack.url, timeout=10) as http:
            _, project, key = account(http)
            batch = logs(100, "ordinary")
            batch[37]["message"] = "poison"
            assert post_batch(http, key, batch).status_code == 202
        sent = {str(r["log_id"]) for r in batch}
        wait_stored(url, project["id"], 99)
        letters = wait_until_blocking(
            lambda: orjson.loads(_cli(stack, "queue", "dead-letters", "--json")),
            "a dead letter is recorded", interval=0.2)
        assert [d["log"]["id"] for d in letters] == [batch[37]["log_id"]]
        assert "no_poison" in letters[0]["error"]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE logs DROP CONSTRAINT no_poison")
        replayed = orjson.loads(_cli(stack, "queue", "dead-letters", "--replay", "--json"))
        assert replayed == {project["id"]: {"replayed": 1, "left": 0}}
        wait_stored(url, project["id"], 100)
        assert stored_ids(url, project["id"]) == sent
        assert stored(url, project["id"]) == (100, 100)
        assert orjson.loads(_cli(stack, "queue", "dead-letters", "--json")) == []
