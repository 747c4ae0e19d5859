"""`ledger up`: the whole stack on this machine with one command."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ledger.cli import flags
from ledger.cli.context import load_state, replace_state, save_state
from ledger.cli.output import console, err_console, handle_errors
from ledger.config import Settings
from ledger.errors import ConfigError

AUTH_DB = "ledger_auth"
LOGS_DB = "ledger_logs"
#: LEDGER_DB_POOL_IDLE_SECONDS with the embedded PostgreSQL, unless set.
EMBEDDED_POOL_IDLE_SECONDS = 60.0


def up(
    data_dir: Path | None = flags.option(
        "--data-dir", None),
    listen: str | None = flags.option(
        "--listen", None, help="Gateway address HOST:PORT [LEDGER_GATEWAY_LISTEN]."),
    processes: bool = flags.option(
        "--processes", False, secondary="--one-process",
        help="--processes: each daemon as a `ledger serve` child process, restarted when it"
        " dies. --one-process (the default): every daemon in this process, still talking"
        " gRPC over loopback; less memory and a faster start, and a daemon that fails stops"
        " the whole stack with an error naming it.",
    ),
) -> None:
    """Run the whole stack locally: databases, migrations, every daemon, a default API key.

    Uses LEDGER_AUTH_DATABASE_URL, LEDGER_LOGS_DATABASE_URL and LEDGER_REDIS_URL when set;
    otherwise starts an embedded PostgreSQL and Redis under the data dir. Data survives a
    restart. Press Ctrl-C to stop everything.
    """
    with handle_errors():
        settings = Settings.from_env()
        settings.warn_unknown()
        settings = settings.with_overrides(data_dir=data_dir, gateway_listen=listen)
        data = settings.data_dir.resolve()
        data.mkdir(parents=True, exist_ok=True)
        lock = _lock(data)
        try:
            _run(settings.with_overrides(data_dir=data), one_process=not processes)
        finally:
            lock.close()


def _lock(data: Path) -> IO[str]:
    handle = (data / "up.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise ConfigError(f"`ledger up` is already running on {data} (pid {pid}): use that one,"
                          " or stop it first, or pass another --data-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


class _Stop(Exception):
    pass


# What ends the stack besides Ctrl-C: a service manager's SIGTERM, and the SIGHUP of a closed
# terminal or a dropped SSH session.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _raise_stop(signum: int, frame: Any) -> None:
    # Only the first signal stops. `kill -TERM` of a `make up` process group delivers two (one
    # from the group, one forwarded by make): a second one raised inside stop_all() would
    # abandon the children half-stopped.
    _ignore_stop_signals()
    raise _Stop


def _ignore_stop_signals() -> None:
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop


def _say_quietly(message: str) -> None:
    """Print unless the terminal is gone (after SIGHUP a write to it fails with EIO)."""
    with contextlib.suppress(OSError):
        err_console.print(message)


def _stop_stale(data: Path, state: dict[str, Any]) -> None:
    """Stop the daemons and Redis of an earlier `ledger up` on ``data`` that did not stop.

    Its supervisor is gone (we hold the data dir's lock), so anything still running under the
    pids it recorded, and still looking like ours, is a leftover holding ports.
    """
    pids: dict[str, int] = {}
    for name, pid in (state.get("daemons") or {}).items():
        pids[f"the {name} daemon"] = int(pid)
    if state.get("redis_pid"):
        pids["the embedded Redis"] = int(state["redis_pid"])
    for what, pid in pids.items():
        if not _ours(pid, data if what == "the embedded Redis" else None):
            continue
        _report(f"{what} of an earlier `ledger up` on {data} is still running (pid {pid});"
                " stopping it")
        _terminate(pid)


def _ours(pid: int, redis_dir: Path | None) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [a.decode(errors="replace") for a in argv]
    if redis_dir is not None:
        return any("redis-server" in w for w in words) and str(redis_dir) in words
    return "ledger" in words and "serve" in words


def _terminate(pid: int, timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def _run(settings: Settings, *, one_process: bool) -> None:
    from ledger.daemons.ports import PortPicker
    from ledger.daemons.supervisor import Supervisor, built_daemons, port_free
    from ledger.embedded import EmbeddedPostgres, EmbeddedRedis, free_port

    started = time.monotonic()
    data = settings.data_dir
    state = load_state(data)
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    supervisor: Supervisor | None = None
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _raise_stop)
    _stop_stale(data, state)
    try:
        if not (settings.auth_database_url and settings.logs_database_url):
            console.print("[dim]starting embedded PostgreSQL…[/dim]")
            postgres = EmbeddedPostgres(data / "postgres")
            postgres.start()
            settings = settings.with_overrides(
                auth_database_url=settings.auth_database_url or postgres.url(AUTH_DB),
                logs_database_url=settings.logs_database_url or postgres.url(LOGS_DB),
            )
        moved: list[str] = []
        if postgres is not None and settings.db_pool_idle_seconds is None:
            # A laptop's stack: no idle connections (a PostgreSQL process each) held open.
            settings = settings.with_overrides(db_pool_idle_seconds=EMBEDDED_POOL_IDLE_SECONDS)
        if not settings.redis_url:
            console.print("[dim]starting embedded Redis…[/dim]")
            saved = int(state.get("redis_port") or 0)
            redis = EmbeddedRedis(data / "redis", _redis_port(settings, saved),
                                  appendfsync=settings.redis_appendfsync)
            settings = settings.with_overrides(redis_url=redis.start())
            if saved and redis.port != saved:
                moved.append(f"embedded Redis on {redis.port} ({saved} was in use;"
                             " pin it with LEDGER_REDIS_EMBEDDED_PORT)")
            save_state(data, redis_pid=redis.pid)
        settings = settings.with_overrides(
            internal_token=settings.internal_token or state.get("internal_token")
            or secrets.token_urlsafe(32),
            jwt_secret=settings.jwt_secret or state.get("jwt_secret") or secrets.token_urlsafe(48),
        )
        configured = settings
        # One picker for every port chosen here, so no two daemons are handed the same one.
        picker = PortPicker(settings, free_port)
        settings = _pick_grpc_ports(settings, port_free, picker.pick)
        moved += _moved_ports(configured, settings)
        # One process binds port 0 and reports what it got: a port picked free here can be
        # taken (by an outgoing connection's local port, say) before the daemon binds it.
        settings = _pick_metrics_ports(settings, (lambda: 0) if one_process else picker.pick)
        if not port_free(settings.gateway_listen):
            raise ConfigError(f"port {settings.gateway_listen} is in use: stop what uses it, or"
                              " run `ledger up --listen 127.0.0.1:8080`")
        console.print("[dim]applying migrations…[/dim]")
        _migrate_quietly(settings)
        gateway_url = _gateway_url(settings.gateway_listen)
        save_state(
            data,
            auth_database_url=str(settings.auth_database_url),
            logs_database_url=str(settings.logs_database_url),
            redis_url=str(settings.redis_url), redis_port=redis.port if redis else None,
            internal_token=str(settings.internal_token), jwt_secret=str(settings.jwt_secret),
            url=gateway_url, pid=os.getpid(),
            # Where each daemon listens (ports move when taken), for `ledger status`.
            addrs={n: getattr(settings, f"{n}_addr") for n in ("auth", "ingest", "query",
                                                               "alerts")},
        )
        names = built_daemons()
        if one_process:
            # No child daemons to record; an earlier run's (stopped above) are forgotten. Ingest
            # runs here in one copy with both roles (api and writers).
            replace_state(data, {k: v for k, v in load_state(data).items() if k != "daemons"})
            _serve_in_one_process(settings, names, gateway_url, started, moved)
        else:
            supervisor = Supervisor(settings, names, data, report=_report,
                                    on_spawn=lambda pids: save_state(data, daemons=pids))
            names = list(supervisor.children)  # ingest as its API and writer processes
            console.print(f"[dim]starting {', '.join(names)}…[/dim]")
            supervisor.start_all()
            copies = {c.name: c.settings.ingest_metrics_listen
                      for c in supervisor.children.values()
                      if c.daemon == "ingest" and c.name != "ingest" and c.settings
                      and c.settings.ingest_metrics_listen}
            _announce(settings, gateway_url, names, started, moved, copies)
            while True:
                supervisor.watch_once()
                time.sleep(0.5)
    except (KeyboardInterrupt, _Stop):
        _say_quietly("\n[dim]stopping…[/dim]")
    finally:
        _ignore_stop_signals()
        if supervisor is not None:
            supervisor.stop_all()
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()
        state = load_state(data)
        for stale in ("pid", "daemons", "redis_pid"):
            state.pop(stale, None)
        replace_state(data, state)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
    _say_quietly("[green]stopped[/green]; data kept in " + str(data))



def _redis_port(settings: Settings, saved: int) -> int:
    """The embedded Redis's port: the pinned one, else the last start's when free, else any."""
    pinned = settings.redis_embedded_port
    if pinned:
        if not _free(pinned):
            raise ConfigError(f"port {pinned} (LEDGER_REDIS_EMBEDDED_PORT) is in use: stop what"
                              " uses it, or pin another port")
        return pinned
    return saved if saved and _free(saved) else 0


def _migrate_quietly(settings: Settings) -> None:
    """Apply migrations without their per-migration INFO lines, which would cut into the
    banner; `ledger db status` lists them, and warnings and errors still show."""
    import logging

    from ledger.cli.db import migrate_all

    migrate_logger = logging.getLogger("ledger.db.migrate")
    level = migrate_logger.level
    migrate_logger.setLevel(max(logging.WARNING, level))
    try:
        migrate_all(settings)
    finally:
        migrate_logger.setLevel(level)


def _moved_ports(configured: Settings, actual: Settings) -> list[str]:
    """One line per gRPC daemon whose configured port was taken and that listens elsewhere."""
    lines = []
    for name in ("auth", "ingest", "query", "alerts"):
        wanted, got = getattr(configured, f"{name}_listen"), getattr(actual, f"{name}_listen")
        if wanted != got:
            lines.append(f"{name} on {got} ({wanted} was in use;"
                         f" pin it with LEDGER_{name.upper()}_LISTEN)")
    return lines


def _announce(settings: Settings, gateway_url: str, names: list[str], started: float,
              moved: list[str], copies: dict[str, str] | None = None) -> None:
    """Default account, project and key on the first run, then the ready banner."""
    data = settings.data_dir
    account, project, new_key, password = _bootstrap(settings)
    if new_key:
        save_state(data, api_key=new_key)
    key = new_key or load_state(data).get("api_key")
    _banner(settings, gateway_url, names, project, key, bool(new_key), account, password,
            time.monotonic() - started, moved, copies)


def _serve_in_one_process(settings: Settings, names: list[str], gateway_url: str,
                          started: float, moved: list[str]) -> None:
    """Every daemon in this process (ledger.daemons.one_process) until a signal or a failure.

    Their logs go to one file, as the children's do in --processes mode: the terminal keeps
    the banner and what the operator must act on.
    """
    from ledger.cli.serve import _run_async
    from ledger.daemons.one_process import DaemonFailedError, serve_together

    log = settings.data_dir / "logs" / "ledger.log"
    console.print(f"[dim]starting {', '.join(names)} in one process…[/dim]")
    with _logging_to(log):
        try:
            _run_async(serve_together(
                settings, names,
                on_ready=lambda stack: _announce(_bound_metrics(settings, stack), gateway_url,
                                                 names, started, moved),
                on_stopping=lambda: _say_quietly("\n[dim]stopping…[/dim]")))
        except DaemonFailedError as exc:
            raise DaemonFailedError(exc.daemon, f"{exc.message}; every daemon was stopped"
                                    f" (the traceback is in {log})") from exc


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """Send the root logger's records to ``path`` instead of stderr, for the block."""
    import logging

    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    before = root.handlers[:]
    root.handlers[:] = [handler]
    try:
        yield
    finally:
        root.handlers[:] = before
        handler.close()


def _free(port: int) -> bool:
    from ledger.daemons.supervisor import port_free

    return port_free(f"127.0.0.1:{port}")


def _pick_grpc_ports(settings: Settings, port_free: Any, free_port: Any) -> Settings:
    """Internal gRPC ports: the configured ones, or free ones when those are taken.

    Only the gateway faces users; clashing on 5005x with another program on a laptop should
    not stop `ledger up`, so internal ports move instead of failing.
    """
    changes: dict[str, str] = {}
    for name in ("auth", "ingest", "query", "alerts"):
        listen = getattr(settings, f"{name}_listen")
        if not port_free(listen):
            port = free_port()
            changes[f"{name}_listen"] = f"127.0.0.1:{port}"
            changes[f"{name}_addr"] = f"127.0.0.1:{port}"
    return settings.with_overrides(**changes)


METRICS_DAEMONS = ("auth", "ingest", "query", "analytics", "alerts")


def _pick_metrics_ports(settings: Settings, free_port: Any) -> Settings:
    """A loopback metrics port for each daemon whose LEDGER_<DAEMON>_METRICS_LISTEN is unset,
    so that a local stack can be scraped (and the banner says where) with nothing to set."""
    changes = {f"{name}_metrics_listen": f"127.0.0.1:{free_port()}" for name in METRICS_DAEMONS
               if not getattr(settings, f"{name}_metrics_listen")}
    return settings.with_overrides(**changes)


def _bound_metrics(settings: Settings, stack: Any) -> Settings:
    """``settings`` with each one-process daemon's metrics listen at the port it bound."""
    bound = {}
    for name, server in stack.metrics.items():
        if server is not None:
            host = getattr(settings, f"{name}_metrics_listen").rsplit(":", 1)[0]
            bound[f"{name}_metrics_listen"] = f"{host}:{server.port}"
    return settings.with_overrides(**bound)


def _metrics_line(settings: Settings, url: str, copies: dict[str, str] | None = None) -> str:
    """Where to scrape: the gateway, each daemon, and ``copies`` (``ingest-2``, ``writer-1``:
    the further ingest processes of --processes, each with a metrics port of its own)."""
    listens = {name: listen for name in METRICS_DAEMONS
               if (listen := getattr(settings, f"{name}_metrics_listen"))}
    ports = [f"{name} :{listen.rsplit(':', 1)[1]}"
             for name, listen in (listens | (copies or {})).items()]
    return f"{url}/metrics; " + ", ".join(ports) + " (GET /metrics)"


def _gateway_url(listen: str) -> str:
    host, port = listen.rsplit(":", 1)
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{host}:{port}"


def _bootstrap(settings: Settings) -> tuple[Any, Any, str | None, str | None]:
    """Default account, project and key on first run (see ledger.core.bootstrap)."""
    import asyncio

    from ledger.core.bootstrap import ensure_default_setup

    setup = asyncio.run(ensure_default_setup(settings))
    return setup.account, setup.project, setup.full_key, setup.password


def _cli_name() -> str:
    """How the user can call `ledger` again: plain when on PATH, else the path to it."""
    import shutil
    import sys

    called = Path(sys.argv[0])
    found = shutil.which("ledger")
    if called.name == "ledger" and found and Path(found).resolve() == called.resolve():
        return "ledger"
    venv_cli = Path(sys.executable).parent / "ledger"
    try:
        return str(venv_cli.relative_to(Path.cwd()))
    except ValueError:
        return str(venv_cli)


def _report(message: str) -> None:
    err_console.print(f"[yellow]![/yellow] {message}", highlight=False)


def _banner(settings: Settings, url: str, names: list[str], project: Any, key: str | None,
            new_key: bool, account: Any, password: str | None, seconds: float,
            moved: list[str] | None = None, copies: dict[str, str] | None = None) -> None:
    def say(text: str = "") -> None:
        # Never wrap: a key split over two lines cannot be copied.
        console.print(text, soft_wrap=True, highlight=False)

    state_file = settings.data_dir / "state.json"
    say()
    say(f"[bold green]Ledger is ready[/bold green] in {seconds:.1f}s")
    say(f"  gateway   [bold]{url}[/bold]  (OpenAPI: {url}/docs)")
    say(f"  daemons   {', '.join(names)}")
    say(f"  metrics   {_metrics_line(settings, url, copies)}")
    for line in moved or ():
        say(f"  [yellow]moved[/yellow]     {line}")
    slug = getattr(project, "slug", None)
    if slug:
        say(f"  project   {slug}")
    if key and new_key:
        say(f"  API key   [bold]{key}[/bold]")
        say(f"            [yellow]shown once; also saved in {state_file} for `ledger tail`"
            "[/yellow]")
        dsn_id = getattr(project, "dsn_id", 0)
        if dsn_id:
            from ledger.core.sentry import dsn

            say(f"  Sentry    {dsn(key, url.split('://', 1)[-1], dsn_id)}  (DSN for Sentry SDKs)")
    elif key:
        # Shown in full on the first start only: a terminal's scrollback or a shared screen
        # should not get the key on every start.
        say(f"  API key   {_key_hint(key)}  (in full: \"api_key\" in {state_file};"
            f" another: `{_cli_name()} keys create --project {slug or 'default'}`)")
    else:
        say("  API key   [yellow]none saved here: create one with"
            f" `{_cli_name()} keys create --project default`[/yellow]")
    if password and account is not None:
        say(f"  account   {getattr(account, 'email', '')} / password [bold]{password}"
            "[/bold] (shown once)")
    say(f"  data      {settings.data_dir}   logs: {settings.data_dir / 'logs'}")
    say()
    if key and new_key:
        say("  Try it:")
        say(f"    curl -s -X POST {url}/api/v1/ingest/single -H 'X-API-Key: {key}' \\")
        say("      -H 'Content-Type: application/json' \\")
        say("      -d '{\"timestamp\": \"'$(date -u +%FT%TZ)'\", \"level\": \"error\","
                      " \"message\": \"hello\"}'")
    if key:
        say(f"    {_cli_name()} tail --errors" if new_key
            else f"  Try it:  {_cli_name()} tail --errors   (it uses the saved key)")
    say("\n[dim]Press Ctrl-C to stop.[/dim]")


def _key_hint(key: str) -> str:
    """The key's public prefix (what `ledger keys list` shows), never its secret part."""
    head, _, _ = key.rpartition("_")
    return f"{head}_…" if head else "ledger_…"
