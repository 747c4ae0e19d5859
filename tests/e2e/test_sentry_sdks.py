"""The real Sentry SDKs against a running stack: sentry-sdk (PyPI) and @sentry/node (npm).

Each client program runs as a subprocess configured with nothing but the DSN that Ledger
prints; its events must land in the logs table with their frames, tags, user, release and
environment, and group like any other error.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ledger.core import sentry
from tests.e2e.conftest import SharedStack, shared_test, wait_queue_drained
from tests.stack import Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "sentry_node"


@dataclass
class DsnStack:
    """The module's stack and the DSN of a project of this test's own."""

    stack: Stack
    dsn: str
    project_id: str


@pytest.fixture
def dsn_stack(shared_stack: SharedStack, request: pytest.FixtureRequest) -> DsnStack:
    shared_test(shared_stack, request)
    key, project = shared_stack.new_project()
    host = shared_stack.stack.url.removeprefix("http://")
    return DsnStack(shared_stack.stack, sentry.dsn(key, host, project.dsn_id), str(project.id))


def run_client(*command: str, cwd: Path = ROOT) -> list[str]:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout.split()


def rows_for(target: DsnStack, count: int, deadline_seconds: float = 20.0,
             ) -> list[dict[str, Any]]:
    """The project's logs, polled until ``count`` are stored (or the deadline passes)."""
    deadline = time.monotonic() + deadline_seconds
    with psycopg.connect(str(target.stack.settings.logs_database_url), autocommit=True,
                         row_factory=dict_row) as conn:
        while True:
            rows = conn.execute("SELECT * FROM logs WHERE project_id = %s ORDER BY timestamp",
                                (target.project_id,)).fetchall()
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)


def by_id(rows: list[dict[str, Any]], event_id: str) -> dict[str, Any]:
    wanted = uuid.UUID(event_id)
    for row in rows:
        if row["id"] == wanted:
            return row
    raise AssertionError(f"event {event_id} not stored; have {[r['id'] for r in rows]}")


def python() -> str:
    return sys.executable


def test_plain_script_events_land_with_frames_tags_user_release(
        dsn_stack: DsnStack) -> None:
    dsn = dsn_stack.dsn
    chained, message_id, fingerprinted = run_client(python(), "-m", "tests.sentry_python.plain",
                                                    dsn)
    rows = rows_for(dsn_stack, 3)
    assert len(rows) == 3
    error = by_id(rows, chained)
    assert error["log_type"] == "exception" and error["level"] == "error"
    assert error["error_type"] == "TypeError"
    assert error["error_message"] == "no price for sku-9"
    assert (error["release"], error["environment"], error["platform"]) == (
        "shop@1.2.3", "staging", "python")
    trace = error["stack_trace"]
    # The whole chain, the cause first, as Python prints it, with the in-app frames (the SDK
    # does not say whether the cause came by `from`, so the generic separator is used).
    assert trace.index("KeyError: 'price:sku-9'") < trace.index(
        "During handling of the above exception") < trace.index("TypeError: no price")
    assert 'tests/sentry_python/shop.py", line 8, in read_cache' in trace
    assert "return cache[key]" in trace
    attributes = error["attributes"]
    assert attributes["tags"]["region"] == "eu-west"
    assert attributes["user"] == {"id": "42", "email": "ada@example.com",
                                  "ip_address": "198.51.100.4"}
    assert attributes["server_name"] == "web-1"
    assert attributes["sdk"]["name"].startswith("sentry.python")
    assert error["sdk_version"] == attributes["sdk"]["version"]
    assert any(c.get("message") == "added sku-9" for c in attributes["breadcrumbs"])
    assert error["error_fingerprint"]

    message = by_id(rows, message_id)
    assert (message["log_type"], message["level"], message["message"]) == (
        "logger", "warning", "stock is low")

    custom = by_id(rows, fingerprinted)
    assert custom["client_fingerprint"] == ["{{ default }}", "pricing"]
    assert custom["error_fingerprint"] != error["error_fingerprint"]


def test_sdk_retry_of_one_event_is_stored_once(dsn_stack: DsnStack) -> None:
    """The event id is the idempotency key: a resent envelope adds nothing.

    (Sentry SDKs always send the event's timestamp, which is part of the stored key.)
    """
    import httpx

    stack, dsn = dsn_stack.stack, dsn_stack.dsn
    key = sentry.key_from_dsn(dsn)
    number = dsn.rsplit("/", 1)[1]
    event_id = uuid.uuid4().hex
    event = (b'{"event_id":"%s","timestamp":%.6f,"level":"error","platform":"python",'
             b'"exception":{"values":[{"type":"ValueError","value":"boom"}]}}') % (
                 event_id.encode(), time.time())
    envelope = b'{"event_id":"%s"}\n{"type":"event"}\n%s\n' % (event_id.encode(), event)
    for _ in range(3):
        answer = httpx.post(f"{stack.url}/api/{number}/envelope/", content=envelope,
                            headers={"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key}"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"id": event_id}
    rows_for(dsn_stack, 1)
    # Once nothing is queued, every copy that was accepted has reached the writers.
    wait_queue_drained(stack.url, key)
    rows = rows_for(dsn_stack, 1, deadline_seconds=0)
    assert [r["id"] for r in rows] == [uuid.UUID(event_id)]


def test_fastapi_integration_event_has_the_request_without_secrets(
        dsn_stack: DsnStack) -> None:
    dsn = dsn_stack.dsn
    assert run_client(python(), "-m", "tests.sentry_python.fastapi_app", dsn) == ["500"]
    rows = rows_for(dsn_stack, 1)
    assert len(rows) == 1
    error = rows[0]
    assert error["error_type"] == "TypeError"
    assert (error["release"], error["environment"]) == ("api@2.0.0", "production")
    assert "in read_cache" in error["stack_trace"] and "in price" in error["stack_trace"]
    attributes = error["attributes"]
    assert attributes["tags"]["endpoint"] == "prices"
    assert attributes["user"]["id"] == "u-7"
    assert attributes["transaction"] == "/prices/{sku}"
    request = attributes["request"]
    assert request["method"] == "GET"
    assert request["url"].endswith("/prices/sku-1")
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["x-request-id"] == "r-1"
    assert "authorization" not in headers and "cookie" not in headers
    # The frames' context lines quote the app's source, where the test's own cookie literal is
    # written: only what is not source code must be free of it.
    outside_source = {k: v for k, v in attributes.items() if k != "$exceptions"}
    assert "hunter2" not in str(outside_source) and "secret-token" not in str(outside_source)


def test_logging_integration_error_records_become_logs(
        dsn_stack: DsnStack) -> None:
    dsn = dsn_stack.dsn
    run_client(python(), "-m", "tests.sentry_python.logging_app", dsn)
    rows = rows_for(dsn_stack, 2)
    assert len(rows) == 2
    record, exception = rows
    assert (record["log_type"], record["level"]) == ("logger", "error")
    assert record["message"] == "payment p-17 failed with code 402"
    assert record["attributes"]["logger"] == "payments"
    assert record["attributes"]["tags"]["queue"] == "payments"
    assert record["error_fingerprint"]
    assert exception["log_type"] == "exception"
    assert exception["message"] == "pricing failed"
    assert exception["error_type"] == "TypeError"
    assert exception["release"] == "worker@0.9.1"
    assert exception["attributes"]["user"] == {"id": "worker-3"}
    assert any(c.get("message") == "starting"
               for c in exception["attributes"].get("breadcrumbs", []))


def node_modules() -> Path:
    """``tests/sentry_node/node_modules``, installed from the lock file when missing."""
    installed = NODE_DIR / "node_modules" / "@sentry" / "node"
    if not installed.exists():
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed for the @sentry/node test (see .ci/run)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       capture_output=True, timeout=300)
    return installed


def test_sentry_node_events_land_with_frames_tags_user_release(
        dsn_stack: DsnStack) -> None:
    node_modules()
    node = shutil.which("node")
    assert node is not None, "node is needed for the @sentry/node test (see .ci/run)"
    dsn = dsn_stack.dsn
    error_id, message_id = run_client(node, "send.js", dsn, cwd=NODE_DIR)
    rows = rows_for(dsn_stack, 2)
    assert len(rows) == 2
    error = by_id(rows, error_id)
    assert error["log_type"] == "exception"
    assert (error["error_type"], error["error_message"]) == ("TypeError",
                                                            "card declined for o-1")
    assert (error["release"], error["environment"], error["platform"]) == (
        "web@3.1.4", "staging", "node")
    trace = error["stack_trace"]
    # V8's form: the raised error and its frames (crash first), then the cause.
    assert trace.startswith("TypeError: card declined for o-1\n    at chargeCard (")
    assert "send.js:" in trace
    assert trace.index("Caused by: RangeError: cache miss for card:o-1") < trace.index(
        "at readCache (")
    attributes = error["attributes"]
    assert attributes["tags"]["region"] == "us-east"
    assert attributes["user"] == {"id": "7", "email": "grace@example.com"}
    assert attributes["server_name"] == "node-1"
    assert attributes["sdk"]["name"] == "sentry.javascript.node"
    message = by_id(rows, message_id)
    assert (message["level"], message["message"]) == ("warning", "queue is slow")
