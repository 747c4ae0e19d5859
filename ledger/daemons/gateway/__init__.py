"""The gateway: the only daemon facing the outside (HTTP/JSON on LEDGER_GATEWAY_LISTEN).

``create(settings)`` returns the daemon that ``ledger serve gateway`` runs; ``create_app`` (in
``app.py``) is the FastAPI app alone, for tests in process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ledger.config import Settings
    from ledger.daemons.gateway.daemon import GatewayDaemon


def create(settings: Settings) -> GatewayDaemon:
    """The gateway daemon (not started)."""
    from ledger.daemons.gateway.daemon import GatewayDaemon

    return GatewayDaemon(settings)


def tune_process() -> None:
    """Process-wide settings for a ``ledger serve gateway`` process (``base.tune_collector``)."""
    from ledger.daemons.base import tune_collector

    tune_collector()
