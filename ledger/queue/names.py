"""The ingest queue's Redis names: every key and channel one project's queue, notifications and
tail use (here and nowhere else).

Keys used together carry the hash tag ``{p:<project_id>}`` so that one Lua script can touch them
all on Redis Cluster. Channels are not keys (pub/sub ignores slots) and carry no tag.
"""

from __future__ import annotations

# -- per project --------------------------------------------------------------------------------


def queue_stream(project_id: str) -> str:
    """Stream of accepted batches waiting for a writer (one entry per accepted request)."""
    return f"ledger:{{p:{project_id}}}:queue"


def queue_depth(project_id: str) -> str:
    """Logs queued and not yet committed to PostgreSQL (backpressure counter)."""
    return f"ledger:{{p:{project_id}}}:depth"


def dead_letters(project_id: str) -> str:
    """Stream of logs that PostgreSQL kept refusing, each with its error."""
    return f"ledger:{{p:{project_id}}}:dead"


def daily_quota(project_id: str, day: str) -> str:
    """Logs accepted on ``day`` (YYYYMMDD, UTC)."""
    return f"ledger:{{p:{project_id}}}:quota:{day}"


def notifications_stream(project_id: str) -> str:
    """Capped stream of the newest error notifications; its ids are the SSE event ids."""
    return f"ledger:{{p:{project_id}}}:notifications"


def tail_stream(project_id: str) -> str:
    """Capped stream of the newest logs of a project for ``GET /logs/tail``."""
    return f"ledger:{{p:{project_id}}}:tail"


def tail_watchers(project_id: str) -> str:
    """Exists (with a TTL) while a gateway has tail clients: ingest feeds the tail only then."""
    return f"ledger:{{p:{project_id}}}:tail-watchers"


def notifications_channel(project_id: str) -> str:
    """Pub/sub channel on which each new error notification is published (DESIGN §7)."""
    return f"notifications:errors:{project_id}"


def tail_channel(project_id: str) -> str:
    """Pub/sub channel poked when new logs reach a project's tail stream."""
    return f"logs:tail:{project_id}"


# Set of project ids that have ever queued a log: writers read all their streams.
QUEUE_PROJECTS = "ledger:queue-projects"
WRITER_GROUP = "writers"
