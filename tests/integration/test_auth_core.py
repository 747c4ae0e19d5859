"""Accounts, projects and API keys against a real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import bcrypt
import psycopg
import pytest
import redis.asyncio as aioredis

from ledger import bus
from ledger.config import Settings
from ledger.core import accounts, api_keys, bootstrap, projects
from ledger.core.accounts import Account
from ledger.core.projects import Project, ProjectDefaults
from ledger.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from tests.redis_claims import ledger_keys
from tests.waiting import wait_until

Conn = psycopg.AsyncConnection[Any]


@pytest.fixture
async def conn(auth_db_url: str) -> AsyncIterator[Conn]:
    connection = await psycopg.AsyncConnection.connect(auth_db_url, autocommit=True)
    yield connection
    await connection.close()


@pytest.fixture
async def account(conn: Conn) -> Account:
    return await accounts.register(conn, "Owner@Example.com", "correct horse", "Owner")


@pytest.fixture
async def project(conn: Conn, account: Account) -> Project:
    return await projects.create_project(
        conn, account_id=account.id, name="Shop API", slug="shop",
        defaults=ProjectDefaults(retention_days=30, daily_quota=5000, rate_limit_minute=60,
                                 rate_limit_hour=600))


# -- API keys -----------------------------------------------------------------------------------


async def test_created_key_validates_and_is_cached_under_its_digest(
    conn: Conn, aredis: aioredis.Redis, project: Project
) -> None:
    row, full_key = await api_keys.create_key(conn, project.id, "web")
    key_id, secret = api_keys.parse_key(full_key)
    assert row.key_id == key_id and row.status == "active"
    assert row.scopes == ("ingest", "read")
    assert row.key_prefix == f"ledger_{key_id}_{secret[:4]}…"
    stored = await (await conn.execute("SELECT secret_hash FROM api_keys")).fetchone()
    assert stored is not None and secret not in str(stored[0])

    identity = await api_keys.validate_key(conn, aredis, full_key)
    assert identity == api_keys.KeyIdentity(
        key_id=key_id, project_id=project.id, project_slug="shop", project_name="Shop API",
        scopes=("ingest", "read"), rate_limit_minute=60, rate_limit_hour=600, daily_quota=5000,
        retention_days=30, project_dsn_id=project.dsn_id, account_id=project.account_id)
    assert project.dsn_id > 0  # numbered by the sequence of migration 0002

    digest = api_keys.key_digest(full_key)
    assert 290 < await aredis.ttl(bus.key_cache(key_id, digest)) <= 300
    assert 590 < await aredis.ttl(bus.key_emergency(key_id, digest)) <= 600
    assert await aredis.smembers(bus.key_cache_index(key_id)) == {digest.encode()}
    assert await aredis.ttl(bus.key_cache_index(key_id)) > 0
    all_keys = [k.decode() for k in await ledger_keys(aredis)]
    assert not any(secret in k for k in all_keys)  # the key itself is never a Redis name

    assert await api_keys.cached_identity(aredis, full_key) == identity
    assert await api_keys.emergency_identity(aredis, full_key) == identity
    other = api_keys.format_key(key_id, api_keys.new_secret())
    assert await api_keys.cached_identity(aredis, other) is None


async def test_last_used_is_written_at_most_once_a_minute(
    conn: Conn, aredis: aioredis.Redis, project: Project
) -> None:
    row, full_key = await api_keys.create_key(conn, project.id)
    assert row.last_used_at is None
    await api_keys.validate_key(conn, aredis, full_key)
    first = (await api_keys.get_key(conn, row.key_id)).last_used_at
    assert first is not None
    await api_keys.purge_cache(aredis, row.key_id)  # force a database check again
    await api_keys.validate_key(conn, aredis, full_key)
    assert (await api_keys.get_key(conn, row.key_id)).last_used_at == first


def _count_checkpw(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record the hash of every bcrypt check from here on (the real check still runs)."""
    checked: list[bytes] = []
    real = bcrypt.checkpw

    def checkpw(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", checkpw)
    return checked


async def test_unknown_key_id_is_refused_without_bcrypt(
    conn: Conn, aredis: aioredis.Redis, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, full_key = await api_keys.create_key(conn, project.id)
    checked = _count_checkpw(monkeypatch)
    unknown = api_keys.format_key(api_keys.new_key_id(), api_keys.new_secret())
    with pytest.raises(AuthenticationError, match="does not exist"):
        await api_keys.validate_key(conn, aredis, unknown)
    assert checked == []  # refused on the id alone
    await api_keys.validate_key(conn, aredis, full_key)
    assert len(checked) == 1  # the spy sees the checks a known key pays for


async def test_wrong_secret_and_malformed_keys_are_refused(
    conn: Conn, aredis: aioredis.Redis, project: Project
) -> None:
    row, _ = await api_keys.create_key(conn, project.id)
    wrong = api_keys.format_key(row.key_id, api_keys.new_secret())
    with pytest.raises(AuthenticationError, match="invalid API key"):
        await api_keys.validate_key(conn, aredis, wrong)
    assert await ledger_keys(aredis) == []  # nothing cached for a failure
    with pytest.raises(AuthenticationError, match="malformed"):
        await api_keys.validate_key(conn, aredis, "ledger_nope")
    with pytest.raises(AuthenticationError, match="malformed"):
        await api_keys.cached_identity(aredis, "not-a-key")


async def test_revoke_clears_every_cache_and_tells_gateways(
    conn: Conn, aredis: aioredis.Redis, redis_url: str, project: Project
) -> None:
    row, full_key = await api_keys.create_key(conn, project.id)
    await api_keys.validate_key(conn, aredis, full_key)
    subscriber = aioredis.Redis.from_url(redis_url)
    pubsub = subscriber.pubsub()
    await pubsub.subscribe(bus.KEY_REVOKED_CHANNEL)
    try:
        revoked = await api_keys.revoke_key(conn, aredis, row.key_id)
        message: Any = await wait_until(
            lambda: pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2),
            "the revocation was published")
    finally:
        await pubsub.aclose()
        await subscriber.aclose()
    assert message is not None and message["data"] == row.key_id.encode()
    assert revoked.status == "revoked" and revoked.revoked_at is not None
    assert await ledger_keys(aredis) == []
    assert await api_keys.cached_identity(aredis, full_key) is None
    assert await api_keys.emergency_identity(aredis, full_key) is None
    with pytest.raises(AuthenticationError):
        await api_keys.validate_key(conn, aredis, full_key)
    again = await api_keys.revoke_key(conn, aredis, row.key_id)  # idempotent
    assert again.revoked_at == revoked.revoked_at


async def test_revoke_unknown_or_other_projects_key_is_not_found(
    conn: Conn, aredis: aioredis.Redis, account: Account, project: Project
) -> None:
    with pytest.raises(NotFoundError, match="no API key"):
        await api_keys.revoke_key(conn, aredis, "abcdef234567")
    other = await projects.create_project(conn, account_id=account.id, name="Other")
    row, full_key = await api_keys.create_key(conn, project.id)
    with pytest.raises(NotFoundError, match="in this project"):
        await api_keys.revoke_key(conn, aredis, row.key_id, project_id=other.id)
    stranger = await accounts.register(conn, "stranger@example.com", "correct horse", "S")
    with pytest.raises(NotFoundError, match="among your projects"):
        await api_keys.revoke_key(conn, aredis, row.key_id, account_id=stranger.id)
    await api_keys.validate_key(conn, aredis, full_key)  # still valid
    owned = await api_keys.revoke_key(conn, aredis, row.key_id, account_id=account.id)
    assert owned.status == "revoked"


async def test_scopes_and_own_limits(
    conn: Conn, aredis: aioredis.Redis, project: Project
) -> None:
    row, full_key = await api_keys.create_key(conn, project.id, "sdk", ["ingest"],
                                              rate_limit_minute=5)
    assert row.scopes == ("ingest",)
    identity = await api_keys.validate_key(conn, aredis, full_key)
    assert identity.scopes == ("ingest",) and not identity.allows("read")
    assert (identity.rate_limit_minute, identity.rate_limit_hour) == (5, 600)
    with pytest.raises(InvalidInputError, match="unknown scope 'write'"):
        await api_keys.create_key(conn, project.id, scopes=["write"])
    with pytest.raises(InvalidInputError, match="0 or more"):
        await api_keys.create_key(conn, project.id, rate_limit_hour=-1)
    with pytest.raises(NotFoundError, match="no project"):
        await api_keys.create_key(conn, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
    with pytest.raises(NotFoundError, match="no project"):
        await api_keys.create_key(conn, "shop")  # a slug is not an id here


async def test_list_keys_newest_first_with_revoked(
    conn: Conn, aredis: aioredis.Redis, project: Project
) -> None:
    first, _ = await api_keys.create_key(conn, project.id, "one")
    second, _ = await api_keys.create_key(conn, project.id, "two")
    await api_keys.revoke_key(conn, aredis, first.key_id)
    listed = await api_keys.list_keys(conn, project.id)
    assert [k.name for k in listed] == ["two", "one"]
    assert [k.status for k in listed] == ["active", "revoked"]
    assert listed[0] == second


# -- projects -----------------------------------------------------------------------------------


async def test_project_defaults_lookup_and_duplicate_slug(
    conn: Conn, account: Account, project: Project
) -> None:
    assert (project.retention_days, project.daily_quota) == (30, 5000)
    assert project.environment == "production"
    assert await projects.get_project(conn, "shop") == project
    assert await projects.get_project(conn, project.id) == project
    with pytest.raises(ConflictError, match="project slug 'shop' is taken: choose another --slug"):
        await projects.create_project(conn, account_id=account.id, name="Shop 2", slug="shop")
    with pytest.raises(NotFoundError, match="no project 'nope'"):
        await projects.get_project(conn, "nope")
    with pytest.raises(NotFoundError):
        await projects.get_project(conn, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")


@pytest.mark.parametrize("slug", ["Shop", "shop api", "shop_api", "", "x" * 65, "ünï"])
async def test_invalid_slug_is_refused(conn: Conn, slug: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid project slug"):
        await projects.create_project(conn, account_id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                                      name="X", slug=slug)


async def test_slug_derived_from_name_and_listing_by_account(
    conn: Conn, account: Account, project: Project
) -> None:
    derived = await projects.create_project(conn, account_id=account.id, name="  My API v2! ",
                                            environment="staging")
    assert (derived.slug, derived.name, derived.environment) == ("my-api-v2", "My API v2!",
                                                                 "staging")
    stranger = await accounts.register(conn, "stranger@example.com", "password123")
    theirs = await projects.create_project(conn, account_id=stranger.id, name="Theirs")
    assert [p.slug for p in await projects.list_projects(conn)] == ["my-api-v2", "shop",
                                                                    "theirs"]
    assert [p.slug for p in await projects.list_projects(conn, account.id)] == ["my-api-v2",
                                                                               "shop"]
    assert await projects.list_projects(conn, stranger.id) == [theirs]
    with pytest.raises(NotFoundError, match="no account"):
        await projects.create_project(conn, account_id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                                      name="Orphan")


async def test_update_project_changes_limits_and_drops_cached_identities(
    conn: Conn, aredis: aioredis.Redis, project: Project
) -> None:
    _, full_key = await api_keys.create_key(conn, project.id)
    before = await api_keys.validate_key(conn, aredis, full_key)
    updated = await projects.update_project(conn, aredis, "shop", retention_days=7,
                                            rate_limit_minute=120, name="Shop")
    assert (updated.retention_days, updated.rate_limit_minute, updated.name) == (7, 120, "Shop")
    assert updated.daily_quota == project.daily_quota  # untouched
    assert updated.updated_at > project.updated_at
    assert await api_keys.cached_identity(aredis, full_key) is None
    after = await api_keys.validate_key(conn, aredis, full_key)
    assert (before.retention_days, after.retention_days) == (30, 7)
    assert (after.rate_limit_minute, after.project_name) == (120, "Shop")
    with pytest.raises(InvalidInputError, match="retention_days must be at least 1"):
        await projects.update_project(conn, aredis, project.id, retention_days=0)
    with pytest.raises(NotFoundError):
        await projects.update_project(conn, aredis, "nope", name="x")


# -- accounts -----------------------------------------------------------------------------------


async def test_register_normalises_email_and_refuses_duplicates(
    conn: Conn, account: Account
) -> None:
    assert account.email == "owner@example.com" and account.name == "Owner"
    with pytest.raises(ConflictError, match="already exists"):
        await accounts.register(conn, " OWNER@example.COM ", "another password")
    with pytest.raises(InvalidInputError, match="at least 8"):
        await accounts.register(conn, "new@example.com", "short")
    with pytest.raises(InvalidInputError, match="not an email"):
        await accounts.register(conn, "not-an-email", "long enough")
    assert await accounts.get_account_by_email(conn, "OWNER@EXAMPLE.COM") == account
    assert await accounts.get_account(conn, account.id) == account
    assert await accounts.list_accounts(conn) == [account]


async def test_authenticate_says_the_same_for_unknown_email_and_wrong_password(
    conn: Conn, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await accounts.authenticate(conn, "owner@EXAMPLE.com", "correct horse") == account
    checked = _count_checkpw(monkeypatch)
    messages = []
    for email, password in [("owner@example.com", "wrong horse"),
                            ("nobody@example.com", "correct horse"),
                            ("owner@example.com", "correct horse" + "x" * 80)]:
        with pytest.raises(AuthenticationError) as caught:
            await accounts.authenticate(conn, email, password)
        messages.append(caught.value.message)
    assert len(set(messages)) == 1
    # Every attempt paid for one bcrypt check, the unknown email too, at the same cost (the
    # "$2b$<rounds>$" prefix) as a real password's.
    assert len(checked) == 3
    assert len({hashed[:7] for hashed in checked}) == 1
    assert checked[1] != checked[0]  # a stand-in hash, not the account's


async def test_rename_and_change_password(conn: Conn, account: Account) -> None:
    renamed = await accounts.rename_account(conn, account.id, "  New Name ")
    assert renamed.name == "New Name" and renamed.updated_at > account.updated_at
    with pytest.raises(AuthenticationError, match="current password is wrong"):
        await accounts.change_password(conn, account.id, "nope nope", "brand new pass")
    with pytest.raises(InvalidInputError, match="at least 8"):
        await accounts.change_password(conn, account.id, "correct horse", "short")
    await accounts.change_password(conn, account.id, "correct horse", "brand new pass")
    with pytest.raises(AuthenticationError):
        await accounts.authenticate(conn, account.email, "correct horse")
    assert (await accounts.authenticate(conn, account.email, "brand new pass")).id == account.id
    with pytest.raises(NotFoundError):
        await accounts.get_account(conn, "not-a-uuid")


# -- bootstrap ----------------------------------------------------------------------------------


async def test_default_setup_creates_once_then_returns_existing(
    conn: Conn, aredis: aioredis.Redis, auth_db_url: str, redis_url: str
) -> None:
    settings = Settings(auth_database_url=auth_db_url, redis_url=redis_url,
                        auth_retention_days=14)
    first = await bootstrap.ensure_default_setup(settings)
    assert first.account.email == "admin@ledger.local"
    assert first.project.slug == "default" and first.project.retention_days == 14
    assert first.full_key is not None and first.password is not None
    assert (await accounts.authenticate(conn, "admin@ledger.local", first.password)).id == \
        first.account.id
    identity = await api_keys.validate_key(conn, aredis, first.full_key)
    assert identity.project_slug == "default"

    again = await bootstrap.ensure_default_setup(settings)
    assert (again.account, again.project) == (first.account, first.project)
    assert again.full_key is None and again.password is None

    # The default key was revoked by hand: the next `ledger up` makes a new one.
    await api_keys.revoke_key(conn, aredis, identity.key_id)
    third = await bootstrap.ensure_default_setup(settings)
    assert third.full_key is not None and third.full_key != first.full_key
    assert third.password is None


async def test_concurrent_validations_of_one_key_agree(
    conn: Conn, aredis: aioredis.Redis, auth_db_url: str, project: Project
) -> None:
    _, full_key = await api_keys.create_key(conn, project.id)
    others = [await psycopg.AsyncConnection.connect(auth_db_url, autocommit=True)
              for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(api_keys.validate_key(c, aredis, full_key) for c in others))
    finally:
        for c in others:
            await c.close()
    assert len(set(results)) == 1
