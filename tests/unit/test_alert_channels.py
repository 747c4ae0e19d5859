"""Channel validation, rendering and signatures (no I/O)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest

from ledger.core.alerts import channels, rules, senders
from ledger.core.alerts.channels import Channel
from ledger.core.alerts.manage import sample_alert
from ledger.core.error_groups import release_cmp
from ledger.errors import InvalidInputError


def test_webhooks_need_https_unless_localhost_is_explicitly_allowed() -> None:
    name, kind, config, secret = channels.validate(
        {"name": "ops", "kind": "webhook", "url": "https://hooks.example.com/x"})
    assert (name, kind, config) == ("ops", "webhook", {"url": "https://hooks.example.com/x"})
    assert secret and len(secret) >= 32  # generated when not given
    for body in ({"url": "http://hooks.example.com/x"},
                 {"url": "http://hooks.example.com/x", "allow_insecure_localhost": True},
                 {"url": "http://127.0.0.1:9/x"},
                 {"url": "ftp://example.com"}, {"url": "not a url"}):
        with pytest.raises(InvalidInputError, match="https"):
            channels.validate({"name": "ops", "kind": "webhook", **body})
    _, _, local, _ = channels.validate({"name": "ops", "kind": "slack",
                                        "url": "http://localhost:8080/slack",
                                        "allow_insecure_localhost": True})
    assert local == {"url": "http://localhost:8080/slack"}


def test_email_channel_fields() -> None:
    _, _, config, secret = channels.validate({
        "name": "mail", "kind": "email", "host": "smtp.example.com", "username": "u",
        "password": "p", "from": "ledger@example.com", "to": "ops@example.com"})
    assert config["port"] == 587 and config["security"] == "starttls"
    assert config["to"] == ["ops@example.com"] and "password" not in config and secret == "p"
    for body, message in [
        ({"security": "none"}, "only for a localhost"),
        ({"security": "ssl"}, "security must be one of"),
        ({"to": []}, "to must list"),
        ({"password": None}, "go together"),
        ({"from": "nobody"}, "from must be an e-mail"),
    ]:
        base: dict[str, Any] = {"name": "m", "kind": "email", "host": "smtp.example.com",
                                "username": "u", "password": "p", "from": "a@example.com",
                                "to": ["b@example.com"]}
        base.update(body)
        with pytest.raises(InvalidInputError, match=message):
            channels.validate({k: v for k, v in base.items() if v is not None})
    with pytest.raises(InvalidInputError, match="unknown field 'url'"):
        channels.validate({"name": "m", "kind": "email", "url": "https://x"})


def _channel(kind: str, **config: Any) -> Channel:
    return Channel("c", "p", "ops", kind, config, "s3cret", datetime.now(UTC))


def test_public_view_never_shows_the_secret() -> None:
    public = _channel("webhook", url="https://x").public()
    assert public["has_secret"] is True and "s3cret" not in str(public)


def test_signature_is_hmac_sha256_of_the_exact_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"key", body, hashlib.sha256).hexdigest()
    assert senders.signature("key", body) == f"sha256={expected}"


def test_slack_blocks_and_email_parts() -> None:
    alert = sample_alert(_channel("slack", url="https://x"))
    body = senders.slack_body(alert)
    assert body["text"].startswith("Test alert from Ledger")
    assert [b["type"] for b in body["blocks"]][:2] == ["header", "section"]
    message = senders.email_message(
        _channel("email", **{"from": "l@example.com", "to": ["a@example.com", "b@example.com"]}),
        alert | {"title": "New error: <KeyError>"})
    assert message["To"] == "a@example.com, b@example.com"
    kinds = [part.get_content_type() for part in message.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    html = message.get_body(("html",))
    assert html is not None and "&lt;KeyError&gt;" in html.get_content()


def test_release_comparison_matches_the_database_rule() -> None:
    assert release_cmp("1.10.0", "1.9.2") == 1
    assert release_cmp("2.0", "2.0") == 0
    assert release_cmp("1.9", "2.0") == -1
    assert release_cmp("v2.0-beta", "v2.0-alpha") == 1


def test_durations() -> None:
    assert rules.parse_duration("2h").total_seconds() == 7200
    assert rules.parse_duration("30m").total_seconds() == 1800
    for bad in ("0m", "2 weeks", "91d", ""):
        with pytest.raises(InvalidInputError):
            rules.parse_duration(bad)
