"""`ledger login` and `ledger logout`: an account session for the read commands.

Logged in, `ledger logs|errors|tail|top --project <slug>` reach every project of the account;
without a login they use an API key (``LEDGER_API_KEY``, ``--api-key`` or `ledger up`'s).
"""

from __future__ import annotations

from typing import Any

from ledger.cli import flags
from ledger.cli.context import load_settings
from ledger.cli.output import handle_errors, print_json, success
from ledger.errors import ConfigError


def _gateway_url(url: str | None) -> str:
    settings = load_settings(url=url)
    if not settings.url:
        raise ConfigError("no gateway URL: pass --url, set LEDGER_URL, or start the stack with"
                          " `ledger up` (its state is found in this folder or above)")
    return str(settings.url).rstrip("/")


def _post(url: str, path: str, body: dict[str, Any]) -> Any:
    import httpx

    from ledger.cli.api import TIMEOUT_SECONDS, error_from
    from ledger.errors import UnavailableError

    try:
        response = httpx.post(f"{url}{path}", json=body, timeout=TIMEOUT_SECONDS,
                              headers={"User-Agent": "ledger-cli"})
    except httpx.HTTPError as exc:
        raise UnavailableError(f"cannot reach the gateway at {url} ({exc}): is it running"
                               " (`ledger up`)? is LEDGER_URL right?") from exc
    if response.status_code >= 400:
        raise error_from(response)
    return response.json() if response.content else None


def login(
    email: str = flags.option("--email", ..., prompt=True, help="The account's e-mail."),
    password: str = flags.option("--password", ..., prompt=True, hide_input=True,
                                 help="The account's password (asked when left out)."),
    url: str | None = flags.option("--url"),
    json_output: bool = flags.option("--json", False),
) -> None:
    """Log in to the gateway as an account; read commands then reach all its projects.

    Tokens are kept in $XDG_CONFIG_HOME/ledger/credentials.json (~/.config/ledger by default),
    readable by you only. An API key (--api-key, LEDGER_API_KEY) still wins when given.
    """
    from ledger.cli import credentials

    with handle_errors():
        gateway = _gateway_url(url)
        tokens = _post(gateway, "/api/v1/accounts/login",
                       {"email": email.strip(), "password": password})
        saved = credentials.Login.from_tokens(gateway, email.strip(), tokens)
        path = credentials.save_login(saved)
        if json_output:
            print_json({"email": saved.email, "url": gateway, "credentials_file": str(path),
                        "refresh_expires_at": saved.refresh_expires_at})
            return
        success(f"logged in to {gateway} as {saved.email} (tokens in {path})")


def logout(
    url: str | None = flags.option("--url"),
    json_output: bool = flags.option("--json", False),
) -> None:
    """End the login of `ledger login` on this gateway and forget its tokens."""
    from ledger.cli import credentials
    from ledger.errors import LedgerError

    with handle_errors():
        gateway = _gateway_url(url)
        saved = credentials.saved_login(gateway)
        ended = False
        if saved is not None:
            try:
                _post(gateway, "/api/v1/accounts/logout",
                      {"refresh_token": saved.refresh_token})
                ended = True
            except LedgerError:
                pass  # expired or unreachable: forgetting the tokens is what matters here
            credentials.forget_login(gateway)
        if json_output:
            print_json({"url": gateway, "was_logged_in": saved is not None,
                        "session_ended": ended})
        elif saved is None:
            success(f"not logged in to {gateway}: nothing to do")
        else:
            success(f"logged out {saved.email} from {gateway}")
