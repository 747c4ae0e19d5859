"""A project's grouping setting: fingerprint rules and the in-app include/exclude lists.

Fingerprint rules (like Sentry's server-side fingerprinting), one per line::

    error.type:ConnectionError -> connection-errors
    message:"*timeout*" -> {{ default }}, timeout
    error.type:OperationalError stack.module:"*billing*" -> billing-db

A rule is matchers (all must match) and a fingerprint; the first rule that matches gives the
event that fingerprint, exactly as if the client had sent it (``{{ default }}`` expands to the
computed one). A fingerprint the client sent itself wins over the rules: the application chose
it for that event. Values are globs (``*``, ``?``), case-insensitive; quote values with spaces.

Matchers: ``error.type`` (the short type, and the qualified one), ``error.value`` (the error
message), ``message``, ``level``, ``platform``, ``environment``, ``release``, and
``stack.function`` / ``stack.module`` (any frame of the chain).

Versioned: every change of a project's setting bumps its ``revision``; the fingerprint
components record the rule and the revision that produced them, so that a group says which
rule made it. The hash itself depends only on the rule's *fingerprint*, not on its position or
revision, so editing other rules (or re-adding the same one) never splits history.

Pure functions, no I/O (storage: ``ledger.core.grouping_store``).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.core.fingerprints import (
    Fingerprint,
    compute_fingerprint,
    exception_chain,
    short_type,
)
from ledger.core.frames import InAppRules
from ledger.core.stacktraces import ParsedException

__all__ = [
    "DEFAULT_GROUPING",
    "MATCHERS",
    "FingerprintRule",
    "GroupingConfig",
    "RuleError",
    "parse_rule",
]

MATCHERS = ("error.type", "error.value", "message", "level", "platform", "environment",
            "release", "stack.function", "stack.module")
MAX_RULES = 100
MAX_RULE_CHARS = 1000
MAX_PATTERN_CHARS = 200
MAX_IN_APP_ENTRIES = 100
MAX_IN_APP_CHARS = 200
#: Characters of a value a glob is matched against (bounds the work of a match).
_MATCH_CHARS = 1024


class RuleError(ValueError):
    """A fingerprint rule that cannot be parsed; the message says why."""


def glob_match(pattern: str, text: str) -> bool:
    """Case-insensitive ``*``/``?`` glob, in O(len(pattern) * len(text)) at worst.

    Not ``fnmatch``: it compiles to a regular expression whose ``.*`` runs backtrack
    polynomially on patterns like ``*a*a*a*b``.
    """
    pattern, text = pattern.lower(), text[:_MATCH_CHARS].lower()
    p = t = 0
    star = -1
    mark = 0
    while t < len(text):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == text[t]):
            p += 1
            t += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, t
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            t = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


@dataclass(frozen=True, slots=True)
class FingerprintRule:
    """One rule: ``matchers`` (name, glob) that must all match, and the fingerprint."""

    matchers: tuple[tuple[str, str], ...]
    fingerprint: tuple[str, ...]

    @property
    def text(self) -> str:
        """The rule as it is written (and parsed back by ``parse_rule``)."""
        def quote(value: str) -> str:
            return f'"{value}"' if any(c in value for c in ' "\t') else value
        left = " ".join(f"{name}:{quote(value)}" for name, value in self.matchers)
        return f"{left} -> {', '.join(self.fingerprint)}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"rule", "matchers": [{"name", "pattern"}], "fingerprint"}``."""
        return {"rule": self.text,
                "matchers": [{"name": n, "pattern": p} for n, p in self.matchers],
                "fingerprint": list(self.fingerprint)}


def parse_rule(text: str) -> FingerprintRule:
    """Parse ``matcher:value [matcher:value …] -> part, part``.

    Raises:
        RuleError: The text is not a rule; the message says what is wrong.
    """
    if len(text) > MAX_RULE_CHARS:
        raise RuleError(f"a rule must be at most {MAX_RULE_CHARS} characters")
    left, arrow, right = text.partition("->")
    if not arrow:
        raise RuleError('a rule needs "->" between its matchers and its fingerprint')
    try:
        tokens = shlex.split(left)
    except ValueError as exc:
        raise RuleError(f"the matchers cannot be read: {exc}") from None
    if not tokens:
        raise RuleError("a rule needs at least one matcher, e.g. error.type:ConnectionError")
    matchers = []
    for token in tokens:
        name, colon, value = token.partition(":")
        if not colon or not value:
            raise RuleError(f"{token!r} is not matcher:value")
        if name not in MATCHERS:
            raise RuleError(f"unknown matcher {name!r}; known: {', '.join(MATCHERS)}")
        if len(value) > MAX_PATTERN_CHARS:
            raise RuleError(f"a matcher's value must be at most {MAX_PATTERN_CHARS} characters")
        matchers.append((name, value))
    parts = tuple(p.strip() for p in right.split(","))
    if not parts or any(not p for p in parts) or len(parts) > 32:
        raise RuleError("the fingerprint must be 1 to 32 non-empty parts separated by commas")
    if any(len(p) > 255 for p in parts):
        raise RuleError("each fingerprint part must be at most 255 characters")
    return FingerprintRule(tuple(matchers), parts)


def _values(name: str, event: dict[str, Any], chain: Sequence[ParsedException]) -> list[str]:
    if name == "error.type":
        full = event.get("error_type") or (chain[-1].type if chain else None)
        return [v for v in {full, short_type(full)} if v]
    if name == "error.value":
        value = event.get("error_message")
        if value is None and chain:
            value = chain[-1].value
        return [value] if value else []
    if name in ("stack.function", "stack.module"):
        attr = "function" if name == "stack.function" else "module"
        return [getattr(f, attr) for exc in chain for f in exc.frames]
    value = event.get(name)
    return [value] if isinstance(value, str) and value else []


def _matches(rule: FingerprintRule, event: dict[str, Any],
             chain: Sequence[ParsedException]) -> bool:
    return all(any(glob_match(pattern, v) for v in _values(name, event, chain))
               for name, pattern in rule.matchers)


@dataclass(frozen=True, slots=True)
class GroupingConfig:
    """A project's grouping setting at one revision."""

    revision: int = 0
    rules: tuple[FingerprintRule, ...] = ()
    in_app: InAppRules = field(default_factory=InAppRules)
    #: Active merges: fingerprint of a merged-away group → fingerprint of the surviving one.
    merges: Mapping[str, str] = field(default_factory=dict)

    def fingerprint(
        self,
        *,
        error_type: str | None,
        error_message: str | None,
        message: str | None,
        stack_trace: str | None,
        client_fingerprint: list[str] | None,
        exceptions: list[dict[str, Any]] | None = None,
        platform: str | None = None,
        level: str | None = None,
        environment: str | None = None,
        release: str | None = None,
    ) -> Fingerprint:
        """``compute_fingerprint`` with this project's in-app setting and rules applied."""
        in_app = self.in_app if (self.in_app.include or self.in_app.exclude) else None
        rule: FingerprintRule | None = None
        if self.rules and not client_fingerprint:
            chain = exception_chain(stack_trace=stack_trace, exceptions=exceptions,
                                    platform=platform, in_app_rules=in_app)
            event = {"error_type": error_type, "error_message": error_message,
                     "message": message, "level": level, "platform": platform,
                     "environment": environment, "release": release}
            rule = next((r for r in self.rules if _matches(r, event, chain)), None)
        result = compute_fingerprint(
            error_type=error_type, error_message=error_message, message=message,
            stack_trace=stack_trace,
            client_fingerprint=list(rule.fingerprint) if rule else client_fingerprint,
            exceptions=exceptions, platform=platform, in_app_rules=in_app)
        if rule is not None:
            result.components["rule"] = {"matcher": rule.text.partition(" -> ")[0],
                                         "revision": self.revision}
        if in_app is not None:
            result.components["grouping_revision"] = self.revision
        target = self.merges.get(result.hash)
        if target is not None:
            # The group was merged: its later events go to the surviving group.
            return Fingerprint(target, result.version, result.method,
                               {**result.components, "merged_from": result.hash})
        return result


DEFAULT_GROUPING = GroupingConfig()
