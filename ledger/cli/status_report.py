"""What `ledger status` finds out, all at once: every daemon, the queue, partitions, jobs.

Every probe runs concurrently with a short deadline and never raises: what cannot be reached
is part of the report (a *problem*), so that one screen says everything that is wrong. The
sources are the ones an operator's machine can reach: the gateway's ``/health/deep`` (with the
internal token: its checks and circuit breakers), each gRPC daemon's health service (its
version and dependencies), Redis (queue, dead letters, the analytics job history) and the two
databases (partitions and their sizes, project slugs).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from ledger.config import Settings, masked
from ledger.core.connections import connect_postgres, connect_redis
from ledger.errors import LedgerError

GRPC_DAEMONS = ("auth", "ingest", "query", "alerts")
PROBE_SECONDS = 3.0
#: Analytics runs its rollup job every tick; no run for this many ticks means it is not running.
ANALYTICS_STALE_TICKS = 3


@dataclass
class DaemonState:
    """One daemon as the report sees it."""

    name: str
    healthy: bool
    version: str = ""
    detail: str = ""
    checks: dict[str, str] = field(default_factory=dict)
    #: It answered at all (healthy or not): a stack is running.
    answered: bool = True


@dataclass
class Report:
    """Everything `ledger status` shows; ``problems`` is empty when the stack is healthy."""

    gateway_url: str | None
    daemons: list[DaemonState] = field(default_factory=list)
    breakers: dict[str, str] = field(default_factory=dict)
    queue: list[dict[str, Any]] = field(default_factory=list)
    writers: list[dict[str, Any]] = field(default_factory=list)
    partitions: list[dict[str, Any]] = field(default_factory=list)
    analytics: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def running(self) -> bool:
        """Whether any daemon answered (analytics, which has no port, does not count)."""
        return any(d.answered for d in self.daemons if d.name != "analytics")

    def to_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "problems": self.problems,
                "gateway_url": self.gateway_url,
                "daemons": {d.name: {k: v for k, v in asdict(d).items() if k != "name"}
                            for d in self.daemons},
                "breakers": self.breakers, "queue": self.queue, "writers": self.writers,
                "partitions": self.partitions, "analytics": self.analytics}


def daemon_addrs(settings: Settings, state: dict[str, Any]) -> dict[str, str]:
    """Where each gRPC daemon listens: a variable set by the user wins, then what the local
    `ledger up` saved (it moves ports that are taken), then the default."""
    raw = state.get("addrs")
    saved: dict[str, Any] = raw if isinstance(raw, dict) else {}
    defaults = Settings()
    out = {}
    for name in GRPC_DAEMONS:
        configured = getattr(settings, f"{name}_addr")
        if configured == getattr(defaults, f"{name}_addr") and saved.get(name):
            configured = str(saved[name])
        out[name] = configured
    return out


async def gather(settings: Settings, state: dict[str, Any]) -> Report:
    """Probe everything concurrently and put the answers together."""
    report = Report(settings.url)
    addrs = daemon_addrs(settings, state)
    gateway, grpc_states, redis_part, logs_part, slugs = await asyncio.gather(
        _gateway(settings),
        asyncio.gather(*(_grpc(name, addr, settings) for name, addr in addrs.items())),
        _redis(settings), _logs(settings), _slugs(settings))
    gateway_state, report.breakers = gateway
    if isinstance(redis_part, str):
        report.problems.append(redis_part)
        analytics = DaemonState("analytics", False, detail="unknown: Redis cannot be reached",
                                answered=False)
    else:
        report.queue, report.writers, report.analytics = redis_part
        stale = _analytics_problems(report.analytics, settings.analytics_interval_seconds)
        analytics = DaemonState("analytics", not stale,
                                detail="; ".join(stale) or "jobs run on schedule")
    by_name = {d.name: d for d in (gateway_state, *grpc_states, analytics)}
    report.daemons = [by_name[n] for n in ("gateway", "auth", "ingest", "query", "analytics",
                                           "alerts")]
    for daemon in report.daemons:
        if daemon.healthy:
            continue
        if daemon.name == "analytics":
            report.problems += daemon.detail.split("; ")
        else:
            report.problems.append(f"{daemon.name}: {daemon.detail}")
    for name, breaker in sorted(report.breakers.items()):
        if breaker != "closed":
            report.problems.append(f"the gateway's circuit breaker around {name} is {breaker}:"
                                   f" calls to {name} are failing")
    names = slugs if isinstance(slugs, dict) else {}
    for row in report.queue:
        row["slug"] = names.get(row["project_id"])
        if row["dead_letters"]:
            report.problems.append(
                f"project {row['slug'] or row['project_id']}: {row['dead_letters']} dead"
                " letter(s): see `ledger queue dead-letters`")
    if isinstance(logs_part, str):
        report.problems.append(logs_part)
    else:
        report.partitions = logs_part
    if isinstance(slugs, str):
        report.problems.append(slugs)
    return report


async def _gateway(settings: Settings) -> tuple[DaemonState, dict[str, str]]:
    if not settings.url:
        return DaemonState("gateway", False, detail="LEDGER_URL is not set",
                           answered=False), {}
    headers = {"X-Ledger-Internal-Token": str(settings.internal_token or "")}
    try:
        async with httpx.AsyncClient(timeout=PROBE_SECONDS) as http:
            answer = await http.get(f"{settings.url.rstrip('/')}/health/deep", headers=headers)
        body = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        return DaemonState("gateway", False, answered=False,
                           detail=f"not answering at {settings.url} ({type(exc).__name__})"), {}
    if not isinstance(body, dict):
        return DaemonState("gateway", False, detail=f"answered {answer.status_code}"), {}
    checks: dict[str, Any] = _mapping(body.get("checks"))
    breakers: dict[str, Any] = _mapping(body.get("breakers"))
    # Checks of the daemons the report probes itself are not repeated as gateway problems.
    own = {k: str(v) for k, v in checks.items() if k == "redis"}
    healthy = answer.status_code in (200, 503) and own.get("redis", "ok") == "ok"
    detail = f"{settings.url}" if healthy else f"its Redis check: {own.get('redis')}"
    if not checks and answer.status_code == 503:
        detail = f"{settings.url} (unhealthy; the internal token is needed to see why)"
    return (DaemonState("gateway", healthy, str(body.get("version", "")), detail, own),
            {str(k): str(v) for k, v in breakers.items()})


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def _grpc(name: str, addr: str, settings: Settings) -> DaemonState:
    from ledger.rpc.channel import HealthClient

    client = HealthClient(name, addr, str(settings.internal_token or ""), timeout=PROBE_SECONDS)
    try:
        health = await client.check_health(timeout=PROBE_SECONDS)
    except LedgerError as exc:
        return DaemonState(name, False, detail=f"not answering at {addr} ({exc.message})",
                           answered=False)
    finally:
        await client.close()
    bad = {k: v for k, v in health.checks.items() if v != "ok"}
    detail = addr if not bad else "; ".join(f"{k}: {v}" for k, v in sorted(bad.items()))
    return DaemonState(name, health.healthy, health.version, detail, dict(health.checks))


async def _redis(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                             list[dict[str, Any]]] | str:
    from ledger.daemons.analytics.runner import history
    from ledger.queue.backlog import queue_status, writer_consumers

    if not settings.redis_url:
        return "Redis: LEDGER_REDIS_URL is not set"
    try:
        client = await asyncio.wait_for(connect_redis(settings.redis_url), PROBE_SECONDS)
    except (LedgerError, TimeoutError) as exc:
        return f"Redis: {getattr(exc, 'message', None) or 'no answer within 3 s'}"
    try:
        rows = await queue_status(client)
        writers = await writer_consumers(client, [r.project_id for r in rows])
        runs = await history(client)
    except Exception as exc:  # the report's boundary: say what failed, go on
        return f"Redis at {masked(settings.redis_url)}: {type(exc).__name__}: {exc}"
    finally:
        await client.aclose()
    latest: dict[str, dict[str, Any]] = {}
    for run in runs:  # newest first
        latest.setdefault(str(run.get("job")), run)
    return ([asdict(r) for r in rows], [asdict(w) for w in writers],
            [latest[j] for j in sorted(latest)])


async def _logs(settings: Settings) -> list[dict[str, Any]] | str:
    from ledger.db.partitions import describe

    if not settings.logs_database_url:
        return "logs database: LEDGER_LOGS_DATABASE_URL is not set"
    try:
        conn = await connect_postgres(settings.logs_database_url)
    except LedgerError as exc:
        return f"logs database: {exc.message}"
    try:
        return [asdict(p) for p in await describe(conn)]
    except Exception as exc:  # the report's boundary: say what failed, go on
        return f"logs database: {type(exc).__name__}: {exc}"
    finally:
        await conn.close()


async def _slugs(settings: Settings) -> dict[str, str] | str:
    from ledger.core.projects import list_projects

    if not settings.auth_database_url:
        return {}  # ids only: nothing is wrong with the stack for that
    try:
        conn = await connect_postgres(settings.auth_database_url)
    except LedgerError as exc:
        return f"auth database: {exc.message}"
    try:
        return {str(p.id): p.slug for p in await list_projects(conn)}
    except Exception as exc:  # the report's boundary: say what failed, go on
        return f"auth database: {type(exc).__name__}: {exc}"
    finally:
        await conn.close()


def _analytics_problems(runs: list[dict[str, Any]], interval: float) -> list[str]:
    """What is wrong with the analytics jobs, judged by their history in Redis."""
    problems = [f"analytics: the last {r['job']} run failed: {r.get('error') or '?'}"
                for r in runs if r.get("outcome") == "failed"]
    newest = max((float(r.get("started_at") or 0) for r in runs), default=0.0)
    stale = ANALYTICS_STALE_TICKS * interval + 30
    if not newest:
        problems.append("analytics: no job has run yet (is `ledger serve analytics` running?)")
    elif time.time() - newest > stale:
        problems.append(f"analytics: no job ran for {time.time() - newest:.0f} s"
                        " (is `ledger serve analytics` running?)")
    return problems
