"""The CLI's one vocabulary of flags: each long name has one short letter (or none), one meaning
and one readable metavar, whichever command takes it.

Commands declare options with ``option("--since", None, help=...)`` rather than
``typer.Option``; ``tests/unit/test_cli_flags.py`` walks every command and fails on an option
missing from ``FLAGS`` or spelled differently. A command may word the help for its context
(``--limit``: how many logs, how many groups) but not change what the flag means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import typer


@dataclass(frozen=True)
class Flag:
    """One long flag: its short letter, other long names, metavar and default help."""

    meaning: str
    short: str | None = None
    metavar: str = ""  # "" for on/off flags: they take no value
    aliases: tuple[str, ...] = ()


_WHEN = "WHEN"

FLAGS: dict[str, Flag] = {
    # -- which data -------------------------------------------------------------------------
    "--project": Flag("Project slug or id (default: the API key's project, or the one of"
                      " `ledger up`).", "-p", "PROJECT"),
    "--since": Flag("Only what is newer than this: a duration (30s, 15m, 2h, 7d) or an ISO"
                    " time.", "-s", _WHEN),
    "--period": Flag("today, last1h, last24h, last7days, last30days, currentWeek, currentMonth"
                     " or currentYear (UTC).", None, "PERIOD"),
    "--from": Flag("Start, an ISO-8601 time.", None, "TIME"),
    "--to": Flag("End, an ISO-8601 time (exclusive).", None, "TIME"),
    "--level": Flag("debug, info, warning, error or critical; repeat or comma-separate for"
                    " several.", "-l", "LEVEL"),
    "--type": Flag("Log type (exception, endpoint, …); repeat or comma-separate for several.",
                   "-t", "TYPE", ("--log-type",)),
    "--environment": Flag("Environment (production, staging, …).", "-e", "ENV", ("--env",)),
    "--release": Flag("Release (version) of the application.", "-r", "RELEASE"),
    "--fingerprint": Flag("Only events of this error fingerprint.", None, "FINGERPRINT"),
    "--search": Flag("Text to look for (case-insensitive).", None, "TEXT"),
    "--status": Flag("unresolved, resolved or ignored; repeat for several.", None, "STATUS"),
    "--sort": Flag("Sort order.", None, "ORDER"),
    "--limit": Flag("How many to show at most.", "-n", "N"),
    "--cursor": Flag("Continue after a previous page.", None, "CURSOR"),
    "--errors": Flag("Only errors: exceptions and error/critical logs."),
    "--patterns": Flag("Group similar messages by pattern, with counts."),
    "--owner": Flag("E-mail of the owning account.", None, "EMAIL"),
    "--job": Flag("An analytics job.", None, "JOB"),
    "--rule": Flag("An alert rule (name or id) or a fingerprint rule.", None, "RULE"),
    "--hour": Flag("An hour, e.g. 2026-11-27T10.", None, "HOUR"),
    # -- output and pace --------------------------------------------------------------------
    "--json": Flag("Print the result as JSON."),
    "--follow": Flag("Keep printing new entries until Ctrl-C.", "-f"),
    "--interval": Flag("Seconds between polls.", None, "SECONDS"),
    "--refresh": Flag("Seconds between refreshes.", None, "SECONDS"),
    "--all-projects": Flag("Every project of your account (needs `ledger login`)."),
    "--yes": Flag("Do not ask for confirmation.", "-y"),
    "--dry-run": Flag("Show what would change; change nothing."),
    "--replay": Flag("Queue them again."),
    # -- where and as whom --------------------------------------------------------------------
    "--url": Flag("Gateway URL (default: LEDGER_URL, or the one of `ledger up`).", None, "URL"),
    "--api-key": Flag("API key with the read scope (default: LEDGER_API_KEY, your"
                      " `ledger login`, or the key of `ledger up`).", None, "KEY"),
    "--email": Flag("An account's e-mail.", None, "EMAIL"),
    "--password": Flag("An account's password (asked for on a terminal when left out).", None,
                       "PASSWORD"),
    "--data-dir": Flag("Where embedded databases, state and logs live [LEDGER_DATA_DIR].", None,
                       "DIR"),
    "--listen": Flag("Gateway address HOST:PORT [LEDGER_GATEWAY_LISTEN].", None, "HOST:PORT"),
    "--processes": Flag("Each daemon as a child process (--one-process: all in one)."),
    "--role": Flag("ingest only: api, writer or all [LEDGER_INGEST_ROLE].", None, "ROLE"),
    # -- what to create or change -----------------------------------------------------------
    "--name": Flag("A name or label.", None, "NAME"),
    "--slug": Flag("URL name: a-z, 0-9 and '-'.", None, "SLUG"),
    "--scope": Flag("ingest, read or triage; repeat for several.", None, "SCOPE"),
    "--rate-limit-minute": Flag("Requests per minute.", None, "N"),
    "--rate-limit-hour": Flag("Requests per hour.", None, "N"),
    "--daily-quota": Flag("Logs accepted per day (UTC).", None, "N"),
    "--retention-days": Flag("Keep logs this many days.", None, "DAYS"),
    "--older-than": Flag("An age: 90d, 12w, …", None, "AGE"),
    "--months-ahead": Flag("Months ahead of this one.", None, "N", ("--ahead",)),
    "--position": Flag("Insert before this rule (default: last).", None, "N"),
    "--kind": Flag("What kind of thing to create.", None, "KIND"),
    "--channel": Flag("Alert channel name or id; repeat for several.", "-c", "CHANNEL"),
    "--cooldown": Flag("One alert per rule and group per this long: 30m, 1h, …", None, "DURATION"),
    "--threshold": Flag("The count or rate that fires the rule.", None, "NUMBER"),
    "--window": Flag("Minutes the rule looks back.", None, "MINUTES"),
    "--enabled": Flag("Turn it on (--disabled: off)."),
    "--webhook-url": Flag("webhook/slack: the https:// URL to post to.", None, "URL"),
    "--secret": Flag("webhook: signing secret.", None, "SECRET"),
    "--allow-insecure-localhost": Flag("Accept http:// for a receiver on localhost."),
    "--smtp-host": Flag("email: SMTP server.", None, "HOST"),
    "--smtp-port": Flag("email: SMTP port (587/465).", None, "PORT"),
    "--smtp-user": Flag("email: SMTP login.", None, "USER"),
    "--smtp-password": Flag("email: SMTP password.", None, "PASSWORD"),
    "--security": Flag("email: starttls, tls or none.", None, "MODE"),
    "--no-tls-verify": Flag("email: accept a self-signed certificate."),
    "--mail-from": Flag("email: the From address.", None, "EMAIL"),
    "--mail-to": Flag("email: a recipient; repeat for several.", None, "EMAIL"),
    # -- the root command ---------------------------------------------------------------------
    "--verbose": Flag("Debug logging on stderr.", "-v"),
    "--version": Flag("Print the version and exit."),
}


def names(long: str) -> list[str]:
    """Every spelling of ``long``: itself, its aliases, its short letter."""
    flag = FLAGS[long]
    return [long, *flag.aliases, *([flag.short] if flag.short else [])]


def option(long: str, default: Any = None, *, help: str | None = None,
           secondary: str | None = None, **settings: Any) -> Any:
    """``typer.Option`` for ``long`` as ``FLAGS`` spells it (short letter, metavar, help).

    Args:
        secondary: the "off" spelling of an on/off pair (``--enabled/--disabled``).
        settings: passed to ``typer.Option`` (``min``, ``prompt``, ``callback``, …).
    """
    flag = FLAGS[long]
    spelled = names(long)
    if secondary:
        spelled[0] = f"{long}/{secondary}"
    return typer.Option(default, *spelled, help=help or flag.meaning,
                        metavar=flag.metavar, **settings)


#: The pair every command that talks to the gateway takes (one object, shared, like Typer allows).
GATEWAY_URL = option("--url", None)
API_KEY = option("--api-key", None)
