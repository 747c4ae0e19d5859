"""The analytics daemon against real daemons: prune on a fresh stack, one run across copies."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg

from ledger.config import Settings
from ledger.daemons.analytics import create
from ledger.db import partitions
from tests.stack import Stack


def test_prune_of_a_daemon_built_before_the_loop_drops_old_partitions(
        settings: Settings, tmp_path: Path) -> None:
    """``ledger serve analytics`` builds the daemon, then calls ``asyncio.run``: the fresh-stack
    prune failed there ("Future attached to a different loop" in ListProjects)."""
    with psycopg.connect(str(settings.logs_database_url), autocommit=True) as conn:
        partitions.ensure_months_sync(conn, [date(2020, 1, 1)])
    with Stack(settings, tmp_path) as stack:
        stack.start("auth")
        daemon = create(stack.settings)  # outside any event loop, as `ledger serve` does

        async def prune() -> list[str]:
            await daemon.start()
            try:
                return (await daemon.prune())["dropped"]
            finally:
                await daemon.stop()

        dropped = asyncio.run(prune())
    assert dropped == ["logs_2020_01"]
    with psycopg.connect(str(settings.logs_database_url)) as conn:
        assert "logs_2020_01" not in partitions.existing_names_sync(conn)
    assert datetime.now(UTC).year > 2020
