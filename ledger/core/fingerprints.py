"""Error fingerprints: which events are "the same error" (DESIGN §6).

A fingerprint is a short hash over the *components* that identify an error, plus the algorithm
version (so that a change of the rules starts new groups instead of silently merging or
splitting old ones). The components are kept next to the hash so that the UI can say why two
events were grouped.

Precedence, first that applies wins:

1. ``client`` — the SDK sent ``fingerprint``; the literal element ``{{ default }}`` expands to the
   hash that rules 2-4 would have produced. A project's fingerprint rule that matches
   (``ledger.core.grouping_rules``) counts as a client fingerprint, marked ``rule``.
2. ``stacktrace`` — the exception chain has frames: *every* exception of the chain (oldest
   first, the raised one last) contributes its type and its innermost in-app frames (module path
   + function, never line numbers or directories); an exception group's members are sorted, so
   that completion order does not matter; an exception whose frames look minified (JavaScript
   without source maps: ``e``, ``t``, ``n``) contributes its type and normalised message instead.
   The chain comes from the structured ``exceptions`` when given, else from the printed trace.
3. ``type_message`` — the error type (``error_type``, else the type printed in the trace) plus
   the normalised message.
4. ``message`` — the normalised message alone.

Version 2 (this one) changed from version 1: the whole chain instead of the root cause, module
paths instead of basenames, versioned Go module paths and more Java/Ruby libraries third-party,
bundle hashes removed, minified frames, sorted exception groups, the type read from the trace,
and status/exit/SQLSTATE/errno codes kept in messages.

Pure functions, no I/O; every regular expression is compiled once at import.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ledger.core.exception_values import to_chain
from ledger.core.frames import Frame, InAppRules, RawFrame
from ledger.core.stacktraces import ParsedException, parse_exceptions

__all__ = [
    "FINGERPRINT_VERSION",
    "Fingerprint",
    "Frame",
    "compute_fingerprint",
    "normalize_message",
    "parse_stack_trace",
    "short_type",
]

FINGERPRINT_VERSION: int = 2

#: Innermost in-app frames of each exception that contribute to a stack-trace fingerprint.
MAX_FRAMES = 5
#: Exceptions of a chain that contribute (the newest); members of a group likewise.
MAX_CHAIN = 8
#: Characters of a raw message examined; the tail of a 10 000-char message is noise for grouping
#: and scanning it would only cost time.
_MESSAGE_SCAN_CHARS = 2048
#: Characters of a normalised message kept for hashing and for the components.
MAX_NORMALIZED_CHARS = 512
_HASH_CHARS = 32

_DEFAULT_ELEMENT = re.compile(r"\{\{\s*default\s*\}\}")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The grouping key of an error event.

    Attributes:
        hash: 32 hex chars of a SHA-256 over the version, the method and its components.
        version: ``FINGERPRINT_VERSION`` at the time it was computed.
        method: ``client``, ``stacktrace``, ``type_message`` or ``message``.
        components: JSON-serialisable explanation of what contributed (always has ``method``).
    """

    hash: str
    version: int
    method: str
    components: dict[str, Any]


# --------------------------------------------------------------------------------------------
# Message normalisation
# --------------------------------------------------------------------------------------------

# "Not glued to a letter or digit": `_` is allowed as a neighbour so that ids inside
# identifiers such as `obj_7f3a9b2c1d4e` are still found.
_L = r"(?<![0-9A-Za-z])"
_R = r"(?![0-9A-Za-z])"
_H4 = r"[0-9A-Fa-f]{1,4}"
_IPV4 = r"(?:\d{1,3}\.){3}\d{1,3}"
# Every compressed form of RFC 4291 except the bare "::", which shows up as a C++/Ruby scope
# operator far more often than as an address.
_IPV6 = (
    rf"(?:(?:{_H4}:){{7}}{_H4}"
    rf"|(?:{_H4}:){{1,7}}:(?!{_H4})"
    rf"|(?:{_H4}:){{1,6}}:{_H4}"
    rf"|(?:{_H4}:){{1,5}}(?::{_H4}){{1,2}}"
    rf"|(?:{_H4}:){{1,4}}(?::{_H4}){{1,3}}"
    rf"|(?:{_H4}:){{1,3}}(?::{_H4}){{1,4}}"
    rf"|(?:{_H4}:){{1,2}}(?::{_H4}){{1,5}}"
    rf"|{_H4}:(?::{_H4}){{1,6}}"
    rf"|::(?:ffff:)?{_IPV4}"
    rf"|::{_H4}(?::{_H4}){{0,6}})"
)
_DURATION_UNITS = r"ns|us|µs|ms|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?"

# One alternation scanned once, rather than ten `re.sub` passes: at each position the first
# alternative that matches wins, so the order below is the precedence (URL before the e-mail
# and IP inside it, UUID and hash before the generic hex run, duration before the bare number).
_MESSAGE_RE = re.compile(
    rf"""
    # Every alternative starts at a token boundary except <num>, which starts at a digit, and
    # none can match a run of plain letters ended by a space or punctuation. This guard lets
    # such words (most of a message) cost one scan instead of a try of every alternative at
    # every character.
    (?:(?<![0-9A-Za-z])(?![A-Za-z]+(?:[\s,;!?)\]}}>"'`]|$))|(?=\d))
    (?:
    (?P<url>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'"<>`]*[^\s'"<>`.,;:!?)\]}}])
  | (?P<email>(?<![\w.+\-])[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)
  | (?P<uuid>{_L}[0-9A-Fa-f]{{8}}-(?:[0-9A-Fa-f]{{4}}-){{3}}[0-9A-Fa-f]{{12}}{_R})
  | (?P<date>\b\d{{4}}-\d{{2}}-\d{{2}}
        (?:[T\ ]\d{{2}}:\d{{2}}(?::\d{{2}}(?:[.,]\d+)?)?(?:Z\b|[+-]\d{{2}}:?\d{{2}})?)?
      | \b\d{{1,2}}:\d{{2}}:\d{{2}}(?:[.,]\d+)?(?:Z\b|[+-]\d{{2}}:?\d{{2}})?)
  | (?P<hash>{_L}(?:[0-9A-Fa-f]{{64}}|[0-9A-Fa-f]{{40}}|[0-9A-Fa-f]{{32}}){_R})
  | (?P<ip>(?<![\w:.]){_IPV6}(?![\w:])|\b{_IPV4}\b)
  | (?P<mac>{_L}[0-9A-Fa-f]{{2}}(?:[:-][0-9A-Fa-f]{{2}}){{5}}{_R})
  | (?P<pod>(?<=-)(?=[a-z-]{{0,16}}\d)[a-z0-9]{{6,10}}-[a-z0-9]{{5}}(?![\w-]))
  | (?P<duration>(?<![\w.])\d+(?:\.\d+)?\ ?(?:{_DURATION_UNITS})\b)
  | (?P<hex>\b0[xX][0-9A-Fa-f]+\b
      | {_L}(?=[0-9A-Fa-f]*\d)(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{{8,}}{_R})
  | (?P<mixed>{_L}(?:[A-Za-z]+\d+[A-Za-z]+\d|\d+[A-Za-z]+\d+[A-Za-z])[A-Za-z0-9]*{_R})
  | (?P<quoted>(?<!\w)(?:'[^'\n]{{65,}}'|"[^"\n]{{65,}}"|`[^`\n]{{65,}}`)(?!\w))
  | (?P<num>\d+(?:\.\d+)?)
    )
    """,
    re.VERBOSE,
)
_PLACEHOLDERS = {
    "url": "<url>",
    "email": "<email>",
    "uuid": "<uuid>",
    "date": "<date>",
    "hash": "<hash>",
    "ip": "<ip>",
    "mac": "<mac>",
    "duration": "<duration>",
    "hex": "<hex>",
    # Letters and digits alternating (`x2k8p`, `7f9c4d`: pod and container name suffixes,
    # short ids); `sha256`, `utf8` or `http2` alternate once and stay.
    "mixed": "<id>",
    # The generated tail of a Kubernetes pod name: `billing-7f9c4d8b6-x2k8p` → `billing-<pod>`.
    "pod": "<pod>",
    # Long quoted values are payloads (SQL, JSON, user input) that differ on every event; short
    # ones usually name what failed (a key, a table, a column) and so distinguish errors.
    "quoted": "'<str>'",
    "num": "<num>",
}


# A number right after one of these words is a code that says *which* failure it was (exit
# status 137 is an OOM kill, 1 a failure; SQLSTATE 40001 a serialisation failure, 23505 a
# duplicate key; errno 111 a refused connection): it is kept, not replaced by <num>.
_CODE_BEFORE = re.compile(
    r"(?:exit|status|code|sqlstate|errno|signal|http|returncode|rc)[ \t:=#\[(]{0,3}\Z", re.I
)
_CODE_LOOKBEHIND = 16


def _placeholder(match: re.Match[str]) -> str:
    kind = match.lastgroup or "num"
    if kind == "num":
        start = match.start()
        if start and _CODE_BEFORE.search(match.string, max(0, start - _CODE_LOOKBEHIND),
                                         start) is not None:
            return match[0]
    return _PLACEHOLDERS[kind]


def normalize_message(text: str) -> str:
    """Reduce a message to its stable shape for grouping.

    Numbers, UUIDs, hex ids, hashes, e-mails, URLs, IPv4/IPv6 addresses, ISO dates and times,
    MAC addresses, durations and long quoted values become placeholders (``<num>``, ``<uuid>``,
    ``<hex>``, ``<hash>``, ``<email>``, ``<url>``, ``<ip>``, ``<mac>``, ``<date>``, ``<duration>``,
    ``'<str>'``);
    whitespace is collapsed; the result is at most ``MAX_NORMALIZED_CHARS`` long.

    Args:
        text: The raw message.

    Returns:
        The normalised message.
    """
    if len(text) > _MESSAGE_SCAN_CHARS:
        text = text[:_MESSAGE_SCAN_CHARS]
    text = _MESSAGE_RE.sub(_placeholder, text)
    text = " ".join(text.split())
    return text[:MAX_NORMALIZED_CHARS]


# --------------------------------------------------------------------------------------------
# Fingerprint
# --------------------------------------------------------------------------------------------


def _digest(parts: Iterable[Any]) -> str:
    payload = orjson.dumps([FINGERPRINT_VERSION, *parts])
    return hashlib.sha256(payload).hexdigest()[:_HASH_CHARS]


def short_type(name: str | None) -> str | None:
    """The type without its module: ``requests.exceptions.ConnectionError`` → ``ConnectionError``.

    Printed traces qualify types (Python, Java) where SDKs send the module apart (Sentry's
    ``type`` + ``module``), and a native log may say either: the short name is what they share.
    Ruby's ``ActiveRecord::RecordNotFound`` is kept whole (it is how every source spells it).
    """
    if not name:
        return None
    name = name.strip().lstrip("*")
    return name.rpartition(".")[2] or name or None


def _looks_minified(frames: Sequence[Frame]) -> bool:
    # Mangled names of a bundle without source maps: `e`, `t`, `n`, `Ab`. One or two of them
    # happen in real code too (`$`, `_`), so at least half of the contributing frames must be.
    short = sum(1 for f in frames if len(f.function) <= 2)
    return bool(frames) and short * 2 >= len(frames)


def _signature(exc: ParsedException, type_override: str | None = None,
               value_override: str | None = None) -> dict[str, Any]:
    type_ = short_type(type_override or exc.type)
    if type_ is None and exc.kind == "go" and exc.value:
        # A printed Go panic has no type, only its value: "runtime error: index out of range
        # [5] with length 3" and "... nil pointer dereference" at the same frames are two bugs.
        type_ = "panic: " + normalize_message(exc.value)[:120]
    in_app = [f for f in exc.raw if f.in_app]
    chosen = [f.frame() for f in (in_app or exc.raw)[-MAX_FRAMES:]]
    sig: dict[str, Any]
    if exc.kind == "js" and _looks_minified(chosen):
        value = value_override if value_override is not None else exc.value
        sig = {"type": type_, "message": normalize_message(value or ""), "minified": True}
    else:
        sig = {"type": type_, "frames": [f"{f.module}:{f.function}" for f in chosen],
               "in_app": bool(in_app)}
    if exc.members:
        members = [[_signature(e) for e in member[-MAX_CHAIN:]] for member in exc.members]
        # Members arrive in completion order, which changes from run to run.
        members.sort(key=orjson.dumps)
        sig["members"] = members[:MAX_CHAIN * 4]
    return sig


def _has_frames(chain: Sequence[ParsedException]) -> bool:
    return any(e.raw or e.members for e in chain)


def exception_chain(*, stack_trace: str | None, exceptions: list[dict[str, Any]] | None,
                    platform: str | None = None,
                    in_app_rules: InAppRules | None = None) -> list[ParsedException]:
    """The chain the fingerprint reads: structured ``exceptions`` first, else the text trace."""
    if exceptions:
        chain = to_chain(exceptions, platform=platform, in_app_rules=in_app_rules)
        if _has_frames(chain):
            return chain
    if stack_trace:
        chain = parse_exceptions(stack_trace)
        if in_app_rules is not None:
            for exc in _walk(chain):
                exc.raw = [_apply(in_app_rules, f) for f in exc.raw]
        return chain
    return []


def _walk(chain: Iterable[ParsedException]) -> Iterable[ParsedException]:
    for exc in chain:
        yield exc
        for member in exc.members:
            yield from _walk(member)


def _apply(rules: InAppRules, raw: RawFrame) -> RawFrame:
    decided = rules.decide(raw.frame().module, raw.path or raw.module)
    return raw if decided is None or decided == raw.in_app else raw.with_in_app(decided)


def _default(
    error_type: str | None,
    error_message: str | None,
    message: str | None,
    chain: Sequence[ParsedException],
) -> tuple[str, str, dict[str, Any]]:
    raised = chain[-1] if chain else None
    type_ = short_type(error_type) or (short_type(raised.type) if raised else None)
    if raised is not None and _has_frames(chain):
        sigs = [_signature(e) for e in chain[-MAX_CHAIN:-1]]
        sigs.append(_signature(raised, type_, error_message))
        components: dict[str, Any] = {"method": "stacktrace", "error_type": type_,
                                      "exceptions": sigs}
        return _digest(("stacktrace", sigs)), "stacktrace", components
    text = normalize_message(error_message or message or (raised.value if raised else "") or "")
    if type_:
        components = {"method": "type_message", "error_type": type_, "message": text}
        return _digest(("type_message", type_, text)), "type_message", components
    components = {"method": "message", "message": text}
    return _digest(("message", text)), "message", components


def parse_stack_trace(trace: str) -> list[Frame]:
    """The frames of the raised exception of a printed trace, outermost first.

    Args:
        trace: The stack trace as the runtime printed it.

    Returns:
        Frames, outermost first and innermost last; empty when nothing was recognised.
    """
    chain = parse_exceptions(trace)
    return list(chain[-1].frames) if chain else []


def compute_fingerprint(
    *,
    error_type: str | None,
    error_message: str | None,
    message: str | None,
    stack_trace: str | None,
    client_fingerprint: list[str] | None,
    exceptions: list[dict[str, Any]] | None = None,
    platform: str | None = None,
    in_app_rules: InAppRules | None = None,
) -> Fingerprint:
    """Compute the grouping fingerprint of an error event.

    Args:
        error_type: Exception class name, e.g. ``KeyError``.
        error_message: Exception message.
        message: Log message, used when there is no ``error_message``.
        stack_trace: Stack trace text in any supported format.
        client_fingerprint: The client's grouping override; ``{{ default }}`` elements expand to
            the default hash. ``None`` or empty means no override.
        exceptions: The checked structured chain (``exception_values.validate_exceptions``).
        platform: The log's platform, a hint for frames that do not say what language they are.
        in_app_rules: The project's in-app include/exclude setting.

    Returns:
        The fingerprint, with the components that explain it.
    """
    chain = exception_chain(stack_trace=stack_trace, exceptions=exceptions, platform=platform,
                            in_app_rules=in_app_rules)
    if client_fingerprint:
        components: dict[str, Any] = {"method": "client", "client": list(client_fingerprint)}
        expanded = list(client_fingerprint)
        if any(_DEFAULT_ELEMENT.fullmatch(e.strip()) for e in client_fingerprint):
            default_hash, _, default_components = _default(
                error_type, error_message, message, chain
            )
            expanded = [
                default_hash if _DEFAULT_ELEMENT.fullmatch(e.strip()) else e
                for e in client_fingerprint
            ]
            components["default_hash"] = default_hash
            components["default"] = default_components
        return Fingerprint(_digest(("client", expanded)), FINGERPRINT_VERSION, "client", components)
    digest, method, components = _default(error_type, error_message, message, chain)
    return Fingerprint(digest, FINGERPRINT_VERSION, method, components)
