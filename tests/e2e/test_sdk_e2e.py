"""ledger.sdk against a running stack (real `ledger serve auth|ingest|gateway` processes):
logs, exceptions, endpoint logs from real FastAPI and Flask apps, retries, outages, drops."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from ledger.sdk import Ledger, LedgerHandler, LedgerMiddleware, LedgerWSGIMiddleware
from ledger.sdk.wsgi import capture_flask_exceptions
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e


def _client(stack: RunningStack, **options: Any) -> Ledger:
    return Ledger(api_key=stack.key, url=stack.url, **options)


def test_logs_exceptions_and_endpoints_land(running_stack: RunningStack) -> None:
    marker = uuid.uuid4().hex
    client = _client(running_stack, environment="test", release="1.4.0")
    client.info(f"{marker} order placed", order_id=42, items=["a", "b"])
    client.warning(f"{marker} slow")
    try:
        try:
            {}["sku"]
        except KeyError as cause:
            raise ValueError(f"{marker} no price") from cause
    except ValueError:
        client.exception(user="ana")
    client.endpoint("GET", "/orders/{id}", 200, 12.5, marker=marker)
    assert client.close()
    assert client.sent == 4 and client.dropped == 0

    rows = running_stack.rows(
        "position(%s in message) > 0 OR attributes->>'marker' = %s", (marker, marker), 4)
    by_type = {(row["log_type"], row["level"]): row for row in rows}
    assert len(rows) == 4
    info = by_type[("logger", "info")]
    assert info["attributes"] == {"order_id": 42, "items": ["a", "b"]}
    assert (info["environment"], info["release"], info["platform"]) == ("test", "1.4.0",
                                                                      "python")
    assert ("logger", "warning") in by_type
    failure = by_type[("exception", "error")]
    assert failure["error_type"] == "ValueError"
    assert failure["error_message"] == f"{marker} no price"
    assert "KeyError: 'sku'" in failure["stack_trace"]
    assert "direct cause of the following exception" in failure["stack_trace"]
    assert failure["attributes"] == {"user": "ana"}
    endpoint = by_type[("endpoint", "info")]
    assert endpoint["attributes"]["endpoint"] == {"method": "GET", "path": "/orders/{id}",
                                                  "status_code": 200, "duration_ms": 12.5}


class _FlakyProxy:
    """A real HTTP server in front of the gateway. For the first ``lose`` requests it
    forwards the request (so the gateway stores it) and then answers 429 with Retry-After,
    as if the answer had been lost: the client must retry, and nothing may be stored twice."""

    def __init__(self, upstream: str, lose: int) -> None:
        self.lose = lose
        self.requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.requests += 1
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "content-encoding", "x-api-key")}
                answer = httpx.post(f"{upstream}{self.path}", content=body, headers=headers)
                if proxy.lose > 0:
                    proxy.lose -= 1
                    self.send_response(429)
                    self.send_header("Retry-After", "1")
                    payload = b'{"detail": "slow down"}'
                else:
                    self.send_response(answer.status_code)
                    payload = answer.content
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky(running_stack: RunningStack) -> Iterator[_FlakyProxy]:
    proxy = _FlakyProxy(running_stack.url, lose=1)
    yield proxy
    proxy.close()


def test_a_429_is_retried_after_retry_after_and_stored_once(
    running_stack: RunningStack, flaky: _FlakyProxy,
) -> None:
    marker = uuid.uuid4().hex
    client = Ledger(api_key=running_stack.key, url=flaky.url)
    for i in range(5):
        client.info(f"{marker} {i}")
    assert client.close(timeout=20)
    assert flaky.requests == 2  # the lost answer, then the retry
    assert client.sent == 5
    running_stack.wait_drained()
    rows = running_stack.with_marker(marker, 5, deadline_seconds=0)
    assert sorted(row["message"] for row in rows) == [f"{marker} {i}" for i in range(5)]


def test_the_server_down_for_a_while_buffers_then_delivers(running_stack: RunningStack,
                                                           ) -> None:
    marker = uuid.uuid4().hex
    running_stack.stack.kill("gateway")
    client = _client(running_stack, max_backoff=0.5)
    for i in range(30):
        client.info(f"{marker} {i}")
    assert not client.flush(timeout=1)  # nobody to send to
    assert client.sent == 0 and client.dropped == 0
    running_stack.stack.start("gateway")
    assert client.flush(timeout=30)
    assert client.sent == 30
    assert len(running_stack.with_marker(marker, 30)) == 30
    client.close()


def test_close_flushes_everything(running_stack: RunningStack) -> None:
    marker = uuid.uuid4().hex
    client = _client(running_stack, flush_interval=3600)
    for i in range(2500):
        client.debug(f"{marker} {i}", i=i)
    assert client.close(timeout=30)
    assert (client.sent, client.dropped) == (2500, 0)
    client.info("after close")  # dropped, never raised
    assert client.dropped == 1
    assert len(running_stack.with_marker(marker, 2500)) == 2500


def test_a_full_buffer_counts_what_it_drops(running_stack: RunningStack) -> None:
    marker = uuid.uuid4().hex
    client = _client(running_stack, max_buffer=10, flush_interval=3600)
    for i in range(25):
        client.info(f"{marker} {i}")
    assert client.dropped == 15
    assert client.close(timeout=20)
    assert client.sent == 10
    rows = running_stack.with_marker(marker, 10)
    assert sorted(row["message"] for row in rows) == sorted(f"{marker} {i}" for i in range(10))


def test_a_refused_key_stops_the_client_with_one_warning(
    running_stack: RunningStack, caplog: pytest.LogCaptureFixture,
) -> None:
    client = Ledger(api_key="ledger_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbb", url=running_stack.url)
    with caplog.at_level(logging.WARNING, logger="ledger.sdk"):
        client.error("one")
        assert client.flush(timeout=10)
        client.error("two")
        client.error("three")
        assert client.close()
    warnings = [r for r in caplog.records if r.name == "ledger.sdk"]
    assert len(warnings) == 1
    assert "refused the API key (401" in warnings[0].getMessage()
    assert (client.sent, client.dropped) == (0, 3)


def test_logging_handler_levels_extra_and_exc_info(running_stack: RunningStack) -> None:
    marker = uuid.uuid4().hex
    client = _client(running_stack)
    log = logging.getLogger(f"shop.{marker}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(LedgerHandler(client))
    log.debug("%s debug", marker)
    log.warning("%s stock low: %d left", marker, 3, extra={"sku": "A-1"})
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("%s division", marker)
    log.log(logging.CRITICAL + 5, "%s beyond critical", marker)
    assert client.close()

    rows = {row["message"]: row for row in running_stack.with_marker(marker, 4)}
    assert rows[f"{marker} debug"]["level"] == "debug"
    warning = rows[f"{marker} stock low: 3 left"]
    assert warning["level"] == "warning"
    assert warning["attributes"]["sku"] == "A-1"
    assert warning["attributes"]["logger"] == f"shop.{marker}"
    assert warning["attributes"]["function"] == "test_logging_handler_levels_extra_and_exc_info"
    division = rows[f"{marker} division"]
    assert (division["log_type"], division["level"], division["error_type"]) == (
        "exception", "error", "ZeroDivisionError")
    assert "1 / 0" in division["stack_trace"]
    assert rows[f"{marker} beyond critical"]["level"] == "critical"


async def test_a_fastapi_app_records_route_templates_and_exceptions(
    running_stack: RunningStack,
) -> None:
    from fastapi import FastAPI

    marker = uuid.uuid4().hex
    client = _client(running_stack, default_attributes={"marker": marker})
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    @app.post("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    app.add_middleware(LedgerMiddleware, client=client)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        assert (await http.get("/orders/42")).status_code == 200
        assert (await http.get("/orders/43")).status_code == 200
        assert (await http.post("/boom")).status_code == 500
        assert (await http.get("/nowhere/7")).status_code == 404
    assert client.close()

    rows = running_stack.rows("attributes->>'marker' = %s", (marker,), 5)
    endpoints = sorted((r["attributes"]["endpoint"]["method"], r["attributes"]["endpoint"]["path"],
                        r["attributes"]["endpoint"]["status_code"])
                       for r in rows if r["log_type"] == "endpoint")
    assert endpoints == [("GET", "/orders/{order_id}", 200), ("GET", "/orders/{order_id}", 200),
                         ("GET", "<unmatched>", 404), ("POST", "/boom", 500)]
    [failure] = [r for r in rows if r["log_type"] == "exception"]
    assert (failure["error_type"], failure["error_message"]) == ("RuntimeError", "kaboom")
    assert failure["attributes"]["route"] == "/boom"
    assert 'raise RuntimeError("kaboom")' in failure["stack_trace"]


def test_a_flask_app_records_route_templates_and_exceptions(running_stack: RunningStack,
                                                            ) -> None:
    from flask import Flask

    marker = uuid.uuid4().hex
    client = _client(running_stack, default_attributes={"marker": marker})
    app = Flask(__name__)

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    @app.get("/boom")
    def boom() -> None:
        raise LookupError("flask kaboom")

    app.wsgi_app = LedgerWSGIMiddleware(app.wsgi_app, client)  # type: ignore[method-assign]
    capture_flask_exceptions(app, client)
    http = app.test_client()
    for path, status in (("/orders/42", 200), ("/boom", 500), ("/missing", 404)):
        with http.get(path) as response:  # the server closes the body, as WSGI servers do
            assert response.status_code == status
    assert client.close()

    rows = running_stack.rows("attributes->>'marker' = %s", (marker,), 4)
    endpoints = sorted((r["attributes"]["endpoint"]["path"],
                        r["attributes"]["endpoint"]["status_code"])
                       for r in rows if r["log_type"] == "endpoint")
    assert endpoints == [("/boom", 500), ("/orders/<int:order_id>", 200), ("<unmatched>", 404)]
    [failure] = [r for r in rows if r["log_type"] == "exception"]
    assert (failure["error_type"], failure["error_message"]) == ("LookupError", "flask kaboom")
    assert failure["attributes"]["route"] == "/boom"


def test_an_uncaught_exception_is_reported_by_the_excepthook(running_stack: RunningStack,
                                                             ) -> None:
    marker = uuid.uuid4().hex
    script = textwrap.dedent(f"""
        from ledger.sdk import Ledger, install_excepthook
        install_excepthook(Ledger(api_key={running_stack.key!r}, url={running_stack.url!r}))
        def crash():
            raise RuntimeError({marker!r})
        crash()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert f"RuntimeError: {marker}" in done.stderr  # the previous hook still printed it
    [row] = running_stack.rows("error_message = %s", (marker,), 1)
    assert (row["level"], row["log_type"], row["error_type"]) == ("critical", "exception",
                                                                 "RuntimeError")
    assert row["attributes"] == {"uncaught": True}
    assert "in crash" in row["stack_trace"]


def test_exit_flushes_what_was_left(running_stack: RunningStack) -> None:
    marker = uuid.uuid4().hex
    script = textwrap.dedent(f"""
        from ledger.sdk import Ledger
        client = Ledger(api_key={running_stack.key!r}, url={running_stack.url!r},
                        flush_interval=3600)
        for i in range(7):
            client.info("{marker} " + str(i))
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert len(running_stack.with_marker(marker, 7)) == 7


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads running
def test_a_forked_child_sends_its_own_logs_and_not_its_parents(running_stack: RunningStack,
                                                               ) -> None:
    marker = uuid.uuid4().hex
    client = _client(running_stack, flush_interval=3600)
    client.info(f"{marker} parent before fork")
    pid = os.fork()
    if pid == 0:  # the child
        client.info(f"{marker} child")
        os._exit(0 if client.flush(timeout=20) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.info(f"{marker} parent after fork")
    assert client.close()
    running_stack.wait_drained()
    rows = running_stack.with_marker(marker, 3, deadline_seconds=0)
    assert sorted(row["message"] for row in rows) == sorted(
        f"{marker} {what}" for what in ("parent before fork", "child", "parent after fork"))
