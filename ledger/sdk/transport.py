"""One HTTP POST of a batch to ``/api/v1/ingest/batch``, with the standard library only.

The SDK must not give applications a heavy dependency, so it speaks HTTP through ``urllib``;
the flusher thread is the only caller. ``post_batch`` never raises: it says what happened, and
the client decides whether to retry, split, drop or stop.
"""

from __future__ import annotations

import gzip
import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from ledger import __version__

USER_AGENT = f"ledger-python/{__version__}"
#: Bodies smaller than this are sent as they are: gzip would cost more than it saves.
GZIP_FROM_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the gateway did with a batch.

    ``status`` is the HTTP status (0: no answer, a network error), ``retry_after`` the seconds
    the server asked to wait (None when it did not say), ``rejected`` how many logs of an
    accepted batch were invalid, and ``detail`` the server's or the network's explanation.
    """

    status: int
    retry_after: float | None = None
    rejected: int = 0
    detail: str = ""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _answer(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def encode_batch(records: list[dict[str, Any]]) -> bytes:
    """``{"logs": [...]}`` as JSON; values JSON cannot hold are written as their ``str``.

    A log whose attributes cannot be encoded at all (a tuple as a key, a cycle) keeps their
    ``repr`` under ``attributes.unencodable`` instead of failing its batch.
    """
    try:
        text = _dumps({"logs": records})
    except (TypeError, ValueError):
        parts = []
        for record in records:
            try:
                parts.append(_dumps(record))
            except (TypeError, ValueError):
                attributes = repr(record.get("attributes"))[:10_000]
                parts.append(_dumps({**record, "attributes": {"unencodable": attributes}}))
        text = '{"logs":[' + ",".join(parts) + "]}"
    return text.encode("utf-8", "surrogatepass")


def post_batch(url: str, api_key: str, body: bytes, timeout: float) -> Outcome:
    """POST one encoded batch (gzip when worth it) and classify the answer."""
    headers = {"Content-Type": "application/json", "X-API-Key": api_key,
               "User-Agent": USER_AGENT}
    if len(body) >= GZIP_FROM_BYTES:
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    request = urllib.request.Request(f"{url}/api/v1/ingest/batch", data=body,  # noqa: S310
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = _answer(response.read())
            rejected = answer.get("rejected", 0)
            return Outcome(response.status, rejected=rejected if type(rejected) is int else 0)
    except urllib.error.HTTPError as error:
        with error:
            answer = _answer(error.read())
        detail = answer.get("detail")
        return Outcome(error.code, _retry_after(error.headers.get("Retry-After")),
                       detail=detail if isinstance(detail, str) else error.reason or "")
    except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, resets
        reason = getattr(error, "reason", error)
        return Outcome(0, detail=str(reason))
