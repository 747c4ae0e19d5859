"""`ledger serve <daemon>`: run one daemon in the foreground until SIGTERM."""

from __future__ import annotations

import importlib
from enum import Enum

import typer

from ledger.cli import flags
from ledger.cli.context import load_settings
from ledger.cli.output import fail, handle_errors
from ledger.errors import ConfigError


class DaemonName(str, Enum):
    gateway = "gateway"
    auth = "auth"
    ingest = "ingest"
    query = "query"
    analytics = "analytics"
    alerts = "alerts"


class IngestRole(str, Enum):
    all = "all"
    api = "api"
    writer = "writer"


def serve(
    daemon: DaemonName = typer.Argument(..., help="Which daemon to run."),
    role: IngestRole | None = flags.option(
        "--role", None, help="ingest only: api (accept and queue), writer (only the writers"
        " that store the queue) or all (both) [LEDGER_INGEST_ROLE, default all]."),
) -> None:
    """Run one daemon (gateway, auth, ingest, query, analytics or alerts) until SIGTERM or Ctrl-C.

    Every daemon reads LEDGER_* variables (see `man ledger`); all of them need
    LEDGER_INTERNAL_TOKEN, the same for every daemon of one installation. The ingest daemon
    can run as several processes: `--role api` copies accept logs, `--role writer` copies
    store them, each scaled on its own.
    """
    with handle_errors():
        settings = load_settings()
        if role is not None:
            if daemon is not DaemonName.ingest:
                raise ConfigError(f"--role is for `ledger serve ingest`, not {daemon.value}:"
                                  " drop it")
            settings = settings.with_overrides(ingest_role=role.value)
        try:
            module = importlib.import_module(f"ledger.daemons.{daemon.value}")
        except ModuleNotFoundError as exc:
            if exc.name != f"ledger.daemons.{daemon.value}":
                raise
            module = None
        create = getattr(module, "create", None)
        if create is None:
            raise fail(f"the {daemon.value} daemon is not built yet in this version of Ledger", 69)
        instance = create(settings)
        tune = getattr(module, "tune_process", None)
        if tune is not None:
            tune()  # process-wide settings (the collector's), for a daemon of its own only
        from ledger.daemons.base import run

        _run_async(run(instance))


def _run_async(coro: object) -> None:
    import asyncio

    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional speed-up
        asyncio.run(coro)  # type: ignore[arg-type]
    else:
        # loop_factory is 3.12+; on 3.11 install the policy instead.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(coro)  # type: ignore[arg-type]
