"""The alerts daemon (`ledger serve alerts`): evaluates alert rules and delivers the alerts.

A daemon of its own rather than a job of analytics: evaluation must follow the notification
streams within a second (ingest → webhook p99 < 2 s) while analytics runs minute-long batch
jobs, and delivery waits on slow receivers; each scales and restarts apart. It also answers the
gateway's alert routes over gRPC (``AlertsService``), since the gateway holds no database pool.
"""

from __future__ import annotations

from ledger.config import Settings
from ledger.daemons.alerts.daemon import AlertsDaemon


def create(settings: Settings) -> AlertsDaemon:
    return AlertsDaemon(settings)
