"""The operations that the alerts daemon's RPCs and ``ledger alerts`` share.

Each takes one logs-database connection (autocommit) and a project id the caller was already
allowed to act on; whatever writes more than one row runs in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg

from ledger.core.alerts import channels, history, rules, senders
from ledger.core.alerts.channels import Channel

SECRET_WARNING = "Store this secret now: it is shown only once and cannot be recovered."  # noqa: S105 (a message, not a secret)


async def create_channel(conn: psycopg.AsyncConnection[Any], project_id: str,
                         body: Mapping[str, Any]) -> dict[str, Any]:
    """Validate, check an SMTP server answers, store; the secret is in this answer only."""
    name, kind, config, secret = channels.validate(body)
    draft = Channel(str(uuid.uuid4()), project_id, name, kind, config, secret, datetime.now(UTC))
    await senders.check_reachable(draft)
    channel = await channels.insert(conn, project_id, name, kind, config, secret)
    out = channel.public()
    if kind == "webhook":
        out |= {"secret": secret, "warning": SECRET_WARNING}
    return out


def sample_alert(channel: Channel) -> dict[str, Any]:
    """What ``channels test`` sends: a real message, marked as a test."""
    now = datetime.now(UTC).isoformat()
    return {
        "alert_id": f"test-{uuid.uuid4()}", "project_id": channel.project_id, "test": True,
        "rule": {"id": None, "name": "test", "kind": "test"},
        "title": "Test alert from Ledger",
        "text": f"This is a test of the alert channel {channel.name!r}. It works.",
        "subject": "test", "group": None, "counts": None, "environment": None,
        "release": None, "sample_event": None, "command": None, "fired_at": now,
    }


async def test_channel(conn: psycopg.AsyncConnection[Any], project_id: str,
                       ref: str) -> dict[str, Any]:
    """Send a test message now; what the receiver answered (never raises for its failure)."""
    channel = await channels.get(conn, project_id, ref)
    alert = sample_alert(channel)
    outcome = await senders.send(channel, alert, str(alert["alert_id"]))
    return {"channel": channel.name, "ok": outcome.ok, "status_code": outcome.status_code,
            "error": outcome.error, "answer": outcome.answer, "duration_ms": outcome.duration_ms}


async def create_rule(conn: psycopg.AsyncConnection[Any], project_id: str,
                      body: Mapping[str, Any]) -> dict[str, Any]:
    async with conn.transaction():
        return (await rules.create(conn, project_id, body)).public()


async def update_rule(conn: psycopg.AsyncConnection[Any], project_id: str, ref: str,
                      body: Mapping[str, Any]) -> dict[str, Any]:
    async with conn.transaction():
        return (await rules.update(conn, project_id, ref, body)).public()


async def remove_rule(conn: psycopg.AsyncConnection[Any], project_id: str,
                      ref: str) -> dict[str, Any]:
    async with conn.transaction():
        return (await rules.delete(conn, project_id, ref)).public()


async def list_history(conn: psycopg.AsyncConnection[Any], project_ids: list[str], *,
                       rule: str | None, since: str | None,
                       limit: int = history.DEFAULT_LIMIT) -> list[dict[str, Any]]:
    return await history.list_alerts(conn, project_ids, rule=rule,
                                     since=history.parse_since(since, datetime.now(UTC)),
                                     limit=limit)
