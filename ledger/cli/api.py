"""The REST client of commands that talk to a running gateway (`ledger logs`, `ledger errors`).

They use ``LEDGER_URL`` and a credential (``credentials.py``: a key, or the login of
`ledger login`), and turn every HTTP failure back into the ``LedgerError`` it stands for, so
that ``handle_errors`` prints one line naming the flags, not the API's parameters.
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ledger.config import Settings
from ledger.errors import (
    BY_CODE,
    AuthenticationError,
    ConfigError,
    InvalidInputError,
    LedgerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnavailableError,
)

if TYPE_CHECKING:
    import httpx

_BY_STATUS: dict[int, type[LedgerError]] = {
    400: InvalidInputError, 401: AuthenticationError, 403: PermissionDeniedError,
    404: NotFoundError, 422: InvalidInputError, 429: RateLimitedError, 503: UnavailableError,
}
TIMEOUT_SECONDS = 15.0


def error_from(response: httpx.Response) -> LedgerError:
    """The ``LedgerError`` an error answer stands for, with the gateway's ``detail``."""
    try:
        body = response.json()
        detail = body.get("detail") if isinstance(body, dict) else None
    except ValueError:
        detail = None
    message = str(detail) if detail else f"the gateway answered HTTP {response.status_code}"
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = BY_CODE["unavailable"] if response.status_code >= 500 else LedgerError
    retry = response.headers.get("Retry-After")
    return cls(message, retry_after=int(retry) if retry and retry.isdigit() else None)


#: API parameters as the CLI spells them, so that a 400 names the flag that was typed.
FLAG_OF_PARAMETER = {"periodFrom": "--from", "periodTo": "--to", "project_id": "--project",
                     "log_type": "--type", "environment": "--env", "release": "--release",
                     "error_fingerprint": "--fingerprint", "level": "--level",
                     "search": "--search", "limit": "--limit", "cursor": "--cursor",
                     "period": "--period", "status": "--status", "sort": "--sort"}
_PARAMETER = re.compile(r"(?<![\w-])(" + "|".join(FLAG_OF_PARAMETER) + r")(?![\w-])")


def in_cli_words(message: str) -> str:
    """``message`` with API parameter names replaced by the flags that set them."""
    message = message.replace("pass project_id=<id or slug>", "pass --project <slug>")
    return _PARAMETER.sub(lambda m: FLAG_OF_PARAMETER[m[1]], message)


class GatewayClient:
    """A synchronous client for one gateway and one credential (use as a context manager).

    The credential is an API key or the login of `ledger login` (see ``credentials.py``); an
    expired access token is refreshed on the way, and a refusal names what was sent.
    """

    def __init__(self, settings: Settings, *, api_key: str | None = None,
                 parameters_are_flags: bool = True) -> None:
        import httpx

        from ledger.cli import credentials

        if not settings.url:
            raise ConfigError("LEDGER_URL is not set and no `ledger up` state was found in this"
                              " folder or above: start the stack with `ledger up`, point"
                              " LEDGER_DATA_DIR at its data folder, or set LEDGER_URL")
        found = credentials.pick(settings, api_key_flag=api_key)
        if found is None:
            raise ConfigError("no credential: run `ledger login`, or set LEDGER_API_KEY to a key"
                              " with the read scope (`ledger keys create --project <slug>"
                              " --scope read`)")
        self.credential = found
        self.url = str(settings.url).rstrip("/")
        self._flags = parameters_are_flags
        self._http = httpx.Client(base_url=self.url, timeout=TIMEOUT_SECONDS,
                                  headers={"User-Agent": "ledger-cli"})

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json: Any = None) -> Any:
        """Send one request; return its JSON, or raise the ``LedgerError`` of the failure."""
        if self.credential.login is not None and not self.credential.login.access_is_fresh():
            self._refresh()
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "", [], ())}
        response = self._send(method, path, params=clean, json=json)
        if response.status_code == 401 and self.credential.login is not None:
            self._refresh()  # revoked or expired early (a clock step): one more try
            response = self._send(method, path, params=clean, json=json)
        if response.status_code >= 400:
            raise self._refusal(response, asked_project="project_id" in clean)
        return response.json() if response.content else None

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            return self._http.request(method, path, headers=self.credential.headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise UnavailableError(f"the gateway at {self.url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise UnavailableError(f"cannot reach the gateway at {self.url} ({exc}):"
                                   " is it running (`ledger up`)? is LEDGER_URL right?") from exc

    def _refresh(self) -> None:
        from ledger.cli import credentials

        self.credential = credentials.refresh(self.credential, force=True)

    def _refusal(self, response: httpx.Response, *, asked_project: bool) -> LedgerError:
        error = error_from(response)
        message = in_cli_words(error.message) if self._flags else error.message
        refused = response.status_code in (401, 403) or (
            response.status_code == 404 and asked_project and "project" in message)
        if refused:
            message += f" (sent {self._who()}"
            if self.credential.is_key and response.status_code == 404:
                message += ("; a key reads only its own project: `ledger login` reaches every"
                            " project of your account, or pass --api-key with a key of that one")
            message += ")"
        return type(error)(message, retry_after=error.retry_after)

    def _who(self) -> str:
        """The credential in use; for a key, the project it belongs to (one extra request)."""
        import httpx

        if not self.credential.is_key:
            return self.credential.describes
        try:
            answer = self._http.get("/api/v1/settings", headers=self.credential.headers)
            slug = answer.json().get("project_slug") if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            slug = None  # naming the project is a courtesy: the refusal stands without it
        return self.credential.describes + (f", a key of project {slug}" if slug else "")

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` with query ``params`` (``None`` values are left out)."""
        return self.request("GET", path, params=params)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
