"""Which credential a client command sends, and the login that `ledger login` keeps.

A command reaches the gateway with, in this order: ``--api-key``; ``LEDGER_API_KEY``; the
account login saved by `ledger login` for that gateway; the default key `ledger up` saved. A key
reads only its own project; a login reads every project of its account (``--project``). Every
refusal names the credential that was used, so "not found" never hides "wrong key".

Logins live in ``<user config dir>/credentials.json`` (mode 0600, one entry per gateway URL):
the account's e-mail, its short-lived access token and the rotating refresh token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ledger.config import Settings, user_config_dir

CREDENTIALS_FILE = "credentials.json"
#: Refresh this long before the access token expires, so that a request never carries a
#: token that dies on the way.
REFRESH_MARGIN = timedelta(seconds=30)


@dataclass(frozen=True)
class Login:
    """An account session for one gateway."""

    url: str
    email: str
    access_token: str
    access_expires_at: str
    refresh_token: str
    refresh_expires_at: str

    def access_is_fresh(self, now: datetime | None = None) -> bool:
        try:
            expires = datetime.fromisoformat(self.access_expires_at)
        except ValueError:
            return False
        return (now or datetime.now(UTC)) + REFRESH_MARGIN < expires

    @classmethod
    def from_tokens(cls, url: str, email: str, tokens: dict[str, Any]) -> Login:
        """A login from the gateway's token answer (``/accounts/login`` or ``/refresh``)."""
        return cls(url=url, email=email, access_token=str(tokens["access_token"]),
                   access_expires_at=str(tokens["access_expires_at"]),
                   refresh_token=str(tokens["refresh_token"]),
                   refresh_expires_at=str(tokens["refresh_expires_at"]))


@dataclass(frozen=True)
class Credential:
    """What a request carries, and how to name it in an error message."""

    headers: dict[str, str]
    describes: str
    login: Login | None = None

    @property
    def is_key(self) -> bool:
        return self.login is None


def credentials_path() -> Path:
    return user_config_dir() / CREDENTIALS_FILE


def _normalised(url: str) -> str:
    return url.rstrip("/")


def _load_all() -> dict[str, Any]:
    try:
        data = orjson.loads(credentials_path().read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_all(data: dict[str, Any]) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    # Created 0600 from the start: the tokens are never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def saved_login(url: str) -> Login | None:
    """The login saved for the gateway at ``url``, if any."""
    entry = _load_all().get("logins", {}).get(_normalised(url))
    if not isinstance(entry, dict):
        return None
    try:
        return Login(**{k: str(entry[k]) for k in Login.__dataclass_fields__})
    except KeyError:
        return None


def save_login(login: Login) -> Path:
    """Keep ``login`` (replacing the one of the same gateway); the file's path."""
    data = _load_all()
    logins = data.get("logins") if isinstance(data.get("logins"), dict) else {}
    assert isinstance(logins, dict)
    logins[_normalised(login.url)] = {k: getattr(login, k) for k in Login.__dataclass_fields__}
    data["logins"] = logins
    return _save_all(data)


def forget_login(url: str) -> bool:
    """Drop the login of the gateway at ``url``; whether there was one."""
    data = _load_all()
    logins = data.get("logins")
    if not isinstance(logins, dict) or _normalised(url) not in logins:
        return False
    del logins[_normalised(url)]
    _save_all(data)
    return True


def key_id_of(key: str) -> str:
    """The public key id of a full key, for messages (never the secret)."""
    parts = key.split("_")
    return parts[1] if len(parts) >= 3 and parts[0] == "ledger" else "?"


def pick(settings: Settings, *, api_key_flag: str | None = None) -> Credential | None:
    """The credential a command sends to ``settings.url``, by the precedence above."""
    env_key = Settings.from_env().api_key
    if api_key_flag:
        return _key(api_key_flag, "given with --api-key")
    if env_key:
        return _key(str(env_key), "from LEDGER_API_KEY")
    if settings.url:
        login = saved_login(str(settings.url))
        if login is not None:
            return Credential({"Authorization": f"Bearer {login.access_token}"},
                              f"the login of {login.email} (`ledger login`)", login)
    if settings.api_key:
        return _key(str(settings.api_key), "saved by `ledger up`")
    return None


def _key(key: str, origin: str) -> Credential:
    return Credential({"X-API-Key": key}, f"the API key {key_id_of(key)} ({origin})")


def with_login(credential: Credential, login: Login) -> Credential:
    """``credential`` after a refresh: the new access token."""
    return Credential({"Authorization": f"Bearer {login.access_token}"}, credential.describes,
                      login)


def refresh(credential: Credential, *, force: bool = False) -> Credential:
    """``credential`` with a fresh access token (a key, or a fresh login, as it is).

    The refresh token rotates: the new pair is saved at once, or the next command would
    present a refresh token already used.

    Raises:
        AuthenticationError: the login expired or was ended (log in again).
        UnavailableError: the gateway cannot be reached.
    """
    import httpx

    from ledger.cli.api import TIMEOUT_SECONDS, error_from
    from ledger.errors import AuthenticationError, UnavailableError

    login = credential.login
    if login is None or (login.access_is_fresh() and not force):
        return credential
    try:
        response = httpx.post(f"{login.url}/api/v1/accounts/refresh", timeout=TIMEOUT_SECONDS,
                              json={"refresh_token": login.refresh_token},
                              headers={"User-Agent": "ledger-cli"})
    except httpx.HTTPError as exc:
        raise UnavailableError(f"cannot reach the gateway at {login.url} ({exc}): is it"
                               " running (`ledger up`)?") from exc
    if response.status_code in (400, 401, 403):
        raise AuthenticationError(f"the login of {login.email} at {login.url} has expired or"
                                  " was ended: run `ledger login` again")
    if response.status_code >= 400:
        raise error_from(response)
    renewed = Login.from_tokens(login.url, login.email, response.json())
    save_login(renewed)
    return with_login(credential, renewed)
