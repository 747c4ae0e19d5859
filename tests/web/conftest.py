"""Browser tests: Debian's Chromium, headless, driven by Playwright, against real daemons.

The stack is ``ledger serve auth|ingest|query|gateway`` as subprocesses (``tests.stack``); the
page talks to the gateway exactly as a user's browser would. Playwright's own browser download
is not used: ``CHROMIUM`` (default ``/usr/bin/chromium``) must exist, and when it does not the
tests fail with the command that installs it (never skip). Screenshots are written to
``LEDGER_TEST_ARTIFACTS`` (default ``test-artifacts/``) under ``web/``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from ledger.config import Settings
from tests.live_support import emit_error
from tests.ports import free_port
from tests.stack import LEDGER, Stack
from tests.waiting import wait_until_blocking

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
INSTALL = "apt-get update && apt-get install -y chromium"
PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]


def artifacts() -> Path:
    base = Path(os.environ.get("LEDGER_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    path = base / "web"
    path.mkdir(parents=True, exist_ok=True)
    return path


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread
# while it is started, which would break any later test that calls asyncio.run.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: install it with `{INSTALL}`"
                    " (or set CHROMIUM to its path)", pytrace=False)
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=["--no-sandbox", "--disable-gpu"])
    yield launched
    launched.close()


@dataclass
class User:
    email: str
    tokens: dict[str, Any]
    project: dict[str, Any]
    key: str

    @property
    def slug(self) -> str:
        return str(self.project["slug"])


@dataclass
class Web:
    """A running stack and ways to act on it over REST, as an application and a user would."""

    stack: Stack

    @property
    def url(self) -> str:
        return self.stack.url

    def user(self, slug: str | None = None) -> User:
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        slug = slug or f"shop-{uuid.uuid4().hex[:6]}"
        with httpx.Client(base_url=self.url, timeout=10) as http:
            tokens = http.post("/api/v1/accounts/register", json={
                "email": email, "password": PASSWORD}).raise_for_status().json()
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            project = http.post("/api/v1/projects", headers=bearer,
                                json={"name": slug.title(), "slug": slug}).raise_for_status().json()
            key = http.post(f"/api/v1/projects/{slug}/api-keys", headers=bearer,
                            json={"name": "app"}
                            ).raise_for_status().json()["full_key"]
        return User(email, tokens, project, key)

    def ingest(self, user: User, message: str, *, url: str | None = None,
               **fields: Any) -> None:
        body = {"timestamp": datetime.now(UTC).isoformat(), "level": "error",
                "log_type": "exception", "error_type": "CheckoutError", "message": message,
                "error_message": message, "environment": "production", "release": "1.4.0",
                "attributes": {"cart": 3, "user": "u-17"},
                "stack_trace": ("Traceback (most recent call last):\n"
                                '  File "/srv/shop/cart.py", line 8, in checkout\n'
                                "    total = price(cart)\n"
                                '  File "/usr/lib/python3/dist-packages/money/core.py",'
                                " line 41, in add\n    raise CheckoutError(msg)\n"
                                f"CheckoutError: {message}"),
                **fields}
        answer = httpx.post(f"{url or self.url}/api/v1/ingest/single", json=body,
                            headers={"X-API-Key": user.key}, timeout=10)
        assert answer.status_code == 202, answer.text

    def wait_for_group(self, user: User, timeout: float = 20.0) -> dict[str, Any]:
        """The newest error group of the user's project, once the writers stored one."""
        with httpx.Client(base_url=self.url, headers={"X-API-Key": user.key}) as http:
            groups = wait_until_blocking(
                lambda: http.get("/api/v1/error-groups").raise_for_status().json()[
                    "error_groups"], "an error group is stored", timeout=timeout, interval=0.1)
        return dict(groups[0])

    def wait_for_logs(self, user: User, count: int, timeout: float = 20.0) -> None:
        """Until the writers stored ``count`` logs of the user's project."""
        with httpx.Client(base_url=self.url, headers={"X-API-Key": user.key}) as http:
            wait_until_blocking(
                lambda: http.get("/api/v1/logs").raise_for_status().json()["total"] >= count,
                f"{count} logs are stored", timeout=timeout, interval=0.1)

    def project(self, user: User, slug: str) -> None:
        """One more project of the user's account."""
        with httpx.Client(base_url=self.url, timeout=10) as http:
            http.post("/api/v1/projects", json={"name": slug.title(), "slug": slug},
                      headers={"Authorization": f"Bearer {user.tokens['access_token']}"}
                      ).raise_for_status()

    def spare_gateway(self) -> SpareGateway:
        return SpareGateway(self.stack)


class SpareGateway:
    """A second ``ledger serve gateway`` of the same stack, on a port of its own."""

    def __init__(self, stack: Stack) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = (stack.workdir / "spare-gateway.log").open("ab")
        self.proc = subprocess.Popen(
            [*LEDGER, "serve", "gateway"], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=stack.workdir,
            env={**stack.env(), "LEDGER_GATEWAY_LISTEN": f"127.0.0.1:{port}"})
        log.close()
        wait_until_blocking(self._healthy, "the spare gateway is healthy", interval=0.1)

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, "the spare gateway exited"
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


@pytest.fixture
def web(settings: Settings, tmp_path: Path) -> Iterator[Web]:
    with Stack(settings, tmp_path / "stack") as running:
        running.start("auth", "ingest", "query", "gateway")
        yield Web(running)


@pytest.fixture
def page(browser: Browser, web: Web) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=web.url)
    opened = context.new_page()
    problems: list[str] = []
    # A CSP violation or a script error is a bug even when the page still looks right.
    opened.on("console", lambda m: problems.append(m.text)
              if m.type == "error" and "Content Security Policy" in m.text else None)
    opened.on("pageerror", lambda e: problems.append(str(e)))
    opened.problems = problems  # type: ignore[attr-defined]
    yield opened
    context.close()
    assert problems == [], f"the page broke its Content-Security-Policy or threw: {problems}"


def emit_errors(web: Web, user: User, count: int) -> None:
    """``count`` errors queued straight into Redis by ingest's own producer (the same script and
    notification JSON), faster than ingesting that many over HTTP."""
    project_id = str(user.project["id"])

    async def emit() -> None:
        client = aioredis.Redis.from_url(str(web.stack.settings.redis_url))
        try:
            for n in range(count):
                await emit_error(client, project_id, message=f"flood {n}",
                                 error_message=f"flood {n}")
        finally:
            await client.aclose()

    # In a thread of its own: Playwright's sync API keeps an event loop in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, emit()).result()


def sign_in(page: Page, user: User) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/p/{user.slug}/live")


def shot(page: Page, name: str) -> Path:
    path = artifacts() / f"{name}.png"
    page.screenshot(path=str(path))
    return path
