"""Settings for a CLI command: environment first, then what a running `ledger up` saved.

`ledger up` writes ``<data dir>/state.json`` (URLs of its databases and Redis, the internal token,
the gateway URL and the default project's key) so that `ledger keys …` or `ledger tail` work with
no flags. Environment variables always win over the saved state.

The state is found like git finds ``.git``: ``LEDGER_DATA_DIR`` when set, else the first
``.ledger/state.json`` in the current folder or one of its parents.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ledger.config import Settings

STATE_FILE = "state.json"
_STATE_FIELDS = ("auth_database_url", "logs_database_url", "redis_url", "internal_token",
                 "url", "api_key")


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def load_state(data_dir: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(state_path(data_dir).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def save_state(data_dir: Path, **values: Any) -> None:
    """Merge ``values`` into the state file (0600: it holds a key and the internal token)."""
    replace_state(data_dir, load_state(data_dir) | {k: v for k, v in values.items()
                                                    if v is not None})


def replace_state(data_dir: Path, state: dict[str, Any]) -> None:
    """Write ``state`` as the whole state file, atomically."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = state_path(data_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2, default=str))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def find_data_dir(settings: Settings, start: Path | None = None) -> Path:
    """``settings.data_dir`` when set; else the nearest ``.ledger`` holding a state, upwards."""
    default = Settings().data_dir
    if settings.data_dir != default:
        return settings.data_dir
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if state_path(folder / default).is_file():
            return folder / default
    return settings.data_dir


def load_settings(**flags: Any) -> Settings:
    """Settings from flags, then ``LEDGER_*`` variables, then the state of a local `ledger up`."""
    settings = Settings.from_env()
    settings.warn_unknown()
    data_dir = flags.pop("data_dir", None) or find_data_dir(settings)
    state = load_state(data_dir)
    fallback = {k: state.get(k) for k in _STATE_FIELDS if getattr(settings, k) in (None, "")}
    return settings.with_overrides(data_dir=data_dir, **fallback).with_overrides(**flags)


@contextlib.contextmanager
def reaching_the_stack() -> Iterator[None]:
    """Commands that talk to PostgreSQL or Redis directly: "cannot connect" says what to do.

    Without a running stack the saved state still names its (gone) servers; the socket
    error alone does not tell a newcomer that `ledger up` is what is missing.
    """
    from ledger.errors import UnavailableError

    try:
        yield
    except UnavailableError as exc:
        if not exc.message.startswith("cannot connect to"):
            raise
        reason = exc.message.removesuffix(" (is it running? is the URL right?)")
        raise UnavailableError(
            f"the stack is not reachable ({reason}): start it with `ledger up`, or point"
            " LEDGER_AUTH_DATABASE_URL, LEDGER_LOGS_DATABASE_URL and LEDGER_REDIS_URL at"
            " running servers") from exc
