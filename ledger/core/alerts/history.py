"""The alerts that fired, newest first, each with its deliveries and their attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ledger.core.alerts import fields
from ledger.errors import InvalidInputError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def parse_since(raw: str | None, now: datetime) -> datetime | None:
    """``--since``: an ISO-8601 time or a duration back from now (``2h``, ``1d``)."""
    from ledger.core.alerts.rules import parse_duration

    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        try:
            return now - parse_duration(raw)
        except InvalidInputError:
            raise InvalidInputError(
                f"since must be an ISO-8601 time or a duration like 2h, got {raw[:40]!r}"
            ) from None
    if moment.tzinfo is None:
        raise InvalidInputError("since needs a time zone, e.g. 2026-01-01T00:00:00Z")
    return moment


async def list_alerts(conn: psycopg.AsyncConnection[Any], project_ids: list[str], *,
                      rule: str | None = None, since: datetime | None = None,
                      limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """History of ``project_ids``; ``rule`` is a rule id or name."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"limit must be between 1 and {MAX_LIMIT}")
    clauses, args = ["a.project_id = ANY(%s::uuid[])"], [project_ids]
    if rule:
        if fields.is_uuid(rule):
            clauses.append("a.rule_id = %s")
        else:
            clauses.append("a.rule_name = %s")
        args.append(rule)  # type: ignore[arg-type]
    if since is not None:
        clauses.append("a.created_at >= %s")
        args.append(since)  # type: ignore[arg-type]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT a.id, a.project_id, a.rule_id, a.rule_name, a.kind, a.subject, a.snoozed,"
            " a.payload, a.created_at FROM alerts AS a WHERE " + " AND ".join(clauses)
            + " ORDER BY a.created_at DESC, a.id LIMIT %s", [*args, limit])
        alerts = await cur.fetchall()
        ids = [a["id"] for a in alerts]
        await cur.execute(
            "SELECT d.id, d.alert_id, d.channel_id, c.name AS channel, d.status, d.attempts,"
            " d.next_attempt_at, d.delivered_at, d.last_error"
            " FROM alert_deliveries AS d LEFT JOIN alert_channels AS c ON c.id = d.channel_id"
            " WHERE d.alert_id = ANY(%s::uuid[]) ORDER BY c.name", (ids,))
        deliveries = await cur.fetchall()
        await cur.execute(
            "SELECT t.delivery_id, t.attempted_at, t.status_code, t.error, t.duration_ms"
            " FROM alert_attempts AS t JOIN alert_deliveries AS d ON d.id = t.delivery_id"
            " WHERE d.alert_id = ANY(%s::uuid[]) ORDER BY t.attempted_at, t.id", (ids,))
        attempts = await cur.fetchall()
    by_delivery: dict[Any, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_delivery.setdefault(attempt["delivery_id"], []).append({
            "at": attempt["attempted_at"].isoformat(), "status_code": attempt["status_code"],
            "error": attempt["error"], "duration_ms": attempt["duration_ms"]})
    by_alert: dict[Any, list[dict[str, Any]]] = {}
    for d in deliveries:
        by_alert.setdefault(d["alert_id"], []).append({
            "channel_id": str(d["channel_id"]), "channel": d["channel"], "status": d["status"],
            "attempts": by_delivery.get(d["id"], []),
            "next_attempt_at": d["next_attempt_at"].isoformat()
            if d["status"] == "pending" else None,
            "delivered_at": d["delivered_at"].isoformat() if d["delivered_at"] else None,
            "last_error": d["last_error"]})
    return [{
        "id": str(a["id"]), "project_id": str(a["project_id"]), "rule_id": str(a["rule_id"]),
        "rule": a["rule_name"], "kind": a["kind"], "subject": a["subject"],
        "status": _status(a["snoozed"], by_alert.get(a["id"], [])),
        "title": a["payload"].get("title"), "text": a["payload"].get("text"),
        "created_at": a["created_at"].isoformat(), "deliveries": by_alert.get(a["id"], []),
    } for a in alerts]


def _status(snoozed: bool, deliveries: list[dict[str, Any]]) -> str:
    if snoozed:
        return "snoozed"
    states = {d["status"] for d in deliveries}
    if not states:
        return "no_channel"
    if states == {"delivered"}:
        return "delivered"
    return "pending" if "pending" in states else "failed"
