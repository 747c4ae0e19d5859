"""The ingest daemon: validate, enrich and queue logs; writers store them (``ledger serve ingest``).
"""

from __future__ import annotations

from ledger.config import Settings
from ledger.daemons.ingest.daemon import IngestDaemon


def create(settings: Settings) -> IngestDaemon:
    """The ingest daemon for these settings, not yet started."""
    return IngestDaemon(settings)


def tune_process() -> None:
    """Process-wide settings for a ``ledger serve ingest`` process (``base.tune_collector``)."""
    from ledger.daemons.base import tune_collector

    tune_collector()


__all__ = ["IngestDaemon", "create", "tune_process"]
