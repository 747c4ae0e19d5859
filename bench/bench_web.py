"""The browser view (DESIGN §9, §12): ingest → rendered latency, page weight, cold load.

    .venv/bin/python bench/bench_web.py                 # own stack (embedded PG + Redis)
    .venv/bin/python bench/bench_web.py --errors 200 --loads 10 --json out.json

Headless Debian Chromium (``CHROMIUM``, default /usr/bin/chromium) driven by Playwright:

1. **ingest → rendered**: the live page is open; ``--errors`` errors are sent one by one to
   ``POST /api/v1/ingest/single``. For each, the page marks ``ledger:rendered`` in the animation
   frame after the row is inserted (i.e. just before the frame that paints it); the latency is
   that mark (``performance.timeOrigin + startTime``) minus the event's ingest time, read from
   its UUIDv7 id (stamped by ingest when it accepted the log; millisecond resolution). Both
   clocks are this machine's.
2. **page weight**: the decoded bytes of the page and every file under ``/web/`` that a cold
   load of ``/`` fetches (API answers excluded), and the same compressed as sent.
3. **cold time to interactive**: ``--loads`` loads, each in a new browser context (empty
   cache): navigation start → ``ledger:interactive`` (the first page drawn and usable), for the
   sign-in page and for the live page of a signed-in user; and → ``ledger:live`` (the stream
   connected).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from harness import import_tests, migrated_servers, percentile

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct horse battery"


@contextlib.contextmanager
def own_stack(workdir: Path) -> Iterator[str]:
    """Embedded PostgreSQL and Redis, migrations, and the four daemons the view needs."""
    import_tests()
    from tests.stack import Stack

    with migrated_servers(workdir) as settings, Stack(settings, workdir / "stack") as stack:
        stack.start("auth", "ingest", "query", "gateway")
        yield stack.url


def provision(url: str) -> tuple[dict[str, Any], str, str]:
    """A new account (its tokens), a project slug and an API key of it."""
    email, slug = f"bench-{uuid.uuid4().hex[:8]}@example.com", f"bench-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=url, timeout=10) as http:
        tokens = http.post("/api/v1/accounts/register",
                           json={"email": email, "password": PASSWORD}).raise_for_status().json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        http.post("/api/v1/projects", headers=bearer,
                  json={"name": slug, "slug": slug}).raise_for_status()
        key = http.post(f"/api/v1/projects/{slug}/api-keys", headers=bearer,
                        json={"name": "bench"}).raise_for_status().json()["full_key"]
    return tokens, slug, key


def wait_until(page: Any, expression: str, timeout: float = 60.0) -> None:
    """Poll ``expression`` in the page (``wait_for_function`` evals, which the CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true within {timeout} s: {expression}")
        time.sleep(0.02)


def session_script(tokens: dict[str, Any]) -> str:
    """Puts a signed-in session in localStorage before the page's own scripts run."""
    session = {"access": tokens["access_token"],
               "accessExpires": int(datetime.fromisoformat(tokens["access_expires_at"])
                                    .timestamp() * 1000),
               "refresh": tokens["refresh_token"], "account": tokens["account"]}
    value = orjson.dumps(orjson.dumps(session).decode()).decode()
    return f"localStorage.setItem('ledger.session', {value});"


def latency(browser: Any, url: str, tokens: dict[str, Any], slug: str, key: str,
            errors: int, gap: float) -> list[float]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=url)
    context.add_init_script(session_script(tokens))
    page = context.new_page()
    page.goto(f"/p/{slug}/live")
    page.wait_for_selector(".pill[data-state=live]")
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=10) as http:
        for n in range(errors):
            http.post("/api/v1/ingest/single", json={
                "timestamp": datetime.now(UTC).isoformat(), "level": "error",
                "log_type": "exception", "error_type": "BenchError",
                "message": f"bench error {n}", "error_message": f"bench error {n}"},
            ).raise_for_status()
            time.sleep(gap)
    wait_until(page, f"performance.getEntriesByName('ledger:rendered').length >= {errors}")
    values = page.evaluate("""performance.getEntriesByName('ledger:rendered')
        .filter((m) => m.detail && m.detail.ingested)
        .map((m) => performance.timeOrigin + m.startTime - m.detail.ingested)""")
    context.close()
    return [float(v) for v in values]


def cold_load(browser: Any, url: str, path: str, tokens: dict[str, Any] | None,
              ) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=url)
    if tokens:
        context.add_init_script(session_script(tokens))
    page = context.new_page()
    page.goto(path)
    wait_until(page, "performance.getEntriesByName('ledger:interactive').length > 0")
    if tokens:
        wait_until(page, "performance.getEntriesByName('ledger:live').length > 0")
    figures = page.evaluate("""(() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const files = performance.getEntriesByType('resource')
            .filter((r) => new URL(r.name).pathname.startsWith('/web/'));
        const mark = (name) => (performance.getEntriesByName(name)[0] || {}).startTime ?? null;
        return {
            interactive_ms: mark('ledger:interactive'), live_ms: mark('ledger:live'),
            dom_content_loaded_ms: nav.domContentLoadedEventEnd,
            bytes: nav.decodedBodySize + files.reduce((n, r) => n + r.decodedBodySize, 0),
            transferred: nav.encodedBodySize + files.reduce((n, r) => n + r.encodedBodySize, 0),
            files: files.length + 1,
        };
    })()""")
    context.close()
    return dict(figures)


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values),
            "n": len(values)}


def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    tokens, slug, key = provision(url)
    report: dict[str, Any] = {"load_average": os.getloadavg()}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        signin = [cold_load(browser, url, "/", None) for _ in range(args.loads)]
        live = [cold_load(browser, url, f"/p/{slug}/live", tokens) for _ in range(args.loads)]
        report["page_weight"] = {k: signin[0][k] for k in ("bytes", "transferred", "files")}
        report["cold_signin_interactive_ms"] = summary([f["interactive_ms"] for f in signin])
        report["cold_live_interactive_ms"] = summary([f["interactive_ms"] for f in live])
        report["cold_live_connected_ms"] = summary([f["live_ms"] for f in live])
        report["ingest_to_rendered_ms"] = summary(
            latency(browser, url, tokens, slug, key, args.errors, args.gap))
        browser.close()
    report["load_average_after"] = os.getloadavg()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="gateway of a running stack (default: start one)")
    parser.add_argument("--errors", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between errors")
    parser.add_argument("--loads", type=int, default=10, help="cold loads of each page")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.url:
        report = run(args, args.url)
    else:
        with tempfile.TemporaryDirectory(prefix="ledger-bench-web-") as tmp, \
                own_stack(Path(tmp)) as url:
            report = run(args, url)
    report["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
