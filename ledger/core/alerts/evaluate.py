"""Deciding that rules fire, and recording each firing with its deliveries in one transaction.

Two sources:

* ``evaluate_events``: a batch of one project's error notifications (read from its stream by
  the daemon) against the project's new_group, regression and group_frequency rules.
* ``evaluate_periodic``: error_rate and no_logs rules, counted from ``logs`` every interval.

Exactly-once in effect: every firing has a deterministic idempotency key, the cooldown is
claimed with a row lock, and the fingerprints seen are marked in the same transaction as the
alerts. A batch replayed after a crash (its stream entries were never acknowledged) therefore
inserts nothing new, and two daemons racing on one subject record it once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import redis.asyncio as aioredis
from psycopg.rows import dict_row

from ledger import bus
from ledger.core.alerts.rules import Rule
from ledger.core.error_groups import reopens

#: A group whose first event is at most this much older than the event we read is still new
#: (the writer may have stored a batch-mate with an earlier timestamp first).
NEW_GROUP_SLACK = timedelta(seconds=1)
#: How far back a regression recorded by the writer is matched to the event we read.
REGRESSION_MATCH = timedelta(seconds=30)
DEFAULT_ERROR_LEVELS = ("error", "critical")


@dataclass(frozen=True)
class Notification:
    """One entry of a project's notifications stream: its id and the event's fields."""

    entry_id: str
    event: dict[str, Any]

    @property
    def received_at(self) -> datetime:
        """When ingest queued the event (the stream id's milliseconds)."""
        return datetime.fromtimestamp(int(self.entry_id.split("-", 1)[0]) / 1000, UTC)

    @property
    def fingerprint(self) -> str | None:
        value = self.event.get("error_fingerprint")
        return str(value) if value else None

    @classmethod
    def parse(cls, entry_id: bytes | str, data: bytes | str) -> Notification | None:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(event, dict):
            return None
        return cls(entry_id.decode() if isinstance(entry_id, bytes) else entry_id, event)


@dataclass
class Firing:
    """A rule that fires on a subject (a fingerprint, or ``project``/an environment)."""

    rule: Rule
    subject: str
    key: str
    title: str
    text: str
    group: dict[str, Any] | None = None
    counts: dict[str, Any] | None = None
    event: dict[str, Any] | None = None
    environment: str | None = None
    release: str | None = None


@dataclass
class Stats:
    """What one evaluation did (the daemon adds them up for its metrics and the benchmark)."""

    rules_evaluated: int = 0
    fired: list[str] = field(default_factory=list)


def _event_time(event: Mapping[str, Any], fallback: datetime) -> datetime:
    try:
        return datetime.fromisoformat(str(event.get("timestamp")))
    except ValueError:
        return fallback


def _group_view(fingerprint: str, row: Mapping[str, Any] | None,
                event: Mapping[str, Any]) -> dict[str, Any]:
    title = event.get("error_type") and f"{event['error_type']}: {event.get('error_message')}"
    if row is None:  # the writer has not stored the group yet; the sender fills it in later
        return {"id": None, "fingerprint": fingerprint, "title": title or event.get("message"),
                "status": "unresolved", "event_count": None,
                "first_seen": event.get("timestamp"), "last_seen": event.get("timestamp")}
    return {"id": str(row["id"]), "fingerprint": fingerprint, "title": row["title"],
            "status": row["status"], "event_count": row["event_count"],
            "first_seen": row["first_seen"].isoformat(), "last_seen": row["last_seen"].isoformat()}


def _sample(event: Mapping[str, Any]) -> dict[str, Any]:
    sample = dict(event)
    if isinstance(sample.get("stack_trace"), str):
        sample["stack_trace"] = sample["stack_trace"][:5000]
    return sample


# -- notifications ------------------------------------------------------------------------------


async def _known(conn: psycopg.AsyncConnection[Any], project_id: str,
                 fingerprints: list[str]) -> set[str]:
    """Mark ``fingerprints`` seen; return those seen for the first time."""
    async with conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO alert_known_groups (project_id, fingerprint)"
            " SELECT %s, f FROM unnest(%s::text[]) AS f ORDER BY f"
            " ON CONFLICT DO NOTHING RETURNING fingerprint", (project_id, fingerprints))
        return {row[0] for row in await cur.fetchall()}


async def _groups(conn: psycopg.AsyncConnection[Any], project_id: str,
                  fingerprints: list[str]) -> dict[str, dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, fingerprint, title, status, resolved_at, resolved_in_release,"
            " event_count, first_seen, last_seen FROM error_groups"
            " WHERE project_id = %s AND fingerprint = ANY(%s::text[])",
            (project_id, fingerprints))
        return {row["fingerprint"]: row for row in await cur.fetchall()}


async def _regressions(conn: psycopg.AsyncConnection[Any], project_id: str,
                       fingerprints: list[str], since: datetime) -> dict[str, datetime]:
    """Resolutions the writer already undid (fingerprint → the resolved_at it undid)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT fingerprint, max(resolved_at) FROM error_group_regressions"
            " WHERE project_id = %s AND fingerprint = ANY(%s::text[]) AND regressed_at >= %s"
            " GROUP BY fingerprint", (project_id, fingerprints, since))
        return {row[0]: row[1] for row in await cur.fetchall()}


async def _frequencies(redis: aioredis.Redis,
                       batches: Mapping[tuple[Rule, str], list[Notification]],
                       ) -> dict[tuple[Rule, str], list[tuple[Notification, int]]]:
    """Add each group's events to its rule's window, in one round trip for the whole batch.

    Returns, per (rule, fingerprint), each newly counted event with the number of the group's
    events in the window once it was added. Members are log ids, so a replayed notification is
    not counted twice; only the ``threshold`` newest are kept, as "are there N" is the question.
    """
    pipe = redis.pipeline(transaction=False)
    plans: list[tuple[tuple[Rule, str], list[Notification]]] = []
    for (rule, fp), notes in batches.items():
        assert rule.threshold is not None and rule.window_minutes is not None
        window = rule.window_minutes * 60
        newest = max(n.received_at.timestamp() for n in notes)
        cutoff = newest - window
        inside = [n for n in notes if n.received_at.timestamp() >= cutoff]
        key = bus.alert_frequency(rule.project_id, rule.id, fp)
        pipe.zremrangebyscore(key, "-inf", f"({cutoff}")
        pipe.zcard(key)
        pipe.zadd(key, {str(n.event.get("id") or n.entry_id): n.received_at.timestamp()
                        for n in inside}, nx=True)  # never empty: the newest is inside
        pipe.zremrangebyrank(key, 0, -(int(rule.threshold) + 1))
        pipe.expire(key, window + 60)
        plans.append(((rule, fp), inside))
    results = await pipe.execute() if plans else []
    out: dict[tuple[Rule, str], list[tuple[Notification, int]]] = {}
    for i, (subject, inside) in enumerate(plans):
        before, added = int(results[5 * i + 1]), int(results[5 * i + 2])
        fresh = inside[len(inside) - added:] if added else []
        out[subject] = [(n, before + k + 1) for k, n in enumerate(fresh)]
    return out


async def evaluate_events(conn: psycopg.AsyncConnection[Any], redis: aioredis.Redis,
                          project_id: str, rules: Sequence[Rule],
                          notes: Sequence[Notification], *, now: datetime,
                          expires_after: timedelta) -> Stats:
    """Evaluate one project's notifications against its event rules, recording what fires.

    Call inside a transaction: the caller acknowledges the stream entries after the commit.
    """
    stats = Stats()
    notes = [n for n in notes if n.fingerprint]
    fingerprints = sorted({n.fingerprint for n in notes if n.fingerprint})
    if not notes:
        return stats
    new = await _known(conn, project_id, fingerprints)
    event_rules = [r for r in rules if r.kind in ("new_group", "regression", "group_frequency")]
    if not event_rules:
        return stats
    groups = await _groups(conn, project_id, fingerprints)
    earliest = min(n.received_at for n in notes)
    undone = (await _regressions(conn, project_id, fingerprints, earliest - REGRESSION_MATCH)
              if any(r.kind == "regression" for r in event_rules) else {})
    first_time: dict[str, datetime] = {}
    for note in notes:
        fp = str(note.fingerprint)
        at = _event_time(note.event, note.received_at)
        first_time[fp] = min(first_time.get(fp, at), at)
    firings: list[Firing] = []
    counted: dict[tuple[Rule, str], list[Notification]] = {}
    for note in notes:
        fp, event = str(note.fingerprint), note.event
        row = groups.get(fp)
        for rule in event_rules:
            # A rule sees only what happened after it was made (the stream replays older).
            if note.received_at < rule.created_at or not rule.accepts(event):
                continue
            stats.rules_evaluated += 1
            if rule.kind == "group_frequency":
                counted.setdefault((rule, fp), []).append(note)
                continue
            firing = _group_firing(rule, note, fp, row, new, first_time, undone)
            if firing is not None:
                firings.append(firing)
    for (rule, fp), events in (await _frequencies(redis, counted)).items():
        for note, count in events:
            if count >= int(rule.threshold or 0):
                firings.append(_frequency_firing(rule, note, fp, groups.get(fp), count))
    for firing in firings:
        alert_id = await record(conn, firing, now=now, expires_after=expires_after)
        if alert_id is not None:
            stats.fired.append(alert_id)
    return stats


def _fire(rule: Rule, note: Notification, fp: str, row: Mapping[str, Any] | None, key: str,
          headline: str, text: str, counts: dict[str, Any] | None = None) -> Firing:
    event = note.event
    return Firing(rule, fp, key, headline, text, group=_group_view(fp, row, event),
                  counts=counts, event=_sample(event), environment=event.get("environment"),
                  release=event.get("release"))


def _title(fp: str, row: Mapping[str, Any] | None, event: Mapping[str, Any]) -> str:
    return str(_group_view(fp, row, event)["title"] or fp)


def _group_firing(rule: Rule, note: Notification, fp: str, row: Mapping[str, Any] | None,
                  new: set[str], first_time: Mapping[str, datetime],
                  undone: Mapping[str, datetime]) -> Firing | None:
    """new_group and regression: decided from the group's state, no counting."""
    event = note.event
    title = _title(fp, row, event)
    if rule.kind == "new_group":
        if fp not in new or (row is not None
                             and row["first_seen"] < first_time[fp] - NEW_GROUP_SLACK):
            return None
        return _fire(rule, note, fp, row, f"{rule.id}:new:{fp}", f"New error: {title}",
                     f"A new error group appeared: {title}")
    if row is None:
        return None
    at = _event_time(event, note.received_at)
    if row["status"] == "resolved" and reopens(row, event, at):
        resolved_at = row["resolved_at"]
    elif row["status"] == "unresolved" and fp in undone:
        resolved_at = undone[fp]
    else:
        return None
    stamp = resolved_at.isoformat() if resolved_at else "never"
    return _fire(rule, note, fp, row, f"{rule.id}:regression:{fp}:{stamp}",
                 f"Regression: {title}",
                 f"A resolved error is back (release {event.get('release') or 'unknown'})"
                 f": {title}")


def _frequency_firing(rule: Rule, note: Notification, fp: str,
                      row: Mapping[str, Any] | None, count: int) -> Firing:
    title = _title(fp, row, note.event)
    threshold = int(rule.threshold or 0)
    counts = {"events": count, "threshold": threshold, "window_minutes": rule.window_minutes}
    return _fire(rule, note, fp, row, f"{rule.id}:frequency:{fp}:{note.entry_id}",
                 f"Spiking error: {title}",
                 f"{count} events in {rule.window_minutes} min (threshold {threshold}): {title}",
                 counts)


# -- periodic -----------------------------------------------------------------------------------


def _log_filters(rule: Rule) -> tuple[str, list[Any]]:
    clauses, args = [], []
    for key in ("environment", "log_type", "release"):
        if rule.filters.get(key):
            clauses.append(f" AND {key} = ANY(%s::text[])")
            args.append(rule.filters[key])
    return "".join(clauses), args


async def _error_rate(conn: psycopg.AsyncConnection[Any], rule: Rule,
                      now: datetime, tick: int) -> Firing | None:
    assert rule.window_minutes is not None and rule.threshold is not None
    levels = rule.filters.get("level") or list(DEFAULT_ERROR_LEVELS)
    extra, args = _log_filters(rule)
    since = now - timedelta(minutes=rule.window_minutes)
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT count(*) FROM logs WHERE project_id = %s AND timestamp > %s"
            " AND timestamp <= %s AND level = ANY(%s::text[])" + extra,
            [rule.project_id, since, now + timedelta(minutes=5), levels, *args])
        row = await cur.fetchone()
    count = int(row[0]) if row else 0
    rate = count / rule.window_minutes
    if rate < rule.threshold:
        return None
    counts = {"events": count, "per_minute": round(rate, 3), "threshold": rule.threshold,
              "window_minutes": rule.window_minutes}
    return Firing(rule, "project", f"{rule.id}:rate:{tick}",
                  f"Error rate {rate:.1f}/min",
                  f"{count} {'/'.join(levels)} logs in {rule.window_minutes} min"
                  f" ({rate:.1f}/min, threshold {rule.threshold:g}/min)", counts=counts)


async def _no_logs(conn: psycopg.AsyncConnection[Any], rule: Rule, now: datetime,
                   tick: int) -> Firing | None:
    assert rule.window_minutes is not None
    window = timedelta(minutes=rule.window_minutes)
    if now - rule.created_at < window:
        return None  # not watched for a whole window yet: silence is not known
    extra, args = _log_filters(rule)
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT EXISTS (SELECT 1 FROM logs WHERE project_id = %s AND timestamp > %s"
            + extra + ")", [rule.project_id, now - window, *args])
        row = await cur.fetchone()
    if row and row[0]:
        return None
    environments = rule.filters.get("environment") or []
    where = f" from {', '.join(environments)}" if environments else ""
    return Firing(rule, ",".join(environments) or "project", f"{rule.id}:silence:{tick}",
                  f"No logs{where} for {rule.window_minutes} min",
                  f"The project sent no log{where} in the last {rule.window_minutes} minutes",
                  counts={"events": 0, "window_minutes": rule.window_minutes},
                  environment=",".join(environments) or None)


async def evaluate_periodic(conn: psycopg.AsyncConnection[Any], rules: Iterable[Rule], *,
                            now: datetime, interval_seconds: float,
                            expires_after: timedelta) -> Stats:
    """Count from ``logs`` for every error_rate and no_logs rule; record what fires."""
    stats = Stats()
    tick = int(now.timestamp() // max(interval_seconds, 0.001))
    for rule in rules:
        if rule.kind == "error_rate":
            firing = await _error_rate(conn, rule, now, tick)
        elif rule.kind == "no_logs":
            firing = await _no_logs(conn, rule, now, tick)
        else:
            continue
        stats.rules_evaluated += 1
        if firing is not None:
            alert_id = await record(conn, firing, now=now, expires_after=expires_after)
            if alert_id is not None:
                stats.fired.append(alert_id)
    return stats


# -- recording ----------------------------------------------------------------------------------


async def _claim_cooldown(conn: psycopg.AsyncConnection[Any], firing: Firing,
                          now: datetime) -> bool:
    """Take the rule's cooldown for the subject, or False if it fired within the cooldown."""
    cooldown = firing.rule.cooldown_seconds
    if cooldown <= 0:
        return True
    async with conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO alert_cooldowns AS c (rule_id, subject, last_fired_at)"
            " VALUES (%s, %s, %s) ON CONFLICT (rule_id, subject) DO UPDATE"
            " SET last_fired_at = EXCLUDED.last_fired_at"
            " WHERE c.last_fired_at <= EXCLUDED.last_fired_at - make_interval(secs => %s)"
            " RETURNING 1", (firing.rule.id, firing.subject, now, cooldown))
        return await cur.fetchone() is not None


async def _group_snoozed(conn: psycopg.AsyncConnection[Any], firing: Firing,
                         now: datetime) -> bool:
    if firing.group is None:
        return False
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1 FROM alert_group_snoozes WHERE project_id = %s"
                          " AND fingerprint = %s AND snoozed_until > %s",
                          (firing.rule.project_id, firing.subject, now))
        return await cur.fetchone() is not None


def payload(alert_id: str, firing: Firing, now: datetime) -> dict[str, Any]:
    """The alert as every channel receives it (the webhook body as is)."""
    group = firing.group
    command = f"ledger errors show {group['id']}" if group and group.get("id") else None
    return {
        "alert_id": alert_id, "project_id": firing.rule.project_id,
        "rule": {"id": firing.rule.id, "name": firing.rule.name, "kind": firing.rule.kind},
        "title": firing.title, "text": firing.text, "subject": firing.subject,
        "group": group, "counts": firing.counts, "environment": firing.environment,
        "release": firing.release, "sample_event": firing.event, "command": command,
        "fired_at": now.isoformat(),
    }


async def record(conn: psycopg.AsyncConnection[Any], firing: Firing, *, now: datetime,
                 expires_after: timedelta) -> str | None:
    """Store the alert and one pending delivery per channel; ``None`` when it must not fire.

    It must not when the rule is in its cooldown for the subject, or the same firing (same
    idempotency key) is already recorded. A snoozed rule or group records the alert, sends
    nothing.
    """
    # The rule as it is now: a snooze, a channel change or a removal since the evaluator
    # loaded its rules takes effect at once.
    async with conn.cursor() as cur:
        await cur.execute("SELECT channel_ids, snoozed_until FROM alert_rules"
                          " WHERE id = %s AND enabled", (firing.rule.id,))
        current = await cur.fetchone()
    if current is None or not await _claim_cooldown(conn, firing, now):
        return None
    channel_ids = [str(c) for c in current[0]]
    snoozed = ((current[1] is not None and current[1] > now)
               or await _group_snoozed(conn, firing, now))
    alert_id = str(uuid.uuid4())
    body = payload(alert_id, firing, now)
    async with conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO alerts (id, project_id, rule_id, rule_name, kind, subject,"
            " idempotency_key, snoozed, payload, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            (alert_id, firing.rule.project_id, firing.rule.id, firing.rule.name,
             firing.rule.kind, firing.subject, firing.key, snoozed,
             orjson.dumps(body).decode(), now))
        if await cur.fetchone() is None:
            return None
        if not snoozed:
            await cur.execute(
                "INSERT INTO alert_deliveries (id, alert_id, channel_id, next_attempt_at,"
                " expires_at) SELECT gen_random_uuid(), %s, c.id, %s, %s"
                " FROM alert_channels AS c WHERE c.id = ANY(%s::uuid[])",
                (alert_id, now, now + expires_after, channel_ids))
    return alert_id
