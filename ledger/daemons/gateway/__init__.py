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


#: Allocations between young collections in a ``ledger serve gateway`` process (CPython: 700).
GC_YOUNG_THRESHOLD = 20_000


def tune_process() -> None:
    """Make the cyclic collector cheap for the gateway's requests (``ledger serve`` calls it
    once the daemon is built, in its own process only: never in a test's or ``ledger up``'s).

    A Sentry envelope parses into, and converts to, hundreds of containers that die with their
    request, so CPython's default young threshold (700 allocations) ran a collection every
    request or two, each walking the state of every request in flight and promoting it; the
    promoted objects then set off full collections of the whole heap (py-spy --native: the
    collector was ≈ 4 % of the gateway's busy samples under the Sentry bench). Objects freed
    by reference counting cost the collector nothing, so a higher threshold walks the same
    in-flight state far less often, and what is built before serving (modules, the app: alive
    as long as the process) is frozen out of the full collections' reach.
    """
    import gc

    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
