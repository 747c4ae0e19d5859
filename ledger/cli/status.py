"""`ledger status`: is the stack healthy? One screen (or ``--json``) and an exit status.

The probing is ``status_report``; this module only decides what the command says and how it
ends: 0 when healthy, 1 (``EXIT_UNHEALTHY``) when something is wrong (each problem named),
69 when no stack answers at all (with what to run).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import typer

from ledger.cli.context import load_settings, load_state, state_path
from ledger.cli.output import console, fail, handle_errors, print_json

#: Something is wrong; the report names it. (69, EX_UNAVAILABLE: nothing answered at all.)
EXIT_UNHEALTHY = 1
EXIT_NO_STACK = 69


def status_command(
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Show the health of the whole stack: each daemon and its version, the queue per project
    (depth, pending, lag, oldest entry, dead letters), each writer's pending entries and idle
    time, partitions and their sizes, the last analytics runs and the gateway's circuit
    breakers.

    Exits 0 when everything is healthy and 1 when something is not (each problem is listed),
    so that cron and monitoring can run it; 69 when no stack answers (run `ledger up`).
    """
    from ledger.cli.status_report import gather

    with handle_errors():
        settings = load_settings()
        state = load_state(settings.data_dir)
        if not (settings.url or settings.redis_url or state):
            raise fail(f"no Ledger stack found here (no LEDGER_URL, nothing in"
                       f" {state_path(settings.data_dir)}): start one with `ledger up`",
                       EXIT_NO_STACK)
        report = asyncio.run(gather(settings, state))
        if not report.running:
            where = settings.url or str(state_path(settings.data_dir))
            raise fail(f"no Ledger stack is running (nothing answers for {where}): start it"
                       " with `ledger up`", EXIT_NO_STACK)
        if json_output:
            print_json(report.to_dict())
        else:
            _render(report)
        if not report.healthy:
            raise typer.Exit(EXIT_UNHEALTHY)


def _render(report: Any) -> None:
    from rich.table import Table

    if report.healthy:
        console.print("[bold green]Ledger is healthy[/bold green]", highlight=False)
    else:
        count = len(report.problems)
        console.print(f"[bold red]Ledger is unhealthy[/bold red]: {count} problem"
                      f"{'s' if count > 1 else ''}", highlight=False)
        for problem in report.problems:
            console.print(f"  [red]✗[/red] {problem}", highlight=False, soft_wrap=True)
    daemons = Table(title="Daemons", title_justify="left", header_style="bold")
    for column in ("daemon", "state", "version", "detail"):
        daemons.add_column(column)
    for d in report.daemons:
        daemons.add_row(d.name, "[green]ok[/green]" if d.healthy else "[red]down[/red]",
                        d.version, d.detail)
    console.print(daemons)
    if report.breakers:
        console.print("Circuit breakers: " + ", ".join(
            f"{name} {state}" for name, state in sorted(report.breakers.items())),
            highlight=False)
    queue = Table(title="Ingest queue", title_justify="left", header_style="bold")
    for column in ("project", "depth", "pending", "lag", "oldest", "dead letters"):
        queue.add_column(column, no_wrap=column == "project")
    for q in report.queue:
        queue.add_row(q["slug"] or q["project_id"], str(q["depth"]), str(q["pending"]),
                      str(q["lag"]), _seconds(q["oldest_age_seconds"]), str(q["dead_letters"]))
    if report.queue:
        console.print(queue)
    else:
        console.print("Ingest queue: no project has queued a log yet", highlight=False)
    writers = Table(title="Writers", title_justify="left", header_style="bold")
    for column in ("writer", "pending", "idle", "projects read"):
        writers.add_column(column, no_wrap=column == "writer")
    for w in report.writers:
        writers.add_row(w["name"], str(w["pending"]), _seconds(w["idle_seconds"]),
                        str(w["projects"]))
    if report.writers:
        console.print(writers)
    parts = Table(title="Partitions", title_justify="left", header_style="bold")
    for column in ("partition", "rows (estimate)", "size"):
        parts.add_column(column)
    for p in report.partitions:
        parts.add_row(p["name"], str(p["rows"]), _size(p["bytes"]))
    if report.partitions:
        console.print(parts)
    jobs = Table(title="Last analytics runs", title_justify="left", header_style="bold")
    for column in ("job", "outcome", "when", "took"):
        jobs.add_column(column)
    for run in report.analytics:
        ago = time.time() - float(run.get("started_at") or 0)
        jobs.add_row(str(run.get("job")), str(run.get("outcome")), f"{_seconds(ago)} ago",
                     _seconds(float(run.get("seconds") or 0)))
    if report.analytics:
        console.print(jobs)


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def _size(value: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}"
        value //= 1024
    return f"{value} TiB"
