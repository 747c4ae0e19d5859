"""The REST client of commands that talk to a running gateway (`ledger logs`, `ledger errors`).

They use ``LEDGER_URL`` and ``LEDGER_API_KEY``, or what `ledger up` saved, and turn every HTTP
failure back into the ``LedgerError`` it stands for, so that ``handle_errors`` prints one line.
"""

from __future__ import annotations

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


class GatewayClient:
    """A synchronous client for one gateway and one API key (use as a context manager)."""

    def __init__(self, settings: Settings) -> None:
        import httpx

        if not settings.url:
            raise ConfigError("LEDGER_URL is not set: point it at the gateway"
                              " (e.g. http://127.0.0.1:8000), or start the stack with `ledger up`")
        if not settings.api_key:
            raise ConfigError("LEDGER_API_KEY is not set: use a key with the read scope"
                              " (`ledger keys create --project <slug> --scope read`)")
        self.url = str(settings.url).rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=TIMEOUT_SECONDS,
                                  headers={"X-API-Key": str(settings.api_key),
                                           "User-Agent": "ledger-cli"})

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json: Any = None) -> Any:
        """Send one request; return its JSON, or raise the ``LedgerError`` of the failure."""
        import httpx

        clean = {k: v for k, v in (params or {}).items() if v not in (None, "", [], ())}
        try:
            response = self._http.request(method, path, params=clean, json=json)
        except httpx.TimeoutException as exc:
            raise UnavailableError(f"the gateway at {self.url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise UnavailableError(f"cannot reach the gateway at {self.url} ({exc}):"
                                   " is it running (`ledger up`)? is LEDGER_URL right?") from exc
        if response.status_code >= 400:
            raise error_from(response)
        return response.json() if response.content else None

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
