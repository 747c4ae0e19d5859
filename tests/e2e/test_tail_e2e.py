"""`ledger tail` as a user runs it, in a shell pipeline, against real `ledger serve` daemons."""

from __future__ import annotations

import shlex
import subprocess
import uuid

import httpx
import orjson
import pytest
import redis

from ledger.queue import names
from tests.e2e.conftest import SharedStack, shared_test
from tests.live_support import error_body, provision
from tests.stack import LEDGER, Stack
from tests.waiting import wait_until_blocking

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(shared_stack: SharedStack, request: pytest.FixtureRequest) -> Stack:
    """The module's auth, ingest and gateway (each test provisions a project of its own)."""
    shared_test(shared_stack, request)
    return shared_stack.stack


@pytest.fixture
async def provisioned(stack: Stack) -> tuple[str, str]:
    return await provision(str(stack.settings.auth_database_url), f"pipes-{uuid.uuid4().hex[:8]}")


def pipeline(stack: Stack, key: str, *args: str) -> subprocess.Popen[bytes]:
    """``ledger tail <args> --url … --api-key … | head -1``, ledger's status kept (pipefail)."""
    command = " ".join(shlex.quote(a) for a in [*LEDGER, "tail", *args, "--url", stack.url,
                                                 "--api-key", key])
    return subprocess.Popen(["bash", "-c", f"set -o pipefail; {command} | head -1"],
                            env=stack.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_subscribed(stack: Stack, channel: str, timeout: float = 20.0) -> None:
    """Until a gateway subscribed to ``channel``: the tail is then connected."""
    client = redis.Redis.from_url(str(stack.settings.redis_url))
    try:
        wait_until_blocking(lambda: client.pubsub_numsub(channel)[0][1],
                            f"somebody subscribed to {channel}", timeout=timeout)
    finally:
        client.close()


def ingest(stack: Stack, key: str, body: dict[str, object]) -> None:
    answer = httpx.post(f"{stack.url}/api/v1/ingest/single", json=body,
                        headers={"X-API-Key": key}, timeout=5)
    assert answer.status_code == 202, answer.text


def test_tail_errors_json_into_head_prints_the_event_and_exits_cleanly(
        stack: Stack, provisioned: tuple[str, str]) -> None:
    project_id, key = provisioned
    proc = pipeline(stack, key, "--errors", "--json")
    wait_subscribed(stack, names.notifications_channel(project_id))
    ingest(stack, key, {**error_body("checkout failed"), "attributes": {"cart": 42}})
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()
    [line] = out.decode().splitlines()
    event = orjson.loads(line)
    assert (event["message"], event["project_id"], event["attributes"]) == (
        "checkout failed", project_id, {"cart": 42})
    assert event["event_id"] and event["error_fingerprint"]
    assert b"Traceback" not in err and b"Exception ignored" not in err


def test_tail_json_follows_every_level_and_since_replays(
        stack: Stack, provisioned: tuple[str, str]) -> None:
    project_id, key = provisioned
    proc = pipeline(stack, key, "--json", "--level", "info")
    wait_subscribed(stack, names.tail_channel(project_id))
    ingest(stack, key, error_body("not an info"))
    ingest(stack, key, {"timestamp": error_body("x")["timestamp"], "level": "info",
                        "message": "user signed in"})
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()
    assert orjson.loads(out)["message"] == "user signed in"

    # Errors kept by the server are replayed with --since, then it stays live.
    replay = pipeline(stack, key, "--errors", "--since", "10m")
    out, err = replay.communicate(timeout=20)
    assert replay.returncode == 0, err.decode()
    assert orjson.loads(out)["message"] == "not an info"


def test_a_wrong_key_is_one_line_on_stderr(stack: Stack) -> None:
    done = subprocess.run([*LEDGER, "tail", "--errors", "--url", stack.url, "--api-key",
                           "ledger_nosuchkey01_" + "x" * 32], env=stack.env(),
                          capture_output=True, timeout=20)
    assert done.returncode == 77
    assert done.stderr.decode().strip().startswith("error: invalid API key")
    assert len(done.stderr.decode().strip().splitlines()) == 1
