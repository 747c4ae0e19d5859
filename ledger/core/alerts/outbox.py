"""The delivery outbox: due deliveries claimed with a lease, each attempt recorded, backoff.

A sender claims due rows by pushing their ``next_attempt_at`` one lease ahead (``FOR UPDATE SKIP
LOCKED``, so two daemons never claim the same row), sends, and records the outcome at once in
its own short transaction: delivered, retried after an exponential backoff, or failed once the
delivery is older than its expiry (24 h by default). A sender killed mid-send leaves the row to
be claimed again when the lease runs out: at-least-once, and the receiver sees the same
``Idempotency-Key`` on the repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ledger.core.alerts import channels as channels_store
from ledger.core.alerts.channels import Channel
from ledger.core.alerts.senders import Outcome


@dataclass(frozen=True)
class Delivery:
    """One claimed delivery: the alert's payload for one channel."""

    id: str
    alert_id: str
    project_id: str
    attempts: int
    expires_at: datetime
    payload: dict[str, Any]
    channel: Channel | None

    @property
    def idempotency_key(self) -> str:
        return f"{self.alert_id}:{self.channel.id if self.channel else ''}"


def backoff(attempts: int, base_seconds: float, max_seconds: float) -> timedelta:
    """Delay before the next try after ``attempts`` failed ones: doubling, capped."""
    return timedelta(seconds=min(max_seconds, base_seconds * 2 ** max(0, attempts - 1)))


async def claim(conn: psycopg.AsyncConnection[Any], *, limit: int, lease: timedelta,
                now: datetime) -> list[Delivery]:
    """Take up to ``limit`` due deliveries for one lease."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE alert_deliveries AS d SET next_attempt_at = %s"
            " FROM (SELECT id FROM alert_deliveries WHERE status = 'pending'"
            "       AND next_attempt_at <= %s ORDER BY next_attempt_at LIMIT %s"
            "       FOR UPDATE SKIP LOCKED) AS due, alerts AS a"
            " WHERE d.id = due.id AND a.id = d.alert_id"
            " RETURNING d.id, d.alert_id, d.channel_id, d.attempts, d.expires_at,"
            " a.project_id, a.payload", (now + lease, now, limit))
        rows = await cur.fetchall()
    found = await channels_store.by_ids(conn, [str(r["channel_id"]) for r in rows])
    return [Delivery(str(r["id"]), str(r["alert_id"]), str(r["project_id"]), r["attempts"],
                     r["expires_at"], dict(r["payload"]), found.get(str(r["channel_id"])))
            for r in rows]


async def fill_group(conn: psycopg.AsyncConnection[Any], delivery: Delivery) -> None:
    """Complete a payload recorded before the writer stored its new group (id, counts)."""
    group = delivery.payload.get("group")
    if not group or group.get("id"):
        return
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT id, title, event_count, first_seen, last_seen FROM error_groups"
                          " WHERE project_id = %s AND fingerprint = %s",
                          (delivery.project_id, group["fingerprint"]))
        row = await cur.fetchone()
    if row is not None:
        group.update(id=str(row["id"]), title=row["title"], event_count=row["event_count"],
                     first_seen=row["first_seen"].isoformat(),
                     last_seen=row["last_seen"].isoformat())
        delivery.payload["command"] = f"ledger errors show {row['id']}"


async def finish(conn: psycopg.AsyncConnection[Any], delivery: Delivery, outcome: Outcome, *,
                 now: datetime, base_seconds: float, max_seconds: float) -> str:
    """Record the attempt and the delivery's new state (``delivered``, ``pending``, ``failed``)."""
    attempts = delivery.attempts + 1
    if outcome.ok:
        status, next_at = "delivered", now
    elif now >= delivery.expires_at or delivery.channel is None:
        status, next_at = "failed", now
    else:
        status, next_at = "pending", now + backoff(attempts, base_seconds, max_seconds)
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO alert_attempts (delivery_id, attempted_at, status_code, error,"
            " duration_ms) VALUES (%s, %s, %s, %s, %s)",
            (delivery.id, now, outcome.status_code, outcome.error, outcome.duration_ms))
        await conn.execute(
            "UPDATE alert_deliveries SET status = %s, attempts = %s, next_attempt_at = %s,"
            " delivered_at = CASE WHEN %s = 'delivered' THEN %s END, last_error = %s"
            " WHERE id = %s",
            (status, attempts, next_at, status, now, outcome.error, delivery.id))
    return status
