"""The auth daemon: accounts, projects and API keys over gRPC (``ledger serve auth``)."""

from __future__ import annotations

from ledger.config import Settings
from ledger.daemons.auth.daemon import AuthDaemon


def create(settings: Settings) -> AuthDaemon:
    """The auth daemon for these settings, not yet started."""
    return AuthDaemon(settings)


__all__ = ["AuthDaemon", "create"]
