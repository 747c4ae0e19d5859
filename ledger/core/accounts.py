"""Accounts: people who own projects, identified by email and a bcrypt-hashed password.

Emails are stored as given and compared lowercased (the unique index is on ``lower(email)``).
Login answers the same thing, after the same bcrypt work, whether the email exists or not, so
neither the message nor the timing tells an attacker which emails have accounts. Tokens (JWT,
refresh) are built on top of ``authenticate`` elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import bcrypt
import psycopg
from psycopg.rows import dict_row

from ledger.core.events import uuid7
from ledger.errors import AuthenticationError, ConflictError, InvalidInputError, NotFoundError

MIN_PASSWORD = 8
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further; longer would silently ignore the tail
MAX_NAME = 200
PASSWORD_BCRYPT_ROUNDS = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LOGIN_FAILED = "wrong email or password"

Conn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True)
class Account:
    """A stored account (never its password hash)."""

    id: str
    email: str
    name: str
    created_at: datetime
    updated_at: datetime


_COLUMNS = "id, email, name, created_at, updated_at"


def _row(r: dict[str, Any]) -> Account:
    return Account(id=str(r["id"]), email=r["email"], name=r["name"],
                   created_at=r["created_at"], updated_at=r["updated_at"])


def normalize_email(email: str) -> str:
    """Trimmed and lowercased.

    Raises:
        InvalidInputError: not an email address.
    """
    email = email.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise InvalidInputError(f"{email!r} is not an email address (like you@example.com)")
    return email


def check_password(password: str) -> bytes:
    """The password as bytes for bcrypt.

    Raises:
        InvalidInputError: shorter than 8 characters or longer than 72 bytes.
    """
    if len(password) < MIN_PASSWORD:
        raise InvalidInputError(f"the password is too short: use at least {MIN_PASSWORD}"
                                " characters")
    raw = password.encode()
    if len(raw) > MAX_PASSWORD_BYTES:
        raise InvalidInputError(f"the password is too long: use at most {MAX_PASSWORD_BYTES}"
                                " bytes")
    return raw


def _check_name(name: str) -> str:
    name = name.strip()
    if len(name) > MAX_NAME:
        raise InvalidInputError(f"a name must be at most {MAX_NAME} characters")
    return name


async def _hash(raw: bytes) -> str:
    hashed = await asyncio.to_thread(bcrypt.hashpw, raw, bcrypt.gensalt(PASSWORD_BCRYPT_ROUNDS))
    return hashed.decode()


async def _verify(raw: bytes, hashed: str) -> bool:
    return await asyncio.to_thread(bcrypt.checkpw, raw, hashed.encode())


@functools.cache
def _dummy_hash() -> str:
    # Same cost as a real hash, made once: unknown emails take as long as wrong passwords.
    return bcrypt.hashpw(b"ledger-no-such-account", bcrypt.gensalt(PASSWORD_BCRYPT_ROUNDS)).decode()


async def register(conn: Conn, email: str, password: str, name: str = "") -> Account:
    """Create an account.

    Raises:
        InvalidInputError: bad email, name or password.
        ConflictError: an account with this email exists.
    """
    email = normalize_email(email)
    name = _check_name(name)
    hashed = await _hash(check_password(password))
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"INSERT INTO accounts (id, email, name, password_hash) VALUES (%s, %s, %s, %s)"
                f" RETURNING {_COLUMNS}", (uuid7(), email, name, hashed))
            row = await cur.fetchone()
    except psycopg.errors.UniqueViolation:
        raise ConflictError(f"an account with email {email} already exists:"
                            " log in, or register another email") from None
    assert row is not None
    return _row(row)


async def authenticate(conn: Conn, email: str, password: str) -> Account:
    """The account with this email and password.

    Raises:
        AuthenticationError: wrong email or password (the same message for both).
    """
    try:
        email = normalize_email(email)
    except InvalidInputError:
        email = ""
    raw = password.encode()
    # bcrypt 5 refuses over 72 bytes; no stored password is longer, so such a login fails,
    # after the same work as any other.
    too_long = len(raw) > MAX_PASSWORD_BYTES
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS}, password_hash FROM accounts"
                          " WHERE lower(email) = %s", (email,))
        row = await cur.fetchone()
    hashed = row["password_hash"] if row else await asyncio.to_thread(_dummy_hash)
    ok = await _verify(raw[:MAX_PASSWORD_BYTES], hashed)
    if row is None or too_long or not ok:
        raise AuthenticationError(_LOGIN_FAILED)
    return _row(row)


async def get_account(conn: Conn, account_id: str) -> Account:
    """The account with this id.

    Raises:
        NotFoundError: no such account.
    """
    try:
        aid = uuid.UUID(str(account_id))
    except ValueError:
        raise NotFoundError(f"no account with id {account_id!r}") from None
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM accounts WHERE id = %s", (aid,))
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no account with id {account_id}: see `ledger accounts list`")
    return _row(row)


async def get_account_by_email(conn: Conn, email: str) -> Account:
    """The account with this email (any case).

    Raises:
        NotFoundError: no such account.
    """
    normalized = email.strip().lower()
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM accounts WHERE lower(email) = %s",
                          (normalized,))
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no account with email {normalized}: create it with"
                            " `ledger accounts create`")
    return _row(row)


async def list_accounts(conn: Conn) -> list[Account]:
    """Every account, by email."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM accounts ORDER BY lower(email)")
        return [_row(r) for r in await cur.fetchall()]


async def rename_account(conn: Conn, account_id: str, name: str) -> Account:
    """Change an account's display name.

    Raises:
        NotFoundError: no such account.
        InvalidInputError: the name is too long.
    """
    account = await get_account(conn, account_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"UPDATE accounts SET name = %s, updated_at = now() WHERE id = %s"
                          f" RETURNING {_COLUMNS}", (_check_name(name), uuid.UUID(account.id)))
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no account with id {account_id}")
    return _row(row)


async def change_password(
    conn: Conn, account_id: str, current_password: str, new_password: str
) -> Account:
    """Replace an account's password after checking the current one.

    Raises:
        AuthenticationError: the current password is wrong.
        InvalidInputError: the new password is too short or too long.
        NotFoundError: no such account.
    """
    new_raw = check_password(new_password)
    account = await get_account(conn, account_id)
    cur = await conn.execute("SELECT password_hash FROM accounts WHERE id = %s",
                             (uuid.UUID(account.id),))
    found = await cur.fetchone()
    if found is None:
        raise NotFoundError(f"no account with id {account_id}")
    if not await _verify(current_password.encode()[:MAX_PASSWORD_BYTES], str(found[0])):
        raise AuthenticationError("the current password is wrong")
    hashed = await _hash(new_raw)
    # Sessions (refresh tokens) are revoked by the token layer when it changes a password.
    await conn.execute("UPDATE accounts SET password_hash = %s, updated_at = now()"
                       " WHERE id = %s", (hashed, uuid.UUID(account.id)))
    return await get_account(conn, account.id)
