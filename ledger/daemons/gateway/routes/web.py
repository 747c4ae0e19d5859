"""The browser view (DESIGN §12): its pages and static files, and the live stream's tickets.

* ``GET /``, ``/signin`` and ``/p/<project>/…`` answer the one HTML page (the browser routes by
  path, so every page has a URL that can be shared; the server answers all of them alike).
* ``GET /web/<version>/<file>`` serves the ES modules and CSS from ``gateway/web/``. The page
  names them under a version derived from their content, so they are cached for a year
  (``immutable``) and a new release is fetched at once; any other version is served with
  ``no-cache``. ``ETag``/``If-None-Match`` answer 304.
* ``POST /api/v1/live/tickets`` trades an account's access token for a stream ticket, since a
  browser's ``EventSource`` cannot send headers (``ledger.core.stream_tickets``).

Every page and file carries a strict ``Content-Security-Policy``: scripts and styles from the
gateway only, nothing inline, no frames, no third-party connections.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ledger.core import stream_tickets
from ledger.daemons.gateway.edge.access import RequireAccount, owned_project
from ledger.daemons.gateway.edge.account_sessions import AccountPrincipal
from ledger.daemons.gateway.routes.responses import json_response
from ledger.daemons.gateway.schemas.ingest import error_doc
from ledger.daemons.gateway.schemas.web import TicketRequest, TicketResponse
from ledger.daemons.gateway.state import Gateway

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
ASSET_PREFIX = "/web"
VERSION_MARK = "__ASSETS__"
YEAR_SECONDS = 365 * 24 * 3600

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml", ".html": "text/html; charset=utf-8"}

router = APIRouter(tags=["browser view"])
require_account = RequireAccount()


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str
    gzipped: bytes  # compressed once at start: the files never change while the gateway runs


@dataclass(frozen=True)
class Bundle:
    """The view's files, read once: the assets by name, the page, and their version."""

    version: str
    assets: dict[str, Asset]
    page: Asset


def _asset(body: bytes, media_type: str) -> Asset:
    return Asset(body, media_type, f'"{hashlib.sha256(body).hexdigest()[:20]}"',
                 gzip.compress(body, compresslevel=9, mtime=0))


@cache
def bundle() -> Bundle:
    """Read ``web/`` once per process (the files are part of the installed package)."""
    assets: dict[str, Asset] = {}
    digest = hashlib.sha256()
    for path in sorted(WEB_DIR.rglob("*")):
        if not path.is_file() or path.name == "index.html" or path.suffix not in _TYPES:
            continue
        name = path.relative_to(WEB_DIR).as_posix()
        body = path.read_bytes()
        digest.update(name.encode() + b"\0" + body)
        media_type = _TYPES.get(path.suffix) or mimetypes.guess_type(name)[0] or "text/plain"
        assets[name] = _asset(body, media_type)
    version = digest.hexdigest()[:12]
    html = (WEB_DIR / "index.html").read_text().replace(VERSION_MARK,
                                                        f"{ASSET_PREFIX}/{version}")
    return Bundle(version, assets, _asset(html.encode(), _TYPES[".html"]))


def _answer(request: Request, asset: Asset, cache_control: str) -> Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": cache_control, "ETag": asset.etag,
               "Vary": "Accept-Encoding"}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


async def page(request: Request) -> Response:
    """The single page; the browser renders the route named by the path."""
    return _answer(request, bundle().page, "no-cache")


router.add_api_route("/", page, methods=["GET"], include_in_schema=False)
router.add_api_route("/signin", page, methods=["GET"], include_in_schema=False)
router.add_api_route("/p/{rest:path}", page, methods=["GET"], include_in_schema=False)


@router.get(f"{ASSET_PREFIX}/{{version}}/{{name:path}}", include_in_schema=False)
async def static_file(request: Request, version: str, name: str) -> Response:
    """A module or stylesheet of the view: a year in caches under the current version."""
    current = bundle()
    asset = current.assets.get(name)
    if asset is None:
        return Response(b"not found\n", status_code=404, media_type="text/plain",
                        headers=SECURITY_HEADERS)
    fresh = version == current.version
    return _answer(request, asset, f"public, max-age={YEAR_SECONDS}, immutable" if fresh
                   else "no-cache")


# -- stream tickets ---------------------------------------------------------------------------


@router.post("/api/v1/live/tickets", status_code=201, response_model=TicketResponse,
             tags=["live"],
             responses={401: error_doc("Missing, expired or logged-out access token"),
                        403: error_doc("An API key was sent: tickets are for accounts"),
                        404: error_doc("Not found among the account's projects")})
async def mint_ticket(request: Request, body: TicketRequest,
                      account: AccountPrincipal = Depends(require_account)) -> Response:
    """A ticket to open one live error stream of one project within 60 s (browsers' SSE).

    The ticket is read-only, single-project and single-use, bound to the session that minted
    it, and accepted by `GET /notifications/stream` only; a client that reconnects mints a new
    one and resumes with `last_event_id`.
    """
    gateway: Gateway = request.app.state.gateway
    project = await owned_project(gateway, account, body.project_id)
    ticket, expires = stream_tickets.mint(
        gateway.settings.jwt_secret, account_id=account.account_id,
        session_id=account.session_id, project_id=project.id)
    return json_response({"ticket": ticket, "project_id": project.id,
                          "expires_in": stream_tickets.TICKET_SECONDS,
                          "expires_at": expires.isoformat()}, 201,
                         headers={"Cache-Control": "no-store"})
