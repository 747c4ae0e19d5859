"""ledger.sdk without a stack: its import weight, encoding, the logging mapping, and how the
flusher reacts to each answer of a scripted HTTP server (413 split, 400 drop, 503 retry)."""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ledger.sdk import Ledger, LedgerHandler
from ledger.sdk.asgi import UNMATCHED, route_template
from ledger.sdk.transport import _retry_after, encode_batch


def test_importing_the_sdk_pulls_in_no_framework_or_http_library() -> None:
    code = ("import sys, ledger.sdk\n"
            "heavy = {'fastapi', 'starlette', 'flask', 'werkzeug', 'httpx', 'requests', 'grpc',"
            " 'redis', 'psycopg', 'orjson', 'pydantic', 'opentelemetry'}\n"
            "print(sorted(heavy & {n.split('.')[0] for n in sys.modules}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert _retry_after("7") == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (_retry_after(later) or 0) <= 30
    assert _retry_after("soon") is None
    assert _retry_after(None) is None


def test_a_log_whose_attributes_cannot_be_encoded_keeps_its_batch() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    body = json.loads(encode_batch([
        {"message": "ok", "attributes": {"when": datetime(2026, 1, 1, tzinfo=UTC)}},
        {"message": "bad", "attributes": cyclic}]))
    first, second = body["logs"]
    assert first["attributes"]["when"] == "2026-01-01 00:00:00+00:00"
    assert second["message"] == "bad"
    assert "self" in second["attributes"]["unencodable"]


def test_logging_records_map_to_ledger_logs() -> None:
    handler = LedgerHandler(Ledger(api_key="ledger_x_y", url="http://127.0.0.1:9"))
    record = logging.LogRecord("shop", 25, "/app/shop.py", 7, "sold %d", (3,), None)
    record.order_id = 9
    out = handler.to_record(record)
    assert (out["level"], out["message"], out["timestamp"]) == ("info", "sold 3",
                                                               record.created)
    assert out["attributes"]["order_id"] == 9
    assert out["attributes"]["logger"] == "shop"
    assert out["attributes"]["line"] == 7
    handler.client.close(0)


def test_route_templates_include_the_mount_prefix() -> None:
    class Route:
        path = "/items/{id}"

    assert route_template({"route": Route(), "root_path": "/api"}, "") == "/api/items/{id}"
    assert route_template({"route": Route(), "root_path": "/proxy"}, "/proxy") == "/items/{id}"
    assert route_template({}, "") == UNMATCHED


class _Scripted:
    """A real HTTP server answering each POST with the next status of ``script`` (then 202),
    recording how many logs each request carried."""

    def __init__(self, script: list[tuple[int, dict[str, str]]]) -> None:
        self.script = list(script)
        self.batches: list[int] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                server.batches.append(len(json.loads(raw)["logs"]))
                status, headers = server.script.pop(0) if server.script else (202, {})
                payload = json.dumps({"accepted": server.batches[-1], "rejected": 0,
                                      "errors": []} if status == 202
                                     else {"detail": "scripted"}).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def scripted(request: pytest.FixtureRequest) -> Iterator[_Scripted]:
    server = _Scripted(request.param)
    yield server
    server.http.shutdown()
    server.http.server_close()


@pytest.mark.parametrize("scripted", [[(413, {}), (413, {})]], indirect=True)
def test_a_batch_too_large_is_split_until_it_fits(scripted: _Scripted) -> None:
    client = Ledger(api_key="ledger_x_y", url=scripted.url, flush_interval=3600)
    for i in range(8):
        client.info(f"log {i}")
    assert client.close(10)
    assert scripted.batches == [8, 4, 2, 2, 4]
    assert (client.sent, client.dropped, client.rejected) == (8, 0, 0)


@pytest.mark.parametrize("scripted", [[(400, {})]], indirect=True)
def test_a_batch_refused_as_invalid_is_dropped_not_retried(scripted: _Scripted) -> None:
    client = Ledger(api_key="ledger_x_y", url=scripted.url, flush_interval=3600)
    for i in range(3):
        client.info(f"log {i}")
    assert client.close(10)
    assert scripted.batches == [3]
    assert (client.sent, client.rejected) == (0, 3)


@pytest.mark.parametrize("scripted", [[(503, {"Retry-After": "0"}), (500, {})]],
                         indirect=True)
def test_server_errors_are_retried_with_the_same_batch(scripted: _Scripted) -> None:
    client = Ledger(api_key="ledger_x_y", url=scripted.url, flush_interval=3600,
                    max_backoff=0.1)
    for i in range(5):
        client.info(f"log {i}")
    assert client.close(10)
    assert scripted.batches == [5, 5, 5]
    assert client.sent == 5


def test_nothing_raises_into_the_application() -> None:
    client = Ledger(api_key="ledger_x_y", url="http://127.0.0.1:9", max_buffer=1)

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    client.exception(Unprintable())
    client.endpoint("GET", "/x", "not a number", 1.0)  # type: ignore[arg-type]
    client.info("over the buffer")
    client.exception()  # nothing being handled: nothing sent
    assert client.dropped == 1
    client.close(0)
