"""Sending one alert to one channel, and what the receiver answered.

* webhook: the alert's JSON as the body, ``X-Ledger-Signature: sha256=<hex HMAC-SHA256 of the
  exact body with the channel's secret>``, and ``Idempotency-Key`` (the same for every retry of
  one alert to one channel, so a receiver can drop a repeat after a lost 2xx).
* slack: an incoming-webhook body with ``text`` (the fallback) and ``blocks``.
* email: SMTP with STARTTLS or implicit TLS and an optional login; a plain-text and an HTML
  part. smtplib is blocking, so it runs in a thread.

``send`` never raises for a receiver's failure: it returns an ``Outcome`` to record.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
import orjson

from ledger.core.alerts.channels import Channel
from ledger.errors import InvalidInputError

TIMEOUT_SECONDS = 10.0
ANSWER_CHARS = 500
SIGNATURE_HEADER = "X-Ledger-Signature"


@dataclass(frozen=True)
class Outcome:
    """One attempt: ``ok`` when the receiver took it (2xx, or SMTP accepted every recipient)."""

    ok: bool
    status_code: int | None
    error: str | None
    answer: str
    duration_ms: float


def signature(secret: str, body: bytes) -> str:
    """The ``X-Ledger-Signature`` value of ``body``: receivers recompute and compare it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_body(alert: dict[str, Any]) -> dict[str, Any]:
    """Blocks for a Slack-compatible incoming webhook (also read by Mattermost, Rocket.Chat)."""
    facts = [f"*Rule:* {alert['rule']['name']} ({alert['rule']['kind']})"]
    for label, key in (("Environment", "environment"), ("Release", "release")):
        if alert.get(key):
            facts.append(f"*{label}:* {alert[key]}")
    counts = alert.get("counts") or {}
    if counts.get("events") is not None:
        facts.append(f"*Events:* {counts['events']} in {counts.get('window_minutes')} min")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert["title"][:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": alert["text"][:2900]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts[:10]]},
    ]
    if alert.get("command"):
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"`{alert['command']}`"}]})
    return {"text": f"{alert['title']}: {alert['text']}"[:3000], "blocks": blocks}


def email_message(channel: Channel, alert: dict[str, Any]) -> EmailMessage:
    """The alert as an e-mail with a plain-text and an HTML alternative."""
    lines = [alert["text"], "", f"Rule: {alert['rule']['name']} ({alert['rule']['kind']})"]
    group = alert.get("group") or {}
    for label, value in (("Environment", alert.get("environment")),
                         ("Release", alert.get("release")),
                         ("First seen", group.get("first_seen")),
                         ("Last seen", group.get("last_seen")),
                         ("Events", group.get("event_count"))):
        if value is not None:
            lines.append(f"{label}: {value}")
    if alert.get("command"):
        lines += ["", f"See it: {alert['command']}"]
    message = EmailMessage()
    message["Subject"] = f"[Ledger] {alert['title']}"[:200]
    message["From"] = channel.config["from"]
    message["To"] = ", ".join(channel.config["to"])
    message["X-Ledger-Alert-Id"] = str(alert.get("alert_id", ""))
    message.set_content("\n".join(lines))
    rows = "".join(f"<li>{html.escape(line)}</li>" for line in lines[2:] if line)
    message.add_alternative(
        f"<html><body><h2>{html.escape(alert['title'])}</h2><p>{html.escape(alert['text'])}</p>"
        f"<ul>{rows}</ul></body></html>", subtype="html")
    return message


async def send(channel: Channel, alert: dict[str, Any], idempotency_key: str, *,
               http: httpx.AsyncClient | None = None) -> Outcome:
    """Deliver ``alert`` to ``channel`` once; the outcome says what the receiver answered.

    ``http``: a client to reuse (the daemon's senders keep one, with its open connections);
    without it, one is made for this call.
    """
    started = time.perf_counter()
    if channel.kind == "email":
        try:
            answer = await asyncio.to_thread(_send_email, channel, email_message(channel, alert))
        except (OSError, smtplib.SMTPException) as exc:
            return Outcome(False, None, _describe(exc), "", _ms(started))
        return Outcome(True, None, None, answer, _ms(started))
    if channel.kind == "slack":
        body = orjson.dumps(slack_body(alert))
        headers = {"Content-Type": "application/json"}
    else:
        body = orjson.dumps(alert)
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: signature(str(channel.secret), body)}
    headers |= {"Idempotency-Key": idempotency_key, "User-Agent": "ledger-alerts"}
    try:
        if http is None:
            async with new_http_client() as own:
                response = await own.post(channel.config["url"], content=body, headers=headers)
        else:
            response = await http.post(channel.config["url"], content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Outcome(False, None, _describe(exc), "", _ms(started))
    ok = 200 <= response.status_code < 300
    error = None if ok else f"the receiver answered HTTP {response.status_code}"
    return Outcome(ok, response.status_code, error, response.text[:ANSWER_CHARS], _ms(started))


def new_http_client() -> httpx.AsyncClient:
    """The client webhooks are sent with: bounded time, never following redirects."""
    return httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:ANSWER_CHARS]


def _tls_context(channel: Channel) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not channel.config.get("tls_verify", True):
        # Only when the operator said so: a private server with a self-signed certificate.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _smtp(channel: Channel) -> smtplib.SMTP:
    """A connected, greeted, secured and logged-in SMTP session (the caller quits it)."""
    config = channel.config
    host, port, security = config["host"], int(config["port"]), config["security"]
    client: smtplib.SMTP
    if security == "tls":
        client = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_SECONDS,
                                  context=_tls_context(channel))
    else:
        client = smtplib.SMTP(host, port, timeout=TIMEOUT_SECONDS)
    try:
        client.ehlo()
        if security == "starttls":
            client.starttls(context=_tls_context(channel))
            client.ehlo()
        if config.get("username"):
            client.login(config["username"], str(channel.secret or ""))
    except BaseException:
        client.close()
        raise
    return client


def _send_email(channel: Channel, message: EmailMessage) -> str:
    client = _smtp(channel)
    try:
        refused = client.send_message(message)
        code, text = client.noop()
    finally:
        client.quit()
    if refused:
        raise smtplib.SMTPRecipientsRefused(refused)
    return f"{code} {text.decode(errors='replace')}"[:ANSWER_CHARS]


def _check_email(channel: Channel) -> None:
    _smtp(channel).quit()


async def check_reachable(channel: Channel) -> None:
    """For a new e-mail channel: connect, secure and log in, or ``InvalidInputError``."""
    if channel.kind != "email":
        return
    try:
        await asyncio.to_thread(_check_email, channel)
    except (OSError, smtplib.SMTPException) as exc:
        raise InvalidInputError(
            f"cannot use SMTP server {channel.config['host']}:{channel.config['port']}"
            f" ({_describe(exc)}): check host, port, security and login") from exc
