"""Reading back end to end: real `ledger serve auth|ingest|query|gateway` processes.

Logs go in through the REST ingest API, are written by the ingest writers, and come back out
through the query daemon: as pages, as error groups built by the writers, and through the
`ledger logs --follow` and `ledger errors` commands run as real processes.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ledger.config import Settings
from tests.stack import LEDGER, Stack

pytestmark = pytest.mark.e2e

TRACE = ('Traceback (most recent call last):\n'
         '  File "/srv/app/shop/views.py", line 41, in checkout\n'
         '    total = cart.total()\n'
         '  File "/srv/app/shop/cart.py", line {line}, in total\n'
         '    return sum(prices[sku] for sku in self.items)\n'
         "KeyError: '{sku}'")


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    with Stack(settings, tmp_path) as running:
        running.start("auth", "ingest", "query", "gateway")
        yield running


def account(http: httpx.Client) -> tuple[dict[str, str], dict[str, Any], str]:
    """A new account, its project and an ingest+read key."""
    tokens = http.post("/api/v1/accounts/register", json={
        "email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse battery"})
    assert tokens.status_code == 201, tokens.text
    bearer = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    slug = f"e2e-{uuid.uuid4().hex[:6]}"
    project = http.post("/api/v1/projects", headers=bearer, json={"name": "E2E", "slug": slug})
    assert project.status_code == 201, project.text
    key = http.post(f"/api/v1/projects/{slug}/api-keys", headers=bearer,
                    json={"scopes": ["ingest", "read", "triage"]})
    assert key.status_code == 201, key.text
    return bearer, project.json(), key.json()["full_key"]


def poll(check: Any, seconds: float = 20.0) -> Any:
    """Call ``check()`` until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


class LineReader:
    """Lines of a subprocess's stdout, read in a thread so that waiting can have a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: queue.Queue[bytes] = queue.Queue()
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(target=lambda: [self.lines.put(line) for line in stream],
                         daemon=True).start()

    def until(self, predicate: Any, seconds: float = 20.0) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            seen.append(orjson.loads(line))
            if predicate(seen):
                return seen
        raise AssertionError(f"not seen in {seconds}s; got {seen}")


def test_logs_and_errors_read_back_through_every_daemon(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        bearer, project, key = account(http)
        headers = {"X-API-Key": key}
        now = datetime.now(UTC)
        logs: list[dict[str, Any]] = [
            {"timestamp": (now - timedelta(seconds=60 - i)).isoformat(), "level": "info",
             "message": f"request {i} served", "environment": "prod", "release": "1.0"}
            for i in range(20)]
        # Two errors: the same stack (different skus and line numbers) and another one.
        logs += [{"timestamp": (now - timedelta(seconds=30 - i)).isoformat(), "level": "error",
                  "log_type": "exception", "error_type": "KeyError", "error_message": f"'{sku}'",
                  "stack_trace": TRACE.format(line=10 + i, sku=sku), "release": "1.0",
                  "message": "checkout failed"}
                 for i, sku in enumerate(["A-1", "B-22", "C-333"])]
        logs.append({"timestamp": now.isoformat(), "level": "critical", "message":
                     "disk 97% full on /dev/sda1", "log_type": "logger", "release": "1.0"})
        accepted = http.post("/api/v1/ingest/batch", headers=headers, json={"logs": logs})
        assert accepted.status_code == 202, accepted.text

        page = poll(lambda: (p := http.get("/api/v1/logs", headers=headers).json())["total"]
                    == len(logs) and p)
        assert page, "the logs were not stored in time"
        assert page["logs"][0]["message"] == "disk 97% full on /dev/sda1"
        errors = http.get("/api/v1/errors/list", headers=headers).json()
        assert errors["total"] == 4
        found = http.get("/api/v1/logs", headers=headers, params={"search": "97%"}).json()
        assert [r["level"] for r in found["logs"]] == ["critical"]

        groups = poll(lambda: len((g := http.get("/api/v1/error-groups", headers=headers,
                                                  params={"sort": "count"}).json())
                                  ["error_groups"]) == 2 and g)
        assert groups, "the error groups were not written in time"
        top = groups["error_groups"][0]
        assert top["event_count"] == 3 and top["error_type"] == "KeyError"
        detail = http.get(f"/api/v1/error-groups/{top['id']}", headers=headers).json()
        assert "shop/cart:total" in detail["why_grouped"] and "line numbers" in detail[
            "why_grouped"]
        assert detail["sample_log"]["error_type"] == "KeyError"
        events = http.get("/api/v1/logs", headers=headers,
                          params={"error_fingerprint": detail["fingerprint"]}).json()
        assert events["total"] == 3

        # Another account sees none of it.
        other_bearer, _, other_key = account(http)
        for creds in ({"X-API-Key": other_key}, other_bearer):
            for path in (f"/api/v1/error-groups/{top['id']}",
                         f"/api/v1/logs/{page['logs'][0]['id']}",
                         f"/api/v1/logs?project_id={project['id']}"):
                assert http.get(path, headers=creds).status_code == 404, path
        assert http.get("/api/v1/logs", headers=bearer).json()["total"] == len(logs)

        env = stack.env() | {"LEDGER_URL": stack.url, "LEDGER_API_KEY": key,
                             "LEDGER_DATA_DIR": str(stack.workdir / "cli")}
        resolved = subprocess.run([*LEDGER, "errors", "resolve", top["id"], "--release", "1.0"],
                                  env=env, capture_output=True, timeout=30)
        assert resolved.returncode == 0, resolved.stderr
        after = http.get(f"/api/v1/error-groups/{top['id']}", headers=headers).json()
        assert after["status"] == "resolved" and after["resolved_in_release"] == "1.0"

        with subprocess.Popen(
            [*LEDGER, "logs", "--follow", "--json", "--interval", "0.3", "--limit", "5"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        ) as follower:
            try:
                reader = LineReader(follower)
                first = reader.until(lambda seen: len(seen) >= 5)
                assert first[-1]["message"] == "disk 97% full on /dev/sda1"  # oldest first
                for i in range(3):
                    new = {"timestamp": datetime.now(UTC).isoformat(), "level": "info",
                           "message": f"followed {i}"}
                    assert http.post("/api/v1/ingest/single", headers=headers,
                                     json=new).status_code == 202
                seen = reader.until(
                    lambda s: sum(r["message"].startswith("followed") for r in s) >= 3)
                followed = [r["message"] for r in seen if r["message"].startswith("followed")]
                assert followed == ["followed 0", "followed 1", "followed 2"]
            finally:
                follower.send_signal(signal.SIGINT)
                try:
                    code = follower.wait(10)
                except subprocess.TimeoutExpired:
                    # Popen's __exit__ would wait for ever; a SIGINT the run inherited as
                    # ignored (a shell's `cmd &`) is the usual cause.
                    follower.kill()
                    raise
                assert code == 130
