"""Ledger's Python SDK: logs, exceptions and endpoint timings from your application.

    from ledger.sdk import Ledger
    ledger = Ledger(api_key="ledger_…", url="http://127.0.0.1:8000")   # or LEDGER_API_KEY/URL
    ledger.info("order placed", order_id=42)

Integrations: ``LedgerHandler`` (logging), ``LedgerMiddleware`` (ASGI: FastAPI, Starlette),
``LedgerWSGIMiddleware`` (WSGI: Flask, Django), ``install_excepthook``. Only the standard
library is used: no web framework, no HTTP client library.
"""

from __future__ import annotations

from ledger.sdk.asgi import LedgerMiddleware
from ledger.sdk.client import Ledger
from ledger.sdk.excepthook import install_excepthook
from ledger.sdk.logging_handler import LedgerHandler
from ledger.sdk.wsgi import LedgerWSGIMiddleware, capture_flask_exceptions

__all__ = ["Ledger", "LedgerHandler", "LedgerMiddleware", "LedgerWSGIMiddleware",
           "capture_flask_exceptions", "install_excepthook"]
