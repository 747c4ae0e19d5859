"""The query daemon: logs and error groups read back over gRPC (``ledger serve query``)."""

from __future__ import annotations

from ledger.config import Settings
from ledger.daemons.query.daemon import QueryDaemon

__all__ = ["QueryDaemon", "create"]


def create(settings: Settings, **options: float) -> QueryDaemon:
    """The query daemon for ``settings`` (not started); ``options`` go to ``QueryDaemon``."""
    return QueryDaemon(settings, **options)
