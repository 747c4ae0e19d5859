"""The browser view in headless Chromium: what a user does, against a real running stack."""

from __future__ import annotations

import subprocess
import uuid

import httpx
from playwright.sync_api import Page, expect

from tests.stack import LEDGER
from tests.web.conftest import Web, emit_errors, shot, sign_in


def test_sign_in_and_an_ingested_error_appears_live(page: Page, web: Web) -> None:
    user = web.user()
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in to Ledger")).to_be_visible()
    shot(page, "signin")
    sign_in(page, user)
    expect(page.locator(".pill[data-state=live]")).to_be_visible()
    message = f"card declined {uuid.uuid4().hex[:8]}"
    web.ingest(user, message)
    row = page.locator(".event", has_text=message)
    expect(row).to_be_visible(timeout=1000)
    expect(row.locator(".level")).to_have_text("error")
    expect(row.locator(".etype")).to_have_text("CheckoutError")
    expect(row.locator(".count")).to_have_text("\u00d71")
    web.ingest(user, message)
    expect(page.locator(".event", has_text=message).first.locator(".count")).to_have_text("\u00d72")
    shot(page, "live")

    page.get_by_role("button", name="Pause").click()
    web.ingest(user, "held while paused")
    expect(page.get_by_role("button", name="Resume (1 new)")).to_be_visible()
    assert page.get_by_text("held while paused").count() == 0
    page.keyboard.press("p")  # the key does what the button does
    expect(page.locator(".event", has_text="held while paused")).to_be_visible()


def test_an_expired_access_token_is_refreshed_and_sign_out_ends_the_session(
        page: Page, web: Web) -> None:
    user = web.user()
    sign_in(page, user)
    before = page.evaluate("JSON.parse(localStorage.getItem('ledger.session'))")
    # As if the 15 minutes had passed: the next call must refresh first.
    page.evaluate("""() => {
        const s = JSON.parse(localStorage.getItem('ledger.session'));
        s.accessExpires = Date.now() - 1000;
        localStorage.setItem('ledger.session', JSON.stringify(s));
    }""")
    page.get_by_role("link", name="Errors").click()
    expect(page.get_by_role("heading", name="Error groups")).to_be_visible()
    after = page.evaluate("JSON.parse(localStorage.getItem('ledger.session'))")
    assert after["refresh"] != before["refresh"] and after["access"] != before["access"]

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Ledger")).to_be_visible()
    assert page.evaluate("localStorage.getItem('ledger.session')") is None
    refused = httpx.get(f"{web.url}/api/v1/projects",
                        headers={"Authorization": f"Bearer {after['access']}"})
    assert refused.status_code == 401  # the session ended on the server, not only in the page
    page.goto(f"/p/{user.slug}/errors")
    expect(page.get_by_role("heading", name="Sign in to Ledger")).to_be_visible()


def test_the_page_reconnects_after_a_gateway_restart_and_shows_what_it_missed(
        page: Page, web: Web) -> None:
    user = web.user()
    sign_in(page, user)
    expect(page.locator(".pill[data-state=live]")).to_be_visible()
    web.ingest(user, "before the restart")
    expect(page.get_by_text("before the restart")).to_be_visible()

    web.stack.kill("gateway")
    expect(page.locator(".pill[data-state=reconnecting]")).to_be_visible(timeout=10_000)
    # While this gateway is down another one takes the application's errors.
    spare = web.spare_gateway()
    try:
        for n in range(3):
            web.ingest(user, f"missed while down {n}", url=spare.url)
    finally:
        spare.stop()
    web.stack.start("gateway")

    for n in range(3):
        expect(page.get_by_text(f"missed while down {n}")).to_be_visible(timeout=20_000)
    expect(page.locator(".pill[data-state=live]")).to_be_visible()
    assert page.locator(".event", has_text="before the restart").count() == 1
    web.ingest(user, "after the restart")
    expect(page.get_by_text("after the restart")).to_be_visible()
    messages = page.locator(".event .msg").all_inner_texts()
    assert messages[:5] == ["after the restart", "missed while down 2", "missed while down 1",
                            "missed while down 0", "before the restart"]


def test_events_lost_beyond_the_servers_buffer_are_announced(page: Page, web: Web) -> None:
    user = web.user()
    sign_in(page, user)
    expect(page.locator(".pill[data-state=live]")).to_be_visible()
    web.ingest(user, "the last one seen")
    expect(page.get_by_text("the last one seen")).to_be_visible()
    web.stack.kill("gateway")
    # More errors than the capped stream keeps (about 1 000) arrive while the page is away.
    emit_errors(web, user, 1500)
    web.stack.start("gateway")
    expect(page.locator(".notice-warn")).to_contain_text("lost", timeout=20_000)
    expect(page.locator(".pill[data-state=live]")).to_be_visible()
    expect(page.get_by_text("flood 1499")).to_be_visible()
    shot(page, "live-skipped")


def test_resolving_a_group_shows_in_ledger_errors_list(page: Page, web: Web) -> None:
    user = web.user()
    web.ingest(user, "tax service timed out")
    web.wait_for_group(user)
    sign_in(page, user)
    page.get_by_role("link", name="Errors").click()
    expect(page.get_by_role("heading", name="Error groups")).to_be_visible()
    expect(page.locator(".group svg.spark")).to_have_count(1)
    shot(page, "errors")
    page.locator(".group", has_text="tax service timed out").click()
    expect(page.locator(".status")).to_have_text("unresolved")
    expect(page.locator(".trace .frame.in-app")).to_have_count(1)
    expect(page.locator(".trace .frame.in-app")).to_contain_text("/srv/shop/cart.py")
    expect(page.locator(".tags li", has_text="production")).to_be_visible()
    expect(page.locator(".tags li", has_text="1.4.0")).to_be_visible()
    shot(page, "group")
    group_url = page.url
    page.get_by_label("Resolved in release").fill("1.4.1")
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator(".status")).to_have_text("resolved")
    expect(page.get_by_text("resolved in")).to_be_visible()

    listed = subprocess.run(
        [*LEDGER, "errors", "list", "--status", "resolved", "--json"], capture_output=True,
        text=True, timeout=60, check=False,
        env={**web.stack.env(), "LEDGER_URL": web.url, "LEDGER_API_KEY": user.key})
    assert listed.returncode == 0, listed.stderr
    assert "tax service timed out" in listed.stdout and "1.4.1" in listed.stdout

    page.goto(group_url)  # the group's own URL, opened afresh
    page.get_by_role("button", name="Reopen").click()
    expect(page.locator(".status")).to_have_text("unresolved")


def test_search_finds_a_log_and_opens_it(page: Page, web: Web) -> None:
    user = web.user()
    word = f"zebra{uuid.uuid4().hex[:6]}"
    web.ingest(user, f"payment accepted for {word}", level="info", log_type="logger",
               error_type=None, error_message=None, stack_trace=None)
    web.ingest(user, "an unrelated line", level="info", log_type="logger", error_type=None,
               error_message=None, stack_trace=None)
    web.wait_for_logs(user, 2)
    sign_in(page, user)
    page.get_by_role("link", name="Logs").click()
    expect(page.locator(".log")).to_have_count(2)
    page.keyboard.press("/")
    expect(page.get_by_label("Search", exact=True)).to_be_focused()
    page.keyboard.type(word)
    page.keyboard.press("Enter")
    expect(page.locator(".log")).to_have_count(1)
    assert f"search={word}" in page.url
    shot(page, "logs")
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    expect(page.locator(".log").first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_text(f"payment accepted for {word}")).to_be_visible()
    expect(page.locator(".pairs").first).to_contain_text("logger")
    shot(page, "log")


def test_another_accounts_project_is_a_404_page_without_its_data(page: Page, web: Web) -> None:
    mine, theirs = web.user(), web.user("their-secret-shop")
    web.ingest(theirs, "their secret failure")
    their_group = web.wait_for_group(theirs)["id"]
    sign_in(page, mine)
    for path in ("/p/their-secret-shop/errors", f"/p/their-secret-shop/errors/{their_group}",
                 f"/p/{mine.slug}/errors/{their_group}", "/p/their-secret-shop/live"):
        page.goto(path)
        expect(page.get_by_role("heading", name="404 — not found")).to_be_visible()
        assert "their secret failure" not in page.content()
    shot(page, "not-found")


def test_overview_says_when_metrics_are_not_available(page: Page, web: Web) -> None:
    user = web.user()
    sign_in(page, user)
    page.get_by_role("link", name="Overview").click()
    answer = httpx.get(f"{web.url}/api/v1/metrics/error-rate",
                       headers={"Authorization": f"Bearer {user.tokens['access_token']}"})
    if answer.status_code == 404:
        expect(page.get_by_text("not available")).to_be_visible()
    else:
        expect(page.locator(".chart")).to_have_count(2)
    shot(page, "overview")


def test_keyboard_a_phone_sized_screen_and_a_wide_dark_one(page: Page, web: Web) -> None:
    user = web.user()
    for n in range(3):
        web.ingest(user, f"phone error {n}")
    web.ingest(user, "just info", level="info", log_type="logger", error_type=None,
               error_message=None, stack_trace=None)
    web.wait_for_logs(user, 4)
    web.project(user, f"{user.slug}-b")
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, user)
    page.get_by_label("Project").select_option(f"{user.slug}-b")
    page.wait_for_url(f"**/p/{user.slug}-b/live")
    expect(page.get_by_text("No errors yet")).to_be_visible()
    page.goto(f"/p/{user.slug}/logs")
    expect(page.locator(".log")).to_have_count(4)
    page.keyboard.press("j")
    expect(page.locator(".log").nth(0)).to_be_focused()  # the info line, the newest
    page.keyboard.press("e")
    expect(page.locator(".log").nth(1)).to_be_focused()  # the next error
    page.keyboard.press("k")
    expect(page.locator(".log").nth(0)).to_be_focused()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide at 390 px"
    page.goto(f"/p/{user.slug}/errors")
    expect(page.locator(".group")).to_have_count(1)
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    expect(page.locator(".trace")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # The same page on a 1920 px screen with the system in dark mode: dark colours that read
    # (text far from its background), the content centred at its widest, nothing overflowing.
    page.emulate_media(color_scheme="dark")
    page.set_viewport_size({"width": 1920, "height": 1080})
    expect(page.locator(".trace")).to_be_visible()
    # Why grouped: the exception chain by type and frames, not an object's default text.
    chain = page.locator(".pairs").get_by_text("CheckoutError at shop/cart:checkout")
    expect(chain).to_be_visible()
    assert "[object Object]" not in page.locator("main").inner_text()
    colours = page.evaluate("""() => {
        const lum = (c) => { const [r, g, b] = c.match(/\\d+/g).map(Number);
                             return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255; };
        const html = getComputedStyle(document.documentElement);
        return [lum(html.backgroundColor), lum(html.color)]; }""")
    background, text = colours
    assert background < 0.15 and text > 0.75, colours
    box = page.locator("main").bounding_box()
    assert box is not None and box["width"] == 1600 and abs(box["x"] - 160) <= 1, box
    assert page.evaluate("document.documentElement.scrollWidth") <= 1920
    shot(page, "wide-dark")
