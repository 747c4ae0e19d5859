"""The `ledger` command: one entry point for every daemon and every operator task.

Sub-commands live one group per module and import heavy libraries (grpc, fastapi, textual)
inside their bodies, so `ledger --help` stays fast.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import typer

from ledger import __version__
from ledger.cli import (
    accounts,
    alerts,
    analytics,
    db,
    errors,
    flags,
    keys,
    login,
    logs,
    partitions,
    projects,
    queue,
    serve,
    status,
    tail,
    top,
    up,
)

app = typer.Typer(
    name="ledger",
    help="Ledger: self-hosted logging and error tracking.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ledger {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = flags.option(
        "--version", False, callback=_version, is_eager=True, help="Print the version and exit."),
    verbose: bool = flags.option("--verbose", False, help="Debug logging on stderr."),
) -> None:
    """Ledger: self-hosted logging and error tracking."""
    configure_logging("debug" if verbose else None)


def configure_logging(level: str | None) -> None:
    """Ledger's own logs go to stderr, once per process (the TUI redirects them to a file)."""
    from ledger.config import Settings
    from ledger.errors import ConfigError

    if level is None:
        try:
            level = Settings.from_env().log_level
        except ConfigError:
            level = "info"  # the command itself reports the bad variable
    handler = _CurrentStderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                                           datefmt="%H:%M:%S"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # Library chatter that says nothing to an operator.
    for noisy in ("httpx", "httpcore", "asyncio", "uvicorn.access", "pgserver"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record, not at set-up.

    Test runners and the TUI swap ``sys.stderr``; a handler holding the old one would write
    to a closed file.
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


app.command("serve")(serve.serve)
app.command("up")(up.up)
app.command("status")(status.status_command)
app.command("tail")(tail.tail)
app.command("top")(top.top)
app.command("login")(login.login)
app.command("logout")(login.logout)
app.add_typer(db.app, name="db")
app.add_typer(accounts.app, name="accounts")
app.add_typer(projects.app, name="projects")
app.add_typer(keys.app, name="keys")
app.add_typer(partitions.app, name="partitions")
app.add_typer(queue.app, name="queue")
app.add_typer(analytics.app, name="analytics")
app.command("logs")(logs.logs_command)
app.add_typer(errors.app, name="errors")
app.add_typer(alerts.app, name="alerts")


def main() -> None:
    from ledger.config import prepare_grpc_core

    prepare_grpc_core()
    app()


if __name__ == "__main__":
    main()
