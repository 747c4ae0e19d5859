"""Real receivers for alert tests: an HTTP server that records requests, an SMTP server.

``WebhookReceiver`` runs a threading HTTP server on a fixed port that can be stopped (the port
then refuses connections: the receiver is down) and started again on the same port.
``SmtpReceiver`` is aiosmtpd with STARTTLS (a self-signed certificate made by openssl) and
LOGIN/PLAIN authentication, recording every message it accepted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import ssl
import subprocess
import threading
import time
import warnings
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from tests.ports import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # time.perf_counter() when it arrived (for bench/bench_alerts.py)

    def json(self) -> Any:
        return orjson.loads(self.body)

    def signed_by(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("x-ledger-signature", ""))


class WebhookReceiver:
    """Records every POST; answers ``status`` (settable) with a small JSON body."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.requests: list[Received] = []
        self.status = 200
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                at = time.perf_counter()
                with receiver._lock:
                    receiver.requests.append(Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body, at))
                    status = receiver.status
                answer = orjson.dumps({"received": True})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def alerts(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.received()]

    def wait_for(self, count: int, seconds: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + seconds
        while len(self.received()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received()


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "smtp.crt", folder / "smtp.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class SmtpReceiver:
    """aiosmtpd on localhost: TLS required before AUTH, one user, messages recorded.

    ``implicit_tls``: TLS from the first byte (port 465's way, security "tls"); otherwise a
    plain greeting and STARTTLS before anything else (port 587's way).
    """

    def __init__(self, folder: Path, *, user: str = "alerts", password: str = "smtp-pass",
                 implicit_tls: bool = False) -> None:
        self.port = free_port()
        self.user, self.password = user, password
        self.implicit_tls = implicit_tls
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []
        cert, key = self_signed_cert(folder)
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(str(cert), str(key))
        self._controller: Any = None
        self._opened: list[asyncio.BaseTransport] = []

    def start(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

        receiver = self
        # aiosmtpd logs every connection at INFO from its own thread, after the test that
        # caused it may have ended: uncaptured there, it lands in the run's output as noise.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        # aiosmtpd itself still sets its deprecated Session.login_data on every login.
        warnings.filterwarnings("ignore", message="Session.login_data is deprecated",
                                category=DeprecationWarning)
        # ... and warns of AUTH without STARTTLS even when the socket is TLS from the start.
        warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS",
                                category=UserWarning)

        class Handler:
            async def handle_DATA(self, server: Any, session: Any,
                                  envelope: Any) -> str:
                parsed = message_from_bytes(envelope.content, policy=policy.default)
                assert isinstance(parsed, EmailMessage)
                receiver.messages.append(parsed)
                return "250 OK stored"

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                         data: Any) -> AuthResult:
            ok = (isinstance(data, LoginPassword) and data.login.decode() == receiver.user
                  and data.password.decode() == receiver.password)
            if ok:
                receiver.logins.append(mechanism)
            return AuthResult(success=ok)

        opened = self._opened

        class TrackedSMTP(SMTP):
            # Every transport the server was handed (the plain one and, after STARTTLS, the
            # TLS one), so stop() can close them: aiosmtpd's own stop() only cancels tasks,
            # and a client still connected then leaves a socket for the garbage collector,
            # whose ResourceWarning lands in whichever test happens to run next.
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                opened.append(transport)
                super().connection_made(transport)

        class TrackedController(Controller):
            def factory(self) -> SMTP:
                return TrackedSMTP(self.handler, **self.SMTP_kwargs)

        tls: dict[str, Any] = (
            # aiosmtpd counts only STARTTLS as TLS for its AUTH check: over implicit TLS the
            # whole session is encrypted already, so AUTH is allowed from the start.
            {"ssl_context": self._context, "auth_require_tls": False} if self.implicit_tls
            else {"tls_context": self._context, "require_starttls": True})
        self._controller = TrackedController(
            Handler(), hostname="127.0.0.1", port=self.port, authenticator=authenticate,
            auth_required=True, **tls)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is None:
            return

        async def close_connections() -> None:
            for transport in self._opened:
                if isinstance(transport, asyncio.Transport):
                    transport.abort()
            await asyncio.sleep(0.05)  # the aborts close their sockets on the next turns

        asyncio.run_coroutine_threadsafe(close_connections(), self._controller.loop).result(10)
        self._opened.clear()
        self._controller.stop()
        self._controller = None

    def wait_for(self, count: int, seconds: float = 20.0) -> list[EmailMessage]:
        deadline = time.monotonic() + seconds
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.messages)
