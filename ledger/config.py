"""Settings: the only module that reads ``os.environ``.

Every variable is ``LEDGER_<SECTION>_<FIELD>`` (or ``LEDGER_<FIELD>`` for settings shared by all
daemons). ``VARIABLES`` is the single table of them: ``Settings.from_env`` parses it, the man page
and ``ledger config`` render it, and a test checks that both agree.
Precedence is flag, then environment, then default: the CLI applies flags with ``replace()``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.errors import ConfigError

logger = logging.getLogger(__name__)


class Secret(str):
    """A string whose repr never shows its value (tokens, passwords, DSNs with passwords)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"


def _int(name: str, raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value


def _bool(name: str, raw: str) -> bool:
    # Strict on purpose: "yes", "on" or "1" are ambiguous across tools, so only two spellings.
    if raw.lower() == "true":
        return True
    if raw.lower() == "false":
        return False
    raise ConfigError(f"{name} must be 'true' or 'false', got {raw!r}")


_ADDR = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]*):(?P<port>\d{1,5})$")


def _addr(name: str, raw: str) -> str:
    match = _ADDR.match(raw)
    if not match or not 0 <= int(match["port"]) <= 65535:
        raise ConfigError(f"{name} must be HOST:PORT (e.g. 127.0.0.1:8000), got {raw!r}")
    return raw if match["host"] else f"0.0.0.0{raw}"


def _addrs(name: str, raw: str) -> str:
    """One HOST:PORT, or several comma-separated ones (spread over round-robin)."""
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not parts:
        raise ConfigError(f"{name} must be HOST:PORT[,HOST:PORT...], got {raw!r}")
    addrs = [_addr(name, part) for part in parts]
    if len(addrs) > 1:
        for addr in addrs:
            try:
                ipaddress.ip_address(addr.rsplit(":", 1)[0].strip("[]"))
            except ValueError:
                raise ConfigError(
                    f"{name}: a list of addresses takes IP:PORT only, got {addr!r} (give one"
                    " DNS name with several addresses instead)") from None
    return ",".join(addrs)


def _optional_int(minimum: int) -> Callable[[str, str], int | None]:
    def parse(name: str, raw: str) -> int | None:
        return None if raw.lower() == "auto" else _int(name, raw, minimum)

    return parse


def _url(schemes: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        scheme = raw.split("://", 1)[0] if "://" in raw else ""
        if scheme not in schemes:
            wanted = " or ".join(f"{s}://" for s in schemes)
            raise ConfigError(f"{name} must start with {wanted}, got {_mask_url(raw)!r}")
        return Secret(raw)

    return parse


def _mask_url(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        if raw.lower() not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
        return raw.lower()

    return parse


def _networks(name: str, raw: str) -> tuple[str, ...]:
    networks = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        try:
            networks.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            raise ConfigError(f"{name} must be comma-separated addresses or networks"
                              f" (e.g. 10.0.0.5,192.168.0.0/16), got {entry!r}") from None
    return tuple(networks)


def _text(name: str, raw: str) -> str:
    return raw


def _secret(name: str, raw: str) -> str:
    return Secret(raw)


@dataclass(frozen=True)
class Variable:
    """One ``LEDGER_*`` environment variable."""

    env: str
    attr: str
    default: Any
    parse: Callable[[str, str], Any]
    doc: str


_PG = _url(("postgresql", "postgres"))
_REDIS_URL = _url(("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"))
_CLUSTER_NODE = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):\d{1,5}$")


def _redis(name: str, raw: str) -> str:
    """A Redis URL; for a cluster (``redis+cluster://[user:password@]host:port,…``) every node
    must be HOST:PORT, and nothing else may follow (a cluster has only database 0)."""
    url = _REDIS_URL(name, raw)
    scheme, rest = raw.split("://", 1)
    if scheme.endswith("+cluster"):
        nodes = rest.rsplit("@", 1)[-1].rstrip("/")
        if not all(_CLUSTER_NODE.match(node.strip()) for node in nodes.split(",")):
            raise ConfigError(f"{name} must list the cluster's nodes as {scheme}://host:port"
                              f"[,host:port…] (no database, no options), got {_mask_url(raw)!r}")
    return url


VARIABLES: tuple[Variable, ...] = (
    Variable("LEDGER_AUTH_DATABASE_URL", "auth_database_url", None, _PG,
             "PostgreSQL DSN of the auth database. Unset: `ledger up` starts an embedded one."),
    Variable("LEDGER_LOGS_DATABASE_URL", "logs_database_url", None, _PG,
             "PostgreSQL DSN of the logs database. Unset: `ledger up` starts an embedded one."),
    Variable("LEDGER_REDIS_URL", "redis_url", None, _redis,
             "Redis URL (queue, notifications, caches): redis://host:port/db, rediss://,"
             " unix://, or a Redis Cluster as redis+cluster://host:port[,host:port…]"
             " (rediss+cluster:// for TLS; see README, Redis Cluster)."
             " Unset: `ledger up` embeds one."),
    Variable("LEDGER_REDIS_APPENDFSYNC", "redis_appendfsync", "everysec",
             _choice("everysec", "always"),
             "When the embedded Redis fsyncs its AOF: `everysec` (a crashed OS or power cut can"
             " lose the last second of logs answered 202; a killed Redis loses none) or `always`"
             " (none, at 20-80 % of the ingest rate; see README, Reliability)."),
    Variable("LEDGER_REDIS_EMBEDDED_PORT", "redis_embedded_port", None,
             lambda n, r: _int(n, r, 1),
             "Port of the embedded Redis that `ledger up` starts (unset: the port of the last"
             " start when it is free, else any free one). A pinned port that is taken stops"
             " `ledger up` instead of moving."),
    Variable("LEDGER_INTERNAL_TOKEN", "internal_token", None, _secret,
             "Shared token that every gRPC call between daemons carries."),
    Variable("LEDGER_INTERNAL_TOKENS_ACCEPTED", "internal_tokens_accepted", None, _secret,
             "Further internal tokens the daemons accept (comma-separated), to change"
             " LEDGER_INTERNAL_TOKEN without downtime: give every daemon the new token here,"
             " then make it LEDGER_INTERNAL_TOKEN with the old one here, then drop the old."),
    Variable("LEDGER_JWT_SECRET", "jwt_secret", None, _secret,
             "HMAC secret that signs account access tokens."),
    Variable("LEDGER_DATA_DIR", "data_dir", Path(".ledger"), lambda n, r: Path(r),
             "Where `ledger up` keeps the embedded databases, its state and daemon logs."),
    Variable("LEDGER_DB_POOL_IDLE_SECONDS", "db_pool_idle_seconds", None, _float,
             "How long an unused PostgreSQL connection stays open in a daemon's pool. Unset:"
             " each pool keeps its 1-2 connections open and closes extra ones after 10 min."
             " Set: pools keep none open while idle, closing each after this long unused and"
             " opening one on demand (a few ms on the first request after a pause). `ledger up`"
             " with its embedded PostgreSQL uses 60 unless set."),
    Variable("LEDGER_LOG_LEVEL", "log_level", "info",
             _choice("debug", "info", "warning", "error", "critical"),
             "Level of Ledger's own logs on stderr."),
    Variable("LEDGER_URL", "url", None, _url(("http", "https")),
             "Gateway URL of client commands (`ledger tail`, `ledger logs`) and ledger.sdk."),
    Variable("LEDGER_API_KEY", "api_key", None, _secret,
             "API key of client commands (default: the one `ledger up` saved) and ledger.sdk."),
    Variable("LEDGER_GATEWAY_LISTEN", "gateway_listen", "127.0.0.1:8000", _addr,
             "Address the gateway's HTTP server binds."),
    Variable("LEDGER_GATEWAY_MAX_BODY_BYTES", "gateway_max_body_bytes", 10 * 1024 * 1024,
             lambda n, r: _int(n, r, 1024),
             "Largest request body accepted, measured after gzip decompression."),
    Variable("LEDGER_GATEWAY_KEY_CACHE_SECONDS", "gateway_key_cache_seconds", 30.0, _float,
             "How long a gateway keeps a validated API key in memory."),
    Variable("LEDGER_GATEWAY_MAX_LIVE_STREAMS", "gateway_max_live_streams", 20,
             lambda n, r: _int(n, r, 1),
             "Live (SSE) streams one API key, one project or one account (all its projects"
             " keys and its own sessions together) may hold open on one gateway."),
    Variable("LEDGER_GATEWAY_TRUSTED_PROXIES", "gateway_trusted_proxies", (), _networks,
             "Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For"
             " names the client; unset: none, the socket's peer is the client (throttles"
             " count failures per client address)."),
    Variable("LEDGER_AUTH_LISTEN", "auth_listen", "127.0.0.1:50051", _addr,
             "Address the auth daemon's gRPC server binds."),
    Variable("LEDGER_AUTH_ADDR", "auth_addr", "127.0.0.1:50051", _addr,
             "Where other daemons reach the auth daemon."),
    Variable("LEDGER_AUTH_RATE_LIMIT_MINUTE", "auth_rate_limit_minute", 1000, _int,
             "Default requests per minute for a new API key."),
    Variable("LEDGER_AUTH_RATE_LIMIT_HOUR", "auth_rate_limit_hour", 50_000, _int,
             "Default requests per hour for a new API key."),
    Variable("LEDGER_AUTH_DAILY_QUOTA", "auth_daily_quota", 1_000_000, _int,
             "Default logs per day for a new project."),
    Variable("LEDGER_AUTH_RETENTION_DAYS", "auth_retention_days", 90,
             lambda n, r: _int(n, r, 1), "Default retention in days for a new project."),
    Variable("LEDGER_INGEST_LISTEN", "ingest_listen", "127.0.0.1:50052", _addr,
             "Address the ingest daemon's gRPC server binds."),
    Variable("LEDGER_INGEST_ADDR", "ingest_addr", "127.0.0.1:50052", _addrs,
             "Where the gateway reaches the ingest daemon: one HOST:PORT, or several"
             " IP:PORT separated by commas (several ingest API processes: calls go"
             " round-robin over those that are up)."),
    Variable("LEDGER_INGEST_ROLE", "ingest_role", "all", _choice("all", "api", "writer"),
             "What `ledger serve ingest` runs: `api` (accept, validate and queue over gRPC),"
             " `writer` (only the writers that move the queue into PostgreSQL, with a"
             " health-only gRPC port), or `all` (both in one process)."),
    Variable("LEDGER_INGEST_WRITERS", "ingest_writers", 2, lambda n, r: _int(n, r, 0),
             "Writer tasks per ingest process (roles `writer` and `all`) that move the queue"
             " into PostgreSQL."),
    Variable("LEDGER_INGEST_CLAIM_IDLE_SECONDS", "ingest_claim_idle_seconds", 30.0,
             lambda n, r: max(_float(n, r), 0.1),
             "Queue entries a writer read and did not acknowledge for this long (its process"
             " died) are taken over by another writer."),
    Variable("LEDGER_UP_INGEST_PROCESSES", "up_ingest_processes", None, _optional_int(1),
             "Ingest API processes `ledger up` starts (`auto` or unset: as measured best for"
             " the machine's cores, see bench/RESULTS.md)."),
    Variable("LEDGER_UP_WRITER_PROCESSES", "up_writer_processes", None, _optional_int(0),
             "Writer processes `ledger up` starts apart from the ingest API (0: the writers"
             " run inside the ingest processes; `auto` or unset: as measured best)."),
    Variable("LEDGER_INGEST_QUEUE_MAX_DEPTH", "queue_max_depth", 100_000,
             lambda n, r: _int(n, r, 1),
             "Queued logs per project above which ingest answers 503"
             " (alias LEDGER_QUEUE_MAX_DEPTH)."),
    Variable("LEDGER_INGEST_MAX_ATTEMPTS", "ingest_max_attempts", 5, lambda n, r: _int(n, r, 1),
             "Deliveries of one queue entry before a log that keeps failing is dead-lettered."),
    Variable("LEDGER_INGEST_GROUPING_CACHE_SECONDS", "ingest_grouping_cache_seconds", 5.0,
             _float, "How long ingest reuses a project's fingerprint rules, in-app setting and"
             " merges before reading them again (a change applies within this time)."),
    Variable("LEDGER_QUERY_LISTEN", "query_listen", "127.0.0.1:50053", _addr,
             "Address the query daemon's gRPC server binds."),
    Variable("LEDGER_QUERY_ADDR", "query_addr", "127.0.0.1:50053", _addr,
             "Where the gateway reaches the query daemon."),
    Variable("LEDGER_ANALYTICS_INTERVAL_SECONDS", "analytics_interval_seconds", 60.0, _float,
             "How often the analytics daemon runs its jobs."),
    Variable("LEDGER_ALERTS_LISTEN", "alerts_listen", "127.0.0.1:50054", _addr,
             "Address the alerts daemon's gRPC server binds."),
    Variable("LEDGER_ALERTS_ADDR", "alerts_addr", "127.0.0.1:50054", _addr,
             "Where the gateway reaches the alerts daemon."),
    Variable("LEDGER_ALERTS_INTERVAL_SECONDS", "alerts_interval_seconds", 30.0, _float,
             "How often error_rate and no_logs rules are counted from the logs."),
    Variable("LEDGER_ALERTS_RULES_REFRESH_SECONDS", "alerts_rules_refresh_seconds", 2.0, _float,
             "How soon a new or changed alert rule is picked up by the evaluator."),
    Variable("LEDGER_ALERTS_SENDERS", "alerts_senders", 4, lambda n, r: _int(n, r, 0),
             "Delivery tasks per alerts daemon (0: this copy only evaluates)."),
    Variable("LEDGER_ALERTS_RETRY_BASE_SECONDS", "alerts_retry_base_seconds", 10.0, _float,
             "First delay before a failed delivery is retried; it doubles on each failure."),
    Variable("LEDGER_ALERTS_RETRY_MAX_SECONDS", "alerts_retry_max_seconds", 900.0, _float,
             "Longest delay between two delivery attempts."),
    Variable("LEDGER_ALERTS_GIVE_UP_SECONDS", "alerts_give_up_seconds", 86_400.0, _float,
             "How long a delivery is retried before it is marked failed (24 h)."),
    *(Variable(f"LEDGER_{daemon.upper()}_METRICS_LISTEN", f"{daemon}_metrics_listen", None,
               _addr, f"Address of the {daemon} daemon's Prometheus metrics port (GET /metrics);"
               " unset: no metrics port. (The gateway serves /metrics on its own port.)")
      for daemon in ("auth", "ingest", "query", "analytics", "alerts")),
    Variable("LEDGER_QUERY_DATABASE_URL", "query_database_url", None, _PG,
             "PostgreSQL DSN the query daemon reads logs, error groups and metrics from,"
             " e.g. a streaming replica of the logs database; writes (group status, merges,"
             " fingerprint rules) stay on LEDGER_LOGS_DATABASE_URL. Unset: reads go there too."
             " A replica lags: see README, Read replica."),
    Variable("LEDGER_ALERTS_CLAIM_IDLE_SECONDS", "alerts_claim_idle_seconds", 30.0, _float,
             "Notifications a stopped evaluator read but did not finish are taken over after"
             " this long."),
)

# Short spellings that DESIGN.md uses; the long form wins when both are set.
ALIASES: dict[str, str] = {"LEDGER_QUEUE_MAX_DEPTH": "LEDGER_INGEST_QUEUE_MAX_DEPTH"}

# Read by tooling rather than by a daemon; known so that they do not warn.
_OTHER_KNOWN = {"LEDGER_TEST_POSTGRES_URL", "LEDGER_TEST_REDIS_URL", "LEDGER_TEST_REDIS_DBS"}


@dataclass(frozen=True)
class Settings:
    """Validated settings of one process. Build it with ``Settings.from_env``."""

    auth_database_url: str | None = None
    logs_database_url: str | None = None
    redis_url: str | None = None
    redis_appendfsync: str = "everysec"
    redis_embedded_port: int | None = None
    internal_token: str | None = None
    internal_tokens_accepted: str | None = None
    jwt_secret: str | None = None
    data_dir: Path = Path(".ledger")
    db_pool_idle_seconds: float | None = None
    log_level: str = "info"
    url: str | None = None
    api_key: str | None = None
    gateway_listen: str = "127.0.0.1:8000"
    gateway_max_body_bytes: int = 10 * 1024 * 1024
    gateway_key_cache_seconds: float = 30.0
    gateway_max_live_streams: int = 20
    gateway_trusted_proxies: tuple[str, ...] = ()
    auth_listen: str = "127.0.0.1:50051"
    auth_addr: str = "127.0.0.1:50051"
    auth_rate_limit_minute: int = 1000
    auth_rate_limit_hour: int = 50_000
    auth_daily_quota: int = 1_000_000
    auth_retention_days: int = 90
    ingest_listen: str = "127.0.0.1:50052"
    ingest_addr: str = "127.0.0.1:50052"
    ingest_role: str = "all"
    ingest_writers: int = 2
    ingest_claim_idle_seconds: float = 30.0
    up_ingest_processes: int | None = None
    up_writer_processes: int | None = None
    queue_max_depth: int = 100_000
    ingest_max_attempts: int = 5
    ingest_grouping_cache_seconds: float = 5.0
    query_listen: str = "127.0.0.1:50053"
    query_addr: str = "127.0.0.1:50053"
    analytics_interval_seconds: float = 60.0
    alerts_listen: str = "127.0.0.1:50054"
    alerts_addr: str = "127.0.0.1:50054"
    alerts_interval_seconds: float = 30.0
    alerts_rules_refresh_seconds: float = 2.0
    alerts_senders: int = 4
    alerts_retry_base_seconds: float = 10.0
    alerts_retry_max_seconds: float = 900.0
    alerts_give_up_seconds: float = 86_400.0
    alerts_claim_idle_seconds: float = 30.0
    auth_metrics_listen: str | None = None
    ingest_metrics_listen: str | None = None
    query_metrics_listen: str | None = None
    analytics_metrics_listen: str | None = None
    alerts_metrics_listen: str | None = None
    query_database_url: str | None = None
    unknown: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse every ``LEDGER_*`` variable; raise ``ConfigError`` naming the first bad one."""
        env = dict(os.environ if environ is None else environ)
        for short, long in ALIASES.items():
            if env.get(short) and not env.get(long):
                env[long] = env[short]
        values: dict[str, Any] = {}
        for var in VARIABLES:
            raw = env.get(var.env, "").strip()
            if raw:  # empty means unset
                values[var.attr] = var.parse(var.env, raw)
        known = {v.env for v in VARIABLES} | set(ALIASES) | _OTHER_KNOWN
        unknown = tuple(sorted(k for k in env if k.startswith("LEDGER_") and k not in known))
        return cls(**values, unknown=unknown)

    def warn_unknown(self) -> None:
        """Log one warning per unknown ``LEDGER_*`` variable (likely a typo)."""
        for name in self.unknown:
            logger.warning("unknown setting %s is ignored (see `man ledger` for the list)", name)

    def tokens_also_accepted(self) -> tuple[str, ...]:
        """``LEDGER_INTERNAL_TOKENS_ACCEPTED`` as a tuple (besides LEDGER_INTERNAL_TOKEN)."""
        raw = str(self.internal_tokens_accepted or "")
        return tuple(t.strip() for t in raw.split(",") if t.strip())

    def with_overrides(self, **changes: Any) -> Settings:
        """Apply command-line flags (``None`` means the flag was not given)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_env(self) -> dict[str, str]:
        """The ``LEDGER_*`` variables that reproduce these settings in a child process."""
        env: dict[str, str] = {}
        for var in VARIABLES:
            value = getattr(self, var.attr)
            if isinstance(value, tuple):
                env[var.env] = ",".join(value)
            elif value is not None:
                env[var.env] = str(value)
        return env

    def child_environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """This process's environment without its ``LEDGER_*`` variables, plus ``to_env()``.

        Inherited ``LEDGER_*`` are dropped so that a child sees exactly these settings.
        """
        base = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        return base | self.to_env() | dict(extra or {})

    def require(self, *attrs: str) -> None:
        """Raise ``ConfigError`` naming the first of ``attrs`` that is unset."""
        for attr in attrs:
            if getattr(self, attr) in (None, ""):
                env = next(v.env for v in VARIABLES if v.attr == attr)
                raise ConfigError(f"{env} is not set: set it, or run the stack with `ledger up`")


def user_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user's folder for Ledger's CLI files (`ledger login`'s tokens), as XDG says:
    ``$XDG_CONFIG_HOME/ledger``, else ``~/.config/ledger``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "ledger"


def masked(url: str | None) -> str:
    """A DSN fit for a log line or an error message: the password is replaced by ``***``."""
    return "" if url is None else _mask_url(str(url))


def prepare_grpc_core() -> None:
    """Settings for gRPC's C core, made before it starts (its first channel or server): child
    daemons inherit them through the environment. An operator's own values are kept.

    - GRPC_VERBOSITY=ERROR: grpc's default also prints INFO lines on stderr, e.g. "Other
      threads are currently calling into gRPC, skipping fork() handlers" whenever `ledger up`
      forks pg_ctl to stop the embedded PostgreSQL.
    - GRPC_ENABLE_FORK_SUPPORT=0: Ledger forks only to exec (`ledger up` starting a daemon with
      its lifeline, see ``ledger.lifeline``), and grpcio's fork handlers break exactly that. A
      ``preexec_fn`` makes Python fork rather than vfork, so the handlers run; in the child,
      grpcio 1.80-1.85 restarts its poller, which dies (SIGABRT, "Check failed:
      wakeup_fd_->Wakeup().ok()" or "epoll_wait error: Bad file descriptor") once the child
      closes inherited descriptors before exec. The new daemon then never starts, and the
      child's writes on the parent's sockets can corrupt the parent's own calls. Here 9-27 of
      400 such children died without this setting, none with it (``python -m
      tests.fork_under_grpc``; ``tests/integration/test_grpc_fork.py`` keeps it so).
    """
    for name, value in (("GRPC_VERBOSITY", "ERROR"), ("GRPC_ENABLE_FORK_SUPPORT", "0")):
        if not os.environ.get(name):
            os.environ[name] = value
