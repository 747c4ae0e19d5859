"""The analytics daemon: background upkeep of the logs database.

Today it keeps the monthly partitions of ``logs`` ahead of time (this month and two more, so
writers never create one on the hot path) and drops partitions older than every project's
retention once a day. Rollups and metric caches (DESIGN §8) will join ``run_once``.
Jobs take a Redis lock, so N copies of this daemon never double-run them.
"""

from __future__ import annotations

from ledger.config import Settings
from ledger.daemons.analytics.daemon import AnalyticsDaemon


def create(settings: Settings) -> AnalyticsDaemon:
    return AnalyticsDaemon(settings)
