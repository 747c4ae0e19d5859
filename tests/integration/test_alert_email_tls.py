"""E-mail alerts over implicit TLS (security "tls", port 465's way) to a real aiosmtpd.

The end-to-end alerts test covers STARTTLS through the daemons; this one drives the sender
itself against a server that speaks TLS from the first byte, with a login.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger.core.alerts import senders
from ledger.core.alerts.channels import Channel
from ledger.errors import InvalidInputError
from tests.alert_receivers import SmtpReceiver

ALERT: dict[str, Any] = {
    "alert_id": "a1", "title": "New error: KeyError: 'user'", "text": "KeyError: 'user'",
    "rule": {"name": "new errors", "kind": "new_group"}, "environment": "production",
}


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpReceiver]:
    running = SmtpReceiver(tmp_path, implicit_tls=True).start()
    yield running
    running.stop()


def _channel(smtp: SmtpReceiver, **config: Any) -> Channel:
    base = {"host": "localhost", "port": smtp.port, "security": "tls", "username": smtp.user,
            "from": "ledger@example.com", "to": ["ops@example.com"]}
    return Channel("c1", "p1", "mail", "email", base | config, smtp.password, datetime.now(UTC))


async def test_an_alert_is_delivered_over_implicit_tls_with_a_login(smtp: SmtpReceiver) -> None:
    await senders.check_reachable(_channel(smtp, tls_verify=False))  # what a new channel runs
    outcome = await senders.send(_channel(smtp, tls_verify=False), ALERT, "key-1")
    assert outcome.ok, outcome.error
    assert outcome.answer.startswith("250")
    [message] = smtp.wait_for(1)
    assert message["Subject"] == "[Ledger] New error: KeyError: 'user'"
    assert message["X-Ledger-Alert-Id"] == "a1"
    assert smtp.logins, "the sender did not log in"


async def test_a_self_signed_certificate_is_refused_unless_told(smtp: SmtpReceiver) -> None:
    outcome = await senders.send(_channel(smtp), ALERT, "key-2")
    assert not outcome.ok and outcome.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.error
    with pytest.raises(InvalidInputError, match="check host, port, security and login"):
        await senders.check_reachable(_channel(smtp))
    assert smtp.messages == []

