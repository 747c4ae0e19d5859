"""A daemon stops answering: the gateway says 503 (naming it, with Retry-After), fast, and what
it accepted with 202 meanwhile is stored once.

- query hung (SIGSTOP: connections open, nothing answers): reads 503 within the read deadline,
  then at once while the breaker is open; ingest goes on; reads come back after SIGCONT.
- auth stopped: a key the gateway knows still ingests (202), an unknown one gets 503, and
  once auth is back the unknown key is refused with 401 again.
- ingest stopped: a batch gets 503 naming it; none of it is stored, and once ingest is back the
  client's retry is stored once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ledger.config import Settings
from tests.faults.support import account, logs, post_batch, stored_ids, wait_stored
from tests.stack import Stack
from tests.waiting import wait_until_blocking

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    with Stack(settings, tmp_path) as running:
        running.start("auth", "ingest", "query", "gateway")
        yield running


def _until(check: Callable[[], object], what: str, seconds: float = 30.0) -> None:
    wait_until_blocking(check, what, timeout=seconds, interval=0.2)


def test_a_hung_query_daemon_costs_reads_one_deadline_then_none(stack: Stack,
                                                                  settings: Settings) -> None:
    url = str(settings.logs_database_url)
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        _, project, key = account(http)
        headers = {"X-API-Key": key}
        before = logs(20, "before")
        assert post_batch(http, key, before).status_code == 202
        assert http.get("/api/v1/logs", headers=headers).status_code == 200
        query = stack.daemons["query"].proc
        query.send_signal(signal.SIGSTOP)
        try:
            # Three reads at once meet the hung daemon: each waits one read deadline (5 s, not
            # the 10 s of other calls), and their failures open the breaker.
            with ThreadPoolExecutor(3) as pool:
                first = list(pool.map(lambda _: http.get("/api/v1/logs", headers=headers),
                                      range(3)))
            assert [r.status_code for r in first] == [503] * 3
            # Now refused without waiting: a 1 s client timeout would fail a 5 s wait.
            fast = http.get("/api/v1/logs", headers=headers, timeout=1.0)
            assert fast.status_code == 503
            assert fast.json()["detail"].startswith("the query daemon is unavailable")
            assert int(fast.headers["Retry-After"]) > 0
            # Ingest does not need query.
            during = logs(30, "during")
            assert post_batch(http, key, during).status_code == 202
        finally:
            query.send_signal(signal.SIGCONT)
        _until(lambda: http.get("/api/v1/logs", headers=headers).status_code == 200,
               "reads came back after SIGCONT")
    sent = {r["log_id"] for r in before + during}
    wait_stored(url, project["id"], len(sent))
    assert stored_ids(url, project["id"]) == sent


def test_auth_down_known_keys_ingest_unknown_get_503_and_401_once_back(
        stack: Stack, settings: Settings) -> None:
    url = str(settings.logs_database_url)
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        _, project, key = account(http)
        prefix, _, secret = key.rpartition("_")
        wrong = f"{prefix}_{'x' * len(secret)}"  # well formed, never issued
        before = logs(10, "before")
        assert post_batch(http, key, before).status_code == 202  # the gateway now knows the key
        assert stack.stop("auth") == 0
        during = logs(40, "during")
        known = post_batch(http, key, during)
        assert known.status_code == 202, known.text
        unknown = post_batch(http, wrong, logs(1, "unknown"))
        assert unknown.status_code == 503, unknown.text
        assert "auth daemon" in unknown.json()["detail"]
        assert int(unknown.headers["Retry-After"]) > 0
        stack.start("auth")
        _until(lambda: post_batch(http, wrong, logs(1, "unknown")).status_code == 401,
               "the gateway asks auth again once it is back")
    sent = {r["log_id"] for r in before + during}
    wait_stored(url, project["id"], len(sent))
    assert stored_ids(url, project["id"]) == sent


def test_ingest_down_is_a_503_naming_it_and_nothing_half_stored(
        stack: Stack, settings: Settings) -> None:
    url = str(settings.logs_database_url)
    with httpx.Client(base_url=stack.url, timeout=15) as http:
        _, project, key = account(http)
        assert stack.stop("ingest") == 0
        refused = post_batch(http, key, logs(20, "refused"))
        assert refused.status_code == 503, refused.text
        assert "ingest daemon" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) > 0
        stack.start("ingest")
        retried = logs(20, "after")
        _until(lambda: post_batch(http, key, retried).status_code == 202,
               "ingest answers again")
    # What was refused is not stored, what was accepted is, once (the retry sent the same ids).
    sent = {r["log_id"] for r in retried}
    wait_stored(url, project["id"], len(sent))
    assert stored_ids(url, project["id"]) == sent
