"""`ledger queue status|dead-letters`: the ingest queue in Redis, read directly."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from ledger.cli import flags
from ledger.cli.context import load_settings, reaching_the_stack
from ledger.cli.ids import short_ids
from ledger.cli.output import console, handle_errors, one_line_table, print_json, success, warn

app = typer.Typer(help="The ingest queue: depth per project, dead letters.",
                  no_args_is_help=True)

_MESSAGE_CHARS = 60


async def _redis_call(work: Any) -> Any:
    from ledger.core.connections import connect_redis

    settings = load_settings()
    settings.require("redis_url")
    assert settings.redis_url
    client = await connect_redis(settings.redis_url)
    try:
        return await work(client, settings)
    finally:
        await client.aclose()


def _run(work: Any) -> Any:
    import redis.exceptions

    from ledger.errors import UnavailableError

    try:
        with reaching_the_stack():
            return asyncio.run(_redis_call(work))
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise UnavailableError(f"lost the connection to Redis: {exc}") from exc


async def project_slugs(settings: Any, project_ids: list[str]) -> dict[str, str]:
    """Slugs of these projects from the auth database; ``{}`` when it cannot be read.

    The queue lives in Redis and stays readable while PostgreSQL is down: names are a
    courtesy there, never a reason to fail.
    """
    from ledger.core.connections import connect_postgres
    from ledger.errors import UnavailableError

    if not project_ids or not settings.auth_database_url:
        return {}
    try:
        conn = await connect_postgres(settings.auth_database_url)
    except UnavailableError:
        return {}
    try:
        cur = await conn.execute("SELECT id::text, slug FROM projects WHERE id = ANY(%s::uuid[])",
                                 [project_ids])
        return {str(row[0]): str(row[1]) for row in await cur.fetchall()}
    finally:
        await conn.close()


async def _project(settings: Any, project: str | None) -> list[str] | None:
    """The project id of ``--project`` (an id, or a slug looked up in the auth database)."""
    if project is None:
        return None
    from ledger.core.connections import connect_postgres
    from ledger.core.projects import get_project
    from ledger.queue.backlog import is_uuid

    if is_uuid(project):
        return [project.lower()]
    settings.require("auth_database_url")
    conn = await connect_postgres(settings.auth_database_url)
    try:
        return [(await get_project(conn, project)).id]
    finally:
        await conn.close()


@app.command("status")
def status_command(
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """Show each project's queue: depth, stream length, pending, lag and dead letters.

    depth counts logs accepted and not yet committed to PostgreSQL; length, pending (delivered
    to a writer, not yet acknowledged) and lag (not yet delivered) count queue entries of up
    to 1 000 logs each.
    """
    from ledger.queue.backlog import queue_status

    async def status(redis: Any, settings: Any) -> tuple[list[Any], dict[str, str]]:
        rows = await queue_status(redis)
        return rows, await project_slugs(settings, [r.project_id for r in rows])

    with handle_errors():
        rows, slugs = _run(status)
        if json_output:
            print_json([vars(r) | {"project_slug": slugs.get(r.project_id)} for r in rows])
            return
        if not rows:
            success("the queue is empty: no project has queued a log yet")
            return
        short = short_ids(r.project_id for r in rows)  # --json has the whole ids
        one_line_table(["project", "id", "depth", "entries", "pending", "lag", "dead"],
                       [[slugs.get(r.project_id, "-"), short[r.project_id], r.depth, r.length,
                         r.pending, r.lag, r.dead_letters] for r in rows], flexible="project")


@app.command("dead-letters")
def dead_letters_command(
    project: str | None = flags.option("--project", None, help="Only this project (its id)."),
    replay: bool = flags.option(
        "--replay", False, help="Queue them again; each leaves the list once queued."),
    limit: int = flags.option(
        "--limit", 100, min=1, max=100_000, help="Most dead letters listed per project."),
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """List the logs PostgreSQL kept refusing, with the error; --replay queues them again.

    Replay after fixing the cause (a constraint, a full disk): the logs go through the normal
    queue step again (their ids are kept, so a log already stored is not stored twice).
    """
    from ledger.errors import QueueFullError
    from ledger.queue import backlog
    from ledger.queue.client import Queue, Refused, queue_projects

    async def listing(redis: Any, settings: Any) -> list[backlog.StoredDeadLetter]:
        found: list[backlog.StoredDeadLetter] = []
        wanted = await _project(settings, project)
        projects = wanted if wanted is not None else await queue_projects(redis)
        for project_id in projects:
            found += await backlog.dead_letters(redis, project_id, count=limit)
        return found

    async def replaying(redis: Any, settings: Any) -> dict[str, tuple[int, int]]:
        queue = Queue(redis)
        done: dict[str, tuple[int, int]] = {}
        wanted = await _project(settings, project)
        projects = wanted if wanted is not None else await queue_projects(redis)
        for project_id in projects:
            try:
                done[project_id] = await backlog.replay_dead_letters(
                    queue, project_id, max_depth=settings.queue_max_depth)
            except Refused as refused:
                raise QueueFullError(
                    f"project {project_id}: the queue is full ({refused.value} logs waiting);"
                    " what was replayed so far stays replayed: run the replay again later"
                ) from None
        return done

    with handle_errors():
        if replay:
            result = _run(replaying)
            if json_output:
                print_json({p: {"replayed": r, "left": left} for p, (r, left) in result.items()})
                return
            total = sum(r for r, _ in result.values())
            success(f"replayed {total} dead letter(s) into the queue")
            for project_id, (_, left) in result.items():
                if left:
                    warn(f"project {project_id}: {left} dead letter(s) are not logs and stay")
            return
        letters = _run(listing)
        if json_output:
            print_json([d.to_dict() for d in letters])
            return
        if not letters:
            success("no dead letters")
            return
        for project_id in dict.fromkeys(d.project_id for d in letters):
            mine = [d for d in letters if d.project_id == project_id]
            _table(f"Dead letters of project {project_id} (--json for the whole logs)",
                   ["log id", "error", "message", "failed at"],
                   [[_field(d.log, "id"), d.error, _summary(d.log), d.failed_at[:19]]
                    for d in mine])


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Like ``output.table``, but ids (the first column) are never wrapped: people copy them."""
    from rich.table import Table

    out = Table(title=title, title_justify="left", header_style="bold")
    out.add_column(columns[0], no_wrap=True)
    for column in columns[1:]:
        out.add_column(column)
    for row in rows:
        out.add_row(*("" if v is None else str(v) for v in row))
    console.print(out)


def _field(log: Any, name: str) -> str:
    return str(log.get(name) or "") if isinstance(log, dict) else ""


def _summary(log: Any) -> str:
    if not isinstance(log, dict):
        return "(unreadable entry)"
    text = str(log.get("message") or log.get("error_message") or "")
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"
