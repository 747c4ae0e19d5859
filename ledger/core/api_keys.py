"""API keys: ``ledger_<key_id>_<secret>``, created once, validated fast, revoked within a second.

The key id is public and indexed, so validation finds the row in O(1) and runs bcrypt at most
once, and never for a key id that does not exist. A validated key is cached in Redis under the
SHA-256 of the whole key (never the key itself) for 5 minutes, plus an emergency copy for 10
minutes that the gateway serves while the auth daemon is unreachable. Every cached digest of a
key id is remembered in an index set, so revocation can delete them all and then tell the
gateways, over pub/sub, to drop their in-process copies (DESIGN §4).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import orjson
import psycopg
import redis.asyncio as aioredis
from psycopg.rows import dict_row

from ledger import bus
from ledger.core.events import uuid7
from ledger.errors import AuthenticationError, ConflictError, InvalidInputError, NotFoundError

logger = logging.getLogger(__name__)

PREFIX = "ledger"
# triage changes an error group's status (DESIGN §4); never given unless asked for.
SCOPES: tuple[str, ...] = ("ingest", "read", "triage")
DEFAULT_SCOPES: tuple[str, ...] = ("ingest", "read")
KEY_ID_CHARS = 12
# Far more than any project needs (one per app and environment); bounds what an account can
# make the gateway's caches and its live streams hold.
MAX_ACTIVE_KEYS_PER_PROJECT = 100
SECRET_BYTES = 32
CACHE_TTL_SECONDS = 300
EMERGENCY_TTL_SECONDS = 600
# last_used_at is informational: one write a minute per key keeps validation off the disk.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# The secret is 256 random bits, so bcrypt's cost protects nothing a brute force could reach;
# a moderate cost keeps the uncached check near the 79 ms the design measured.
KEY_BCRYPT_ROUNDS = 10

_KEY = re.compile(r"^ledger_(?P<key_id>[a-z0-9]{6,32})_(?P<secret>[A-Za-z0-9-]{16,128})$")
MALFORMED = "malformed API key: expected ledger_<id>_<secret>"
_REFUSED = ("invalid API key: it does not exist, was revoked or is wrong;"
            " create a new one with `ledger keys create`")

Conn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True)
class ApiKeyRow:
    """A stored API key (never its secret).

    Attributes:
        rate_limit_minute: The key's own limit, or None to use its project's.
        key_prefix: What to show instead of the key: ``ledger_<key_id>_ab12…``.
    """

    id: str
    key_id: str
    project_id: str
    name: str
    key_prefix: str
    scopes: tuple[str, ...]
    status: str
    rate_limit_minute: int | None
    rate_limit_hour: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class KeyIdentity:
    """What a valid key may do, with its effective limits; what the gateway caches."""

    key_id: str
    project_id: str
    project_slug: str
    project_name: str
    scopes: tuple[str, ...]
    rate_limit_minute: int
    rate_limit_hour: int
    daily_quota: int
    retention_days: int
    #: The project's numeric id in Sentry DSNs (``projects.dsn_id``).
    project_dsn_id: int = 0
    #: The account owning the project: budgets shared by all of an account's projects (its
    #: live streams) are counted against it. Empty in a cache entry written before it existed.
    account_id: str = ""

    def to_json(self) -> bytes:
        """Serialise for a cache entry."""
        return orjson.dumps({
            "key_id": self.key_id, "project_id": self.project_id,
            "project_slug": self.project_slug, "project_name": self.project_name,
            "scopes": list(self.scopes), "rate_limit_minute": self.rate_limit_minute,
            "rate_limit_hour": self.rate_limit_hour, "daily_quota": self.daily_quota,
            "retention_days": self.retention_days, "project_dsn_id": self.project_dsn_id,
            "account_id": self.account_id,
        })

    @classmethod
    def from_json(cls, data: bytes | str) -> KeyIdentity:
        """Rebuild from ``to_json`` output; raise ``ValueError`` on anything else."""
        try:
            raw = orjson.loads(data)
            return cls(
                key_id=str(raw["key_id"]), project_id=str(raw["project_id"]),
                project_slug=str(raw["project_slug"]), project_name=str(raw["project_name"]),
                scopes=tuple(str(s) for s in raw["scopes"]),
                rate_limit_minute=int(raw["rate_limit_minute"]),
                rate_limit_hour=int(raw["rate_limit_hour"]),
                daily_quota=int(raw["daily_quota"]), retention_days=int(raw["retention_days"]),
                project_dsn_id=int(raw["project_dsn_id"]),
                # Entries cached before the field existed stay readable (they expire in 10 min).
                account_id=str(raw.get("account_id", "")),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a cached key identity: {exc}") from exc

    def allows(self, scope: str) -> bool:
        """True when the key carries ``scope``."""
        return scope in self.scopes


# -- format -------------------------------------------------------------------------------------


def _random_token(nbytes: int) -> str:
    # Lowercase base32 (a-z, 2-7): url-safe, no '_', so the key splits unambiguously.
    return base64.b32encode(secrets.token_bytes(nbytes)).decode().rstrip("=").lower()


def new_key_id() -> str:
    """A fresh public key id: 12 lowercase base32 characters (60 random bits)."""
    return _random_token(8)[:KEY_ID_CHARS]


def new_secret() -> str:
    """A fresh secret: 32 random bytes as 52 lowercase base32 characters."""
    return _random_token(SECRET_BYTES)


def format_key(key_id: str, secret: str) -> str:
    """The full key handed to the user once."""
    return f"{PREFIX}_{key_id}_{secret}"


def display_prefix(key_id: str, secret: str) -> str:
    """What lists show in place of the key: enough to recognise it, useless to an attacker."""
    return f"{PREFIX}_{key_id}_{secret[:4]}…"


def parse_key(full_key: str) -> tuple[str, str]:
    """Split a full key into ``(key_id, secret)``.

    Raises:
        AuthenticationError: ``full_key`` is not of the form ``ledger_<id>_<secret>``.
    """
    match = _KEY.match(full_key.strip()) if isinstance(full_key, str) else None
    if match is None:
        raise AuthenticationError(MALFORMED)
    return match["key_id"], match["secret"]


def looks_like_key(text: str) -> bool:
    """True when ``text`` has the shape of a full key (a bearer token, a CLI argument)."""
    return _KEY.match(text.strip()) is not None


def key_digest(full_key: str) -> str:
    """SHA-256 of the whole key: the name of its cache entries."""
    return hashlib.sha256(full_key.strip().encode()).hexdigest()


def normalize_scopes(scopes: Iterable[str] | None) -> tuple[str, ...]:
    """Validated scopes in canonical order; None or empty means the default ones.

    Raises:
        InvalidInputError: a scope other than ``ingest``, ``read`` or ``triage``.
    """
    wanted = {s.strip().lower() for s in scopes or ()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise InvalidInputError(
            f"unknown scope {', '.join(map(repr, unknown))}: use any of {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in wanted) or DEFAULT_SCOPES


def _check_limit(name: str, value: int | None) -> int | None:
    if value is not None and value < 0:
        raise InvalidInputError(f"{name} must be 0 or more, got {value}")
    return value


# -- storage ------------------------------------------------------------------------------------

_COLUMNS = ("id, key_id, project_id, name, key_prefix, scopes, status, rate_limit_minute,"
            " rate_limit_hour, created_at, last_used_at, revoked_at")


def _row(r: dict[str, Any]) -> ApiKeyRow:
    return ApiKeyRow(
        id=str(r["id"]), key_id=r["key_id"], project_id=str(r["project_id"]), name=r["name"],
        key_prefix=r["key_prefix"], scopes=tuple(r["scopes"]), status=r["status"],
        rate_limit_minute=r["rate_limit_minute"], rate_limit_hour=r["rate_limit_hour"],
        created_at=r["created_at"], last_used_at=r["last_used_at"], revoked_at=r["revoked_at"],
    )


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFoundError(f"no {what} with id {value!r}: ids look like"
                            " 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") from None


async def create_key(
    conn: Conn,
    project_id: str,
    name: str = "",
    scopes: Iterable[str] | None = None,
    rate_limit_minute: int | None = None,
    rate_limit_hour: int | None = None,
) -> tuple[ApiKeyRow, str]:
    """Create a key for a project; return it and the full key, which is never shown again.

    Args:
        rate_limit_minute: The key's own limit; None to follow the project's.

    Raises:
        NotFoundError: no such project.
        InvalidInputError: unknown scope, negative limit or a name over 200 characters.
        ConflictError: the project has ``MAX_ACTIVE_KEYS_PER_PROJECT`` active keys already.
    """
    pid = _uuid(project_id, "project")
    canonical = normalize_scopes(scopes)
    name = name.strip()
    if len(name) > 200:
        raise InvalidInputError("an API key name must be at most 200 characters")
    _check_limit("rate_limit_minute", rate_limit_minute)
    _check_limit("rate_limit_hour", rate_limit_hour)
    secret = new_secret()
    secret_hash = await asyncio.to_thread(
        bcrypt.hashpw, secret.encode(), bcrypt.gensalt(KEY_BCRYPT_ROUNDS))
    for _ in range(3):  # a 60-bit key id collides about never; retry rather than fail if it does
        key_id = new_key_id()
        try:
            async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                await _check_room(cur, pid)
                await cur.execute(
                    f"INSERT INTO api_keys (id, key_id, project_id, name, secret_hash, key_prefix,"
                    f" scopes, rate_limit_minute, rate_limit_hour)"
                    f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                    (uuid7(), key_id, pid, name, secret_hash.decode(),
                     display_prefix(key_id, secret), list(canonical), rate_limit_minute,
                     rate_limit_hour),
                )
                row = await cur.fetchone()
        except psycopg.errors.UniqueViolation:
            continue
        except psycopg.errors.ForeignKeyViolation:
            raise NotFoundError(f"no project with id {project_id}: see `ledger projects list`"
                                ) from None
        assert row is not None
        return _row(row), format_key(key_id, secret)
    raise RuntimeError("could not draw a unique API key id")  # pragma: no cover


async def _check_room(cur: psycopg.AsyncCursor[Any], pid: uuid.UUID) -> None:
    """Refuse a key past ``MAX_ACTIVE_KEYS_PER_PROJECT``; the project row is locked until the
    insert commits, so concurrent creations cannot overshoot together."""
    await cur.execute("SELECT (SELECT count(*) FROM api_keys WHERE project_id = p.id"
                      " AND status = 'active') AS active FROM projects p WHERE p.id = %s"
                      " FOR UPDATE", (pid,))
    found = await cur.fetchone()
    if found is None:
        raise NotFoundError(f"no project with id {pid}: see `ledger projects list`")
    if int(found["active"]) >= MAX_ACTIVE_KEYS_PER_PROJECT:
        raise ConflictError(
            f"this project already has {MAX_ACTIVE_KEYS_PER_PROJECT} active API keys, the most"
            " it may have: revoke one it no longer needs first")


async def list_keys(conn: Conn, project_id: str) -> list[ApiKeyRow]:
    """Every key of a project, active and revoked, newest first."""
    pid = _uuid(project_id, "project")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE project_id = %s"
                          " ORDER BY created_at DESC, key_id", (pid,))
        return [_row(r) for r in await cur.fetchall()]


async def get_key(conn: Conn, key_id: str) -> ApiKeyRow:
    """The key with this public id.

    Raises:
        NotFoundError: no such key.
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = %s", (key_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no API key with id {key_id!r}: list them with"
                            " `ledger keys list --project <slug>`")
    return _row(row)


_KEY_ID_PREFIX = re.compile(r"^[a-z2-7]{6,32}$")


async def find_key(conn: Conn, text: str) -> ApiKeyRow:
    """The key that ``text`` names: a full key, a key id, or a unique prefix (6+) of a key id.

    Raises:
        InvalidInputError: ``text`` cannot be a key id, or several key ids start with it.
        NotFoundError: no key id starts with it.
    """
    cleaned = text.strip()
    key_id = parse_key(cleaned)[0] if looks_like_key(cleaned) else cleaned.lower()
    if not _KEY_ID_PREFIX.match(key_id):
        raise InvalidInputError(
            f"{cleaned[:64]!r} is not a valid key id: give the key id (as `ledger keys list`"
            " shows), its first 6 or more characters, or the full key")
    async with conn.cursor(row_factory=dict_row) as cur:
        # A scan, but of one small table, and only for commands an operator types.
        await cur.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE starts_with(key_id, %s)"
                          " ORDER BY key_id LIMIT 101", (key_id,))
        rows = await cur.fetchall()
    exact = [r for r in rows if r["key_id"] == key_id]
    if exact:
        return _row(exact[0])
    if not rows:
        raise NotFoundError(f"no API key with id {key_id!r}: list them with"
                            " `ledger keys list --project <slug>`")
    if len(rows) > 1:
        many = "100+" if len(rows) > 100 else str(len(rows))
        raise InvalidInputError(f"key id {key_id} is ambiguous: {many} matches;"
                                " give more characters")
    return _row(rows[0])


# -- validation ---------------------------------------------------------------------------------

_IDENTITY_SQL = """
SELECT k.id, k.secret_hash, k.scopes, k.status, k.last_used_at,
       coalesce(k.rate_limit_minute, p.rate_limit_minute) AS rate_limit_minute,
       coalesce(k.rate_limit_hour, p.rate_limit_hour) AS rate_limit_hour,
       p.id AS project_id, p.slug, p.name AS project_name, p.daily_quota, p.retention_days,
       p.dsn_id, p.account_id
FROM api_keys k JOIN projects p ON p.id = k.project_id
WHERE k.key_id = %s
"""


async def validate_key(conn: Conn, redis: aioredis.Redis, full_key: str) -> KeyIdentity:
    """Check a full key against the database and cache the result for the gateways.

    A cached identity is returned without touching the database. Otherwise the key id is
    looked up (O(1)); an unknown or revoked id is refused without running bcrypt; else bcrypt
    runs once in a worker thread.

    Raises:
        AuthenticationError: malformed, unknown, revoked or wrong key.
    """
    key_id, secret = parse_key(full_key)
    cached = await cached_identity(redis, full_key)
    if cached is not None:
        return cached
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_IDENTITY_SQL, (key_id,))
        row = await cur.fetchone()
    if row is None or row["status"] != "active":
        raise AuthenticationError(_REFUSED)
    ok = await asyncio.to_thread(bcrypt.checkpw, secret.encode(), row["secret_hash"].encode())
    if not ok:
        raise AuthenticationError(_REFUSED)
    identity = KeyIdentity(
        key_id=key_id, project_id=str(row["project_id"]), project_slug=row["slug"],
        project_name=row["project_name"], scopes=tuple(row["scopes"]),
        rate_limit_minute=row["rate_limit_minute"], rate_limit_hour=row["rate_limit_hour"],
        daily_quota=row["daily_quota"], retention_days=row["retention_days"],
        project_dsn_id=row["dsn_id"], account_id=str(row["account_id"]),
    )
    digest = key_digest(full_key)
    await _cache(redis, identity, digest)
    # A revocation that ran while bcrypt did may have purged the cache before we filled it:
    # look again now that the entries exist, and take them back if the key is gone.
    if await _revoked(conn, row["id"]):
        await purge_cache(redis, key_id)
        raise AuthenticationError(_REFUSED)
    await _touch(conn, row["id"], row["last_used_at"])
    return identity


async def _revoked(conn: Conn, row_id: uuid.UUID) -> bool:
    cur = await conn.execute("SELECT status FROM api_keys WHERE id = %s", (row_id,))
    found = await cur.fetchone()
    return found is None or found[0] != "active"


async def _touch(conn: Conn, row_id: uuid.UUID, last_used: datetime | None) -> None:
    if last_used is not None and datetime.now(UTC) - last_used < LAST_USED_RESOLUTION:
        return
    # The WHERE clause keeps N auth daemons from all writing the same minute.
    await conn.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE id = %s"
        " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", (row_id,))


async def _cache(redis: aioredis.Redis, identity: KeyIdentity, digest: str) -> None:
    key_id = identity.key_id
    payload = identity.to_json()
    index = bus.key_cache_index(key_id)
    # One MULTI on one hash slot ({key:<id>}): the entries and their index appear together.
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(bus.key_cache(key_id, digest), payload, ex=CACHE_TTL_SECONDS)
        pipe.set(bus.key_emergency(key_id, digest), payload, ex=EMERGENCY_TTL_SECONDS)
        pipe.sadd(index, digest)
        pipe.expire(index, EMERGENCY_TTL_SECONDS)
        await pipe.execute()


async def _lookup(redis: aioredis.Redis, full_key: str, *, emergency: bool) -> KeyIdentity | None:
    key_id, _ = parse_key(full_key)
    digest = key_digest(full_key)
    name = bus.key_emergency(key_id, digest) if emergency else bus.key_cache(key_id, digest)
    data = await redis.get(name)
    if data is None:
        return None
    try:
        return KeyIdentity.from_json(data)
    except ValueError:
        logger.warning("dropping an unreadable cache entry of API key %s", key_id)
        await redis.delete(name)
        return None


async def cached_identity(redis: aioredis.Redis, full_key: str) -> KeyIdentity | None:
    """The identity cached by a recent validation (5 min), or None.

    Raises:
        AuthenticationError: ``full_key`` is malformed (no need to ask the auth daemon).
    """
    return await _lookup(redis, full_key, emergency=False)


async def emergency_identity(redis: aioredis.Redis, full_key: str) -> KeyIdentity | None:
    """The emergency copy (10 min) to serve while the auth daemon is unreachable, or None.

    Raises:
        AuthenticationError: ``full_key`` is malformed.
    """
    return await _lookup(redis, full_key, emergency=True)


# -- revocation ---------------------------------------------------------------------------------


async def purge_cache(redis: aioredis.Redis, key_id: str) -> int:
    """Delete every cached entry of a key id; return how many digests were cached."""
    index = bus.key_cache_index(key_id)
    digests = [d.decode() if isinstance(d, bytes) else str(d)
               for d in await redis.smembers(index)]
    names = [index]
    for digest in digests:
        names += [bus.key_cache(key_id, digest), bus.key_emergency(key_id, digest)]
    await redis.delete(*names)
    return len(digests)


async def forget_keys(redis: aioredis.Redis, key_ids: Sequence[str]) -> None:
    """Drop cached identities (Redis and every gateway's memory) so the next check reloads them.

    Used when what an identity carries changed: a project's limits, quota or retention.
    """
    for key_id in key_ids:
        await purge_cache(redis, key_id)
        await redis.publish(bus.KEY_REVOKED_CHANNEL, key_id)


async def revoke_key(
    conn: Conn, redis: aioredis.Redis, key_id: str, *, project_id: str | None = None,
    account_id: str | None = None,
) -> ApiKeyRow:
    """Revoke a key: it stops working everywhere within a second. Revoking twice is harmless.

    Args:
        project_id: When given, the key must belong to this project (callers acting for an
            account pass it so that nobody revokes another project's key).
        account_id: When given, the key's project must belong to this account; checked in the
            same statement, so an account revokes a key without first finding its project.

    Raises:
        NotFoundError: no such key (in that project / among that account's projects). Another
            account's key is "not found" too, so key ids of others cannot be probed.
    """
    params: list[Any] = [key_id]
    scope = ""
    if project_id is not None:
        scope += " AND project_id = %s"
        params.append(_uuid(project_id, "project"))
    if account_id is not None:
        scope += " AND project_id IN (SELECT id FROM projects WHERE account_id = %s)"
        params.append(_uuid(account_id, "account"))
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE api_keys SET status = 'revoked', revoked_at = coalesce(revoked_at, now())"
            f" WHERE key_id = %s{scope} RETURNING {_COLUMNS}", params)
        row = await cur.fetchone()
    if row is None:
        where = (" in this project" if project_id else
                 " among your projects' keys" if account_id else "")
        raise NotFoundError(f"no API key with id {key_id[:64]!r}{where}"
                            ": list them with `ledger keys list --project <slug>`")
    await forget_keys(redis, [key_id])
    logger.info("revoked API key %s of project %s", key_id, row["project_id"])
    return _row(row)
