"""Alert channels: a signed webhook, a Slack-compatible incoming webhook, or SMTP e-mail.

A channel's secret (the webhook's signing secret, the SMTP password) is stored to be used and
is never returned again: ``public()`` shows only whether there is one. Webhook URLs must be
HTTPS; plain HTTP only for localhost and only when ``allow_insecure_localhost`` says so (a test
receiver, a sidecar). An SMTP channel is created only after its server answered (and accepted
the login), so an unreachable host is a clear 400 and nothing is stored.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg
from psycopg.rows import dict_row

from ledger.core.alerts import fields
from ledger.errors import ConflictError, InvalidInputError, NotFoundError

KINDS = ("webhook", "slack", "email")
SECURITIES = ("starttls", "tls", "none")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
MAX_RECIPIENTS = 20
_COMMON = {"name", "kind"}
_ALLOWED = {
    "webhook": _COMMON | {"url", "secret", "allow_insecure_localhost"},
    "slack": _COMMON | {"url", "allow_insecure_localhost"},
    "email": _COMMON | {"host", "port", "security", "username", "password", "from", "to",
                        "tls_verify"},
}


@dataclass(frozen=True)
class Channel:
    """A stored channel. ``secret`` is for the senders only."""

    id: str
    project_id: str
    name: str
    kind: str
    config: dict[str, Any]
    secret: str | None
    created_at: datetime

    def public(self) -> dict[str, Any]:
        """What the API and the CLI show: never the secret."""
        return {"id": self.id, "project_id": self.project_id, "name": self.name,
                "kind": self.kind, "config": self.config, "has_secret": bool(self.secret),
                "created_at": self.created_at.isoformat()}


def _url(body: Mapping[str, Any]) -> str:
    url = fields.text(body, "url", max_chars=2000)
    assert url is not None
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInputError(f"url must be an https:// URL, got {url[:100]!r}")
    if parts.scheme == "http":
        local = parts.hostname in LOCAL_HOSTS
        if not (local and fields.boolean(body, "allow_insecure_localhost", False)):
            raise InvalidInputError(
                "url must be https:// (plain http is allowed only for localhost, with"
                " allow_insecure_localhost: true)")
    return url


def _email_config(body: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    host = fields.text(body, "host", max_chars=255)
    security = body.get("security", "starttls")
    if security not in SECURITIES:
        raise InvalidInputError(f"security must be one of {', '.join(SECURITIES)}")
    if security == "none" and host not in LOCAL_HOSTS:
        raise InvalidInputError("security none (no TLS) is allowed only for a localhost server")
    default_port = {"starttls": 587, "tls": 465, "none": 25}[security]
    port = fields.integer(body, "port", minimum=1, maximum=65535, default=default_port)
    sender = fields.text(body, "from", max_chars=320)
    to = body.get("to")
    if isinstance(to, str):
        to = [to]
    if (not isinstance(to, list) or not to or len(to) > MAX_RECIPIENTS
            or not all(isinstance(a, str) and "@" in a and len(a) <= 320 for a in to)):
        raise InvalidInputError(f"to must list 1 to {MAX_RECIPIENTS} e-mail addresses")
    if not sender or "@" not in sender:
        raise InvalidInputError("from must be an e-mail address")
    username = fields.text(body, "username", required=False, max_chars=320)
    password = fields.text(body, "password", required=False, max_chars=500)
    if bool(username) != bool(password):
        raise InvalidInputError("username and password go together (both or neither)")
    config = {"host": host, "port": port, "security": security, "username": username,
              "from": sender, "to": to, "tls_verify": fields.boolean(body, "tls_verify", True)}
    return config, password


def validate(body: Mapping[str, Any]) -> tuple[str, str, dict[str, Any], str | None]:
    """``(name, kind, config, secret)`` of a new channel, or ``InvalidInputError``."""
    if not isinstance(body, Mapping):
        raise InvalidInputError("the body must be a JSON object")
    kind = body.get("kind")
    if kind not in KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(KINDS)}")
    fields.check_keys(body, _ALLOWED[kind], f"a {kind} channel")
    name = fields.name(body)
    if kind == "email":
        config, secret = _email_config(body)
        return name, kind, config, secret
    config = {"url": _url(body)}
    if kind == "slack":
        return name, kind, config, None
    secret = fields.text(body, "secret", required=False, max_chars=500)
    return name, kind, config, secret or secrets.token_urlsafe(32)


def _row(row: Mapping[str, Any]) -> Channel:
    return Channel(id=str(row["id"]), project_id=str(row["project_id"]), name=row["name"],
                   kind=row["kind"], config=dict(row["config"]), secret=row["secret"],
                   created_at=row["created_at"])


async def insert(conn: psycopg.AsyncConnection[Any], project_id: str, name: str, kind: str,
                 config: dict[str, Any], secret: str | None) -> Channel:
    """Store a validated channel (a duplicate name in the project is a ``ConflictError``)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        try:
            await cur.execute(
                "INSERT INTO alert_channels (id, project_id, name, kind, config, secret)"
                " VALUES (%s, %s, %s, %s, %s::jsonb, %s) RETURNING *",
                (uuid.uuid4(), project_id, name, kind, orjson.dumps(config).decode(), secret))
        except psycopg.errors.UniqueViolation:
            raise ConflictError(f"the project already has a channel named {name!r}") from None
        row = await cur.fetchone()
    assert row is not None
    return _row(row)


async def list_for(conn: psycopg.AsyncConnection[Any], project_id: str) -> list[Channel]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM alert_channels WHERE project_id = %s ORDER BY name",
                          (project_id,))
        return [_row(r) for r in await cur.fetchall()]


async def by_ids(conn: psycopg.AsyncConnection[Any], ids: list[str]) -> dict[str, Channel]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM alert_channels WHERE id = ANY(%s::uuid[])", (ids,))
        return {str(r["id"]): _row(r) for r in await cur.fetchall()}


async def get(conn: psycopg.AsyncConnection[Any], project_id: str, ref: str) -> Channel:
    """The project's channel with id or name ``ref``, or ``NotFoundError``."""
    async with conn.cursor(row_factory=dict_row) as cur:
        if fields.is_uuid(ref):
            await cur.execute("SELECT * FROM alert_channels WHERE project_id = %s AND id = %s",
                              (project_id, ref))
        else:
            await cur.execute("SELECT * FROM alert_channels WHERE project_id = %s AND name = %s",
                              (project_id, ref))
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no alert channel {ref[:100]!r} in this project")
    return _row(row)


async def resolve(conn: psycopg.AsyncConnection[Any], project_id: str,
                  refs: Any) -> list[str]:
    """Channel ids for ``refs`` (ids or names); an unknown one is an ``InvalidInputError``."""
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
        raise InvalidInputError("channels must list at least one channel (id or name)")
    ids: list[str] = []
    for ref in refs:
        try:
            channel = await get(conn, project_id, ref)
        except NotFoundError:
            raise InvalidInputError(f"unknown channel {ref[:100]!r}: create it first"
                                    " (POST .../alert-channels, `ledger alerts channels add`)"
                                    ) from None
        if channel.id not in ids:
            ids.append(channel.id)
    return ids


async def delete(conn: psycopg.AsyncConnection[Any], project_id: str, ref: str) -> Channel:
    """Remove a channel no rule uses (else ``ConflictError`` naming the rule)."""
    channel = await get(conn, project_id, ref)
    async with conn.cursor() as cur:
        await cur.execute("SELECT name FROM alert_rules WHERE project_id = %s"
                          " AND %s = ANY(channel_ids) ORDER BY name LIMIT 1",
                          (project_id, channel.id))
        used = await cur.fetchone()
        if used is not None:
            raise ConflictError(f"channel {channel.name!r} is used by rule {used[0]!r}:"
                                " change or remove the rule first")
        await cur.execute("DELETE FROM alert_channels WHERE id = %s", (channel.id,))
    return channel
