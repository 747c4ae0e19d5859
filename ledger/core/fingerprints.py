"""Error fingerprints: which events are "the same error" (DESIGN §6).

A fingerprint is a short hash over the *components* that identify an error, plus the algorithm
version (so that a future change of the rules starts new groups instead of silently merging or
splitting old ones). The components are kept next to the hash so that the UI can say why two
events were grouped.

Precedence, first that applies wins:

1. ``client`` — the SDK sent ``fingerprint``; the literal element ``{{ default }}`` expands to the
   hash that rules 2-4 would have produced.
2. ``stacktrace`` — the stack trace yields frames: the error type plus the innermost in-app frames
   (module or file basename + function, never line numbers or directories).
3. ``type_message`` — the error type plus the normalised message.
4. ``message`` — the normalised message alone.

Pure functions, no I/O; every regular expression is compiled once at import.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "FINGERPRINT_VERSION",
    "Fingerprint",
    "Frame",
    "compute_fingerprint",
    "normalize_message",
    "parse_stack_trace",
]

FINGERPRINT_VERSION: int = 1

#: Innermost in-app frames that contribute to a stack-trace fingerprint.
MAX_FRAMES = 5
#: Characters of a raw message examined; the tail of a 10 000-char message is noise for grouping
#: and scanning it would only cost time.
_MESSAGE_SCAN_CHARS = 2048
#: Characters of a normalised message kept for hashing and for the components.
MAX_NORMALIZED_CHARS = 512
_HASH_CHARS = 32

_DEFAULT_ELEMENT = re.compile(r"\{\{\s*default\s*\}\}")

# An internal frame: (module, function, in_app). Tuples rather than Frame objects on the hot
# path: a frozen dataclass costs ~0.3 µs to build (a tuple 0.02 µs), and a 30-frame trace
# would build 30 of them.
_RawFrame = tuple[str, str, bool]


@dataclass(frozen=True, slots=True)
class Frame:
    """One stack frame, reduced to what identifies code rather than a deployment.

    Attributes:
        module: Module, class or file basename (``billing.py``, ``com.acme.UserService``).
        function: Function or method name.
        in_app: False for third-party and standard-library code.
    """

    module: str
    function: str
    in_app: bool


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
  | (?P<duration>(?<![\w.])\d+(?:\.\d+)?\ ?(?:{_DURATION_UNITS})\b)
  | (?P<hex>\b0[xX][0-9A-Fa-f]+\b
      | {_L}(?=[0-9A-Fa-f]*\d)(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{{8,}}{_R})
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
    # Long quoted values are payloads (SQL, JSON, user input) that differ on every event; short
    # ones usually name what failed (a key, a table, a column) and so distinguish errors.
    "quoted": "'<str>'",
    "num": "<num>",
}


def _placeholder(match: re.Match[str]) -> str:
    return _PLACEHOLDERS[match.lastgroup or "num"]


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
# Stack traces
# --------------------------------------------------------------------------------------------


def _basename(path: str) -> str:
    return path.rpartition("/")[2].rpartition("\\")[2]


# Python -------------------------------------------------------------------------------------

# No `^` anchor: the pattern then starts with a literal, which the regex engine finds with a fast
# substring search instead of testing every character for a line start. The optional `| ` of an
# ExceptionGroup traceback is thereby accepted too. Function names never contain whitespace.
_PY_FRAME = re.compile(r'File "([^"\r\n]*)", line [^,\r\n]+, in (\S+)')
_PY_CHAIN = re.compile(
    r"^[ \t|]*(?:The above exception was the direct cause of the following exception:"
    r"|During handling of the above exception, another exception occurred:)",
    re.M,
)


def _python_in_app(path: str) -> bool:
    # Substring tests: ~8x faster than one case-insensitive regex search with alternatives.
    if (
        "site-packages" in path
        or "dist-packages" in path
        or "/lib/python3" in path
        or "/lib/pypy" in path
        or "/lib-python/" in path
        or path.startswith("<frozen ")
    ):
        return False
    if "\\" in path:
        lowered = path.lower()
        return not ("\\lib\\" in lowered and "python" in lowered)
    return True


def _parse_python(trace: str) -> list[_RawFrame]:
    # Python prints a chain root cause first: `raise Wrapper(...) from exc` shows exc's traceback,
    # then "The above exception was the direct cause...", then Wrapper's. The root cause is where
    # the failure originated and its frames do not depend on which layer happened to wrap it, so
    # the first block that has frames is the one that counts (the same choice as for Java).
    chained = "of the above exception" in trace or "the following exception" in trace
    for block in _PY_CHAIN.split(trace) if chained else (trace,):
        frames = [
            (_basename(path), func, _python_in_app(path)) for path, func in _PY_FRAME.findall(block)
        ]
        if frames:
            return frames
    return []


# Java (and the JVM languages, and .NET, which prints the same shape) and JavaScript V8 ---------

# One pattern for the three shapes of an `at` line: JVM `at pkg.Class.method(File.java:42)`
# (no space before the parenthesis), V8 `at fn (file:line:col)` and V8 `at file:line:col`.
# It begins with a literal newline, so that findall skips from line to line with a fast
# substring search instead of testing every character for a line start (callers prepend "\n" for
# the first line), and `at` must start the line's text (so "... at user 42" in a message is not a
# frame).
_AT_LINE = re.compile(
    r"\n[ \t]*at[ \t]+"
    r"(?:([^\s(]+)\(|([^\n]+?)[ \t]+\(([^\n]*)\)[ \t]*\r?$|([^\n]+?)[ \t]*\r?$)",
    re.M,
)
_JVM_MORE = re.compile(
    r"\n[ \t]*\.\.\.[ \t]+(\d+)[ \t]+(?:more|common frames omitted)[ \t]*\r?$", re.M
)
_CAUSED_BY = re.compile(r"\n[ \t]*Caused by:")
_JVM_HIDDEN = re.compile(r"/0x[0-9a-fA-F]+")
# The JDK and widely used frameworks and drivers. Without per-project configuration the app's own
# package is unknown, so "not one of these" is the best guess at in-app; a wrong guess only
# changes which frames explain a group, not whether the same error keeps grouping together.
_JVM_NOT_APP = (
    "java.",
    "javax.",
    "jakarta.",
    "sun.",
    "com.sun.",
    "jdk.",
    "kotlin.",
    "kotlinx.",
    "scala.",
    "groovy.",
    "org.springframework.",
    "org.apache.",
    "org.hibernate.",
    "org.eclipse.",
    "org.junit.",
    "org.gradle.",
    "org.glassfish.",
    "io.netty.",
    "reactor.",
    "com.google.",
    "com.fasterxml.",
    "net.bytebuddy.",
    "org.postgresql.",
    "com.mysql.",
    "org.h2.",
    "com.zaxxer.",
    "ch.qos.logback.",
    "org.slf4j.",
    "okhttp3.",
    "io.grpc.",
    "io.undertow.",
    "org.jboss.",
    "com.amazonaws.",
    "software.amazon.",
    "System.",
    "Microsoft.",
)
# Where a substring test is enough it beats a regex search with alternatives, which tries every
# alternative at every character of the path.
_JS_NOT_APP_PREFIXES = ("node:", "internal/", "<anonymous>", "native", "index ", "eval at ", "[")


@functools.lru_cache(maxsize=4096)  # framework frames recur in every trace
def _jvm_frame(full: str) -> _RawFrame:
    # `java.base/java.lang.Thread.run` (Java 9+ module) and `app//com.acme.Foo.bar` (class loader
    # name): the prefix says where the class was loaded from, not which code it is.
    if "/0x" in full:
        # JDK 15+ hidden classes (lambdas): `Foo$$Lambda$14/0x0000000800066840.get`.
        full = _JVM_HIDDEN.sub("", full)
    if "/" in full:
        module_prefix, _, full = full.rpartition("/")
    else:
        module_prefix = ""
    cls, _, method = full.rpartition(".")
    in_app = not cls.startswith(_JVM_NOT_APP) and not module_prefix.startswith(("java.", "jdk."))
    return (cls or full, method, in_app)


def _strip_position(loc: str) -> str:
    """``/a/b.js:10:15`` -> ``/a/b.js`` (also ``:10`` alone)."""
    for _ in range(2):
        head, sep, tail = loc.rpartition(":")
        if not sep or not tail.isdigit():
            break
        loc = head
    return loc


def _js_frame(func: str, loc: str) -> _RawFrame:
    if func.startswith("async "):
        func = func[6:]
    if func.startswith("new "):
        func = func[4:]
    alias = func.find(" [as ")
    if alias >= 0:
        func = func[:alias]
    file = _strip_position(loc)
    if file.startswith("eval at "):
        return ("<eval>", func or "<anonymous>", False)
    in_app = not (
        file.startswith(_JS_NOT_APP_PREFIXES)
        or "node_modules" in file
        or "webpack/bootstrap" in file
        or "-extension://" in file
    )
    if file.startswith("file://"):
        file = file[7:]
    file = file.partition("?")[0].partition("#")[0]
    return (_basename(file), func or "<anonymous>", in_app)


_Section = tuple[list[_RawFrame], int]  # (frames innermost first, "... N more")


def _at_frames(text: str) -> list[_RawFrame]:
    frames: list[_RawFrame] = []
    for jvm, func, loc, bare in _AT_LINE.findall("\n" + text):
        if jvm:
            frames.append(_jvm_frame(jvm))
        elif func:
            frames.append(_js_frame(func, loc))
        else:
            frames.append(_js_frame("", bare))
    return frames


def _sections_with_suppressed(trace: str) -> list[_Section]:
    sections: list[_Section] = [([], 0)]
    suppressed_indent = -1
    for line in trace.splitlines():
        stripped = line.lstrip()
        if not stripped:
            continue
        indent = len(line) - len(stripped)
        if suppressed_indent >= 0:
            # A suppressed exception (and its own causes) is a side story of try-with-resources;
            # it ends at the next "Caused by:" less indented than its "Suppressed:" line.
            if stripped.startswith("Caused by:") and indent < suppressed_indent:
                suppressed_indent = -1
                sections.append(([], 0))
            continue
        if stripped.startswith("Suppressed:"):
            suppressed_indent = indent
        elif stripped.startswith("Caused by:"):
            sections.append(([], 0))
        elif stripped.startswith("at"):
            sections[-1][0].extend(_at_frames(stripped))
        elif (m := _JVM_MORE.match("\n" + stripped)) is not None:
            sections[-1] = (sections[-1][0], int(m[1]))
    return sections


def _parse_at(trace: str) -> list[_RawFrame]:
    if "Suppressed:" in trace:
        sections = _sections_with_suppressed(trace)
    else:
        parts = _CAUSED_BY.split(trace) if "Caused by:" in trace else [trace]
        sections = []
        for part in parts:
            shared = _JVM_MORE.search("\n" + part)
            sections.append((_at_frames(part), int(shared[1]) if shared else 0))
    # Java prints the outermost exception first and each "Caused by:" below it; the last one is
    # the root cause, where the failure originated (often deep in a driver or in app code), and
    # the wrappers above it vary with whichever framework layer caught and re-threw. So the root
    # cause's frames count. They are listed only up to the point shared with the enclosing
    # exception ("... N more" = the last N frames of the enclosing trace), so the full stack is
    # rebuilt from them: the in-app caller of a failing library call is usually in that shared
    # part.
    full: list[_RawFrame] = []
    for frames, more in sections:
        if not frames and not more and full:
            continue  # a "Caused by:" without frames adds nothing
        full = frames + (full[len(full) - more :] if more else [])
    full.reverse()  # innermost first as printed -> outermost first
    return full


# Go -----------------------------------------------------------------------------------------

_GO_FILE = re.compile(r"\s+(\S.*?):\d+(?:\s+\+0x[0-9a-fA-F]+)?\s*$")
# Top-level packages of the Go standard library (plus the builtin `panic`): their frames are not
# in-app wherever GOROOT happens to live.
# fmt: off
_GO_STDLIB = frozenset((
    "archive", "bufio", "builtin", "bytes", "cmp", "compress", "container", "context", "crypto",
    "database", "debug", "embed", "encoding", "errors", "expvar", "flag", "fmt", "go", "hash",
    "html", "image", "index", "internal", "io", "iter", "log", "maps", "math", "mime", "net", "os",
    "panic", "path", "plugin", "reflect", "regexp", "runtime", "slices", "sort", "strconv",
    "strings", "structs", "sync", "syscall", "testing", "text", "time", "unicode", "unique",
    "unsafe", "weak",
))
# fmt: on


def _go_function(line: str) -> str:
    """``created by net/http.(*Server).Serve in goroutine 1`` -> ``net/http.(*Server).Serve``."""
    line = line.rstrip()
    if line.startswith("created by "):
        line = line[11:]
        line = line.partition(" in goroutine ")[0]
    if line.endswith(")"):
        # The final parenthesised group is the argument list; it never holds parentheses.
        line = line[: line.rfind("(")]
    return line


def _go_frame(func: str, path: str) -> _RawFrame:
    pkg_path, slash, tail = func.rpartition("/")
    top = (pkg_path.partition("/")[0] if slash else tail.partition(".")[0]).lower()
    in_app = not (
        top in _GO_STDLIB
        or "/usr/local/go/src/" in path
        or "/usr/lib/go" in path
        or "/pkg/mod/" in path  # the module cache: third-party code
        or "/vendor/" in path
        or "/src/runtime/" in path
    )
    return (_basename(path), tail, in_app)


def _parse_go(trace: str) -> list[_RawFrame]:
    frames: list[_RawFrame] = []
    func: str | None = None
    seen_goroutine = False
    for line in trace.splitlines():
        if line.startswith("goroutine "):
            if seen_goroutine and frames:
                break  # only the goroutine that panicked (printed first) counts
            seen_goroutine = True
            func = None
            continue
        if not line.strip():
            func = None
            continue
        if line[0] in " \t":
            m = _GO_FILE.match(line)
            if m is not None and func is not None:
                frames.append(_go_frame(func, m[1]))
            func = None
        else:
            func = _go_function(line)
    frames.reverse()  # Go prints innermost first
    return frames


# Ruby ---------------------------------------------------------------------------------------

_RUBY_FRAME = re.compile(r"^\s*(?:from\s+)?([^\s:][^:\n]*):\d+:in [`']([^'`\n]*)'", re.M)
_RUBY_QUALIFIER = re.compile(r"[A-Z][\w:]*[#.](?=[^#.\s]+$)")


def _ruby_in_app(path: str) -> bool:
    return not (
        path.startswith("<internal:")
        or "/gems/" in path
        or "/bundle/" in path
        or "/vendor/" in path
        or "/rubies/" in path
        or "/lib/ruby/" in path
        or "/.rbenv/" in path
    )


def _parse_ruby(trace: str) -> list[_RawFrame]:
    frames = [
        # Ruby 3.4 labels frames `User#save` where older versions said `save`: drop the class
        # qualifier so that upgrading Ruby does not reopen every error group.
        (_basename(path), _RUBY_QUALIFIER.sub("", func), _ruby_in_app(path))
        for path, func in _RUBY_FRAME.findall(trace)
    ]
    frames.reverse()  # Ruby prints innermost first
    return frames


# Firefox / Safari ----------------------------------------------------------------------------

_GECKO_FRAME = re.compile(
    r"^[ \t]*([^@\s]*|global code|eval code|module code)@(\S+?)(?::\d+){1,2}[ \t]*$", re.M
)


def _parse_gecko(trace: str) -> list[_RawFrame]:
    frames = [_js_frame(func, loc) for func, loc in _GECKO_FRAME.findall(trace)]
    frames.reverse()  # innermost first
    return frames


# Dispatch -----------------------------------------------------------------------------------

# Cheap substring tests pick the parsers worth running; the first that finds frames wins.
_PARSERS: tuple[tuple[Callable[[str], bool], Callable[[str], list[_RawFrame]]], ...] = (
    (lambda t: 'File "' in t, _parse_python),
    (lambda t: "goroutine " in t or ".go:" in t, _parse_go),
    (lambda t: "at " in t, _parse_at),
    (lambda t: ":in " in t, _parse_ruby),
    (lambda t: "@" in t, _parse_gecko),
)


def _parse(trace: str) -> list[_RawFrame]:
    for applies, parse in _PARSERS:
        if applies(trace):
            frames = parse(trace)
            if frames:
                return frames
    return []


# Names that change between runs of the same code: JVM lambda and proxy classes, reflection
# accessors, content-hashed JS bundles, compiled ERB template methods.
_VOLATILE_NAME = re.compile(
    r"(?P<lambda>\$\$Lambda(?:\$\d+)?(?:/0x[0-9a-fA-F]+)?)"
    r"|(?P<accessor>(?<=GeneratedMethodAccessor)\d+|(?<=GeneratedConstructorAccessor)\d+)"
    r"|(?P<hex>0x[0-9a-fA-F]+|(?<![0-9A-Za-z])(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])"
    r"[0-9a-fA-F]{8,}(?![0-9A-Za-z]))"
    r"|(?P<num>\d{5,})"
)
_VOLATILE_REPLACEMENT = {"lambda": "$$Lambda", "accessor": "", "hex": "<hex>", "num": "<num>"}


@functools.lru_cache(maxsize=4096)  # the same code locations recur on every event
def _stable_name(name: str) -> str:
    return _VOLATILE_NAME.sub(lambda m: _VOLATILE_REPLACEMENT[m.lastgroup or "num"], name)


def parse_stack_trace(trace: str) -> list[Frame]:
    """Parse a Python, JavaScript (V8 or Firefox/Safari), Java, Go or Ruby stack trace.

    For chained exceptions only the root cause counts (see ``_parse_python`` and ``_parse_at``),
    and for a Go panic only the panicking goroutine.

    Args:
        trace: The stack trace as the runtime printed it.

    Returns:
        Frames, outermost first and innermost last; empty when nothing was recognised.
    """
    return [Frame(_stable_name(m), _stable_name(f), a) for m, f, a in _parse(trace)]


# --------------------------------------------------------------------------------------------
# Fingerprint
# --------------------------------------------------------------------------------------------


def _digest(parts: Iterable[Any]) -> str:
    payload = orjson.dumps([FINGERPRINT_VERSION, *parts])
    return hashlib.sha256(payload).hexdigest()[:_HASH_CHARS]


def _default(
    error_type: str | None,
    error_message: str | None,
    message: str | None,
    stack_trace: str | None,
) -> tuple[str, str, dict[str, Any]]:
    error_type = error_type.strip() if error_type else None
    if stack_trace:
        frames = _parse(stack_trace)
        if frames:
            in_app = [f for f in frames if f[2]]
            chosen = (in_app or frames)[-MAX_FRAMES:]
            names = [f"{_stable_name(m)}:{_stable_name(f)}" for m, f, _ in chosen]
            components: dict[str, Any] = {
                "method": "stacktrace",
                "error_type": error_type,
                "frames": names,
                "in_app": bool(in_app),
            }
            return _digest(("stacktrace", error_type or "", names)), "stacktrace", components
    text = normalize_message(error_message or message or "")
    if error_type:
        components = {"method": "type_message", "error_type": error_type, "message": text}
        return _digest(("type_message", error_type, text)), "type_message", components
    components = {"method": "message", "message": text}
    return _digest(("message", text)), "message", components


def compute_fingerprint(
    *,
    error_type: str | None,
    error_message: str | None,
    message: str | None,
    stack_trace: str | None,
    client_fingerprint: list[str] | None,
) -> Fingerprint:
    """Compute the grouping fingerprint of an error event.

    Args:
        error_type: Exception class name, e.g. ``KeyError``.
        error_message: Exception message.
        message: Log message, used when there is no ``error_message``.
        stack_trace: Stack trace text in any supported format.
        client_fingerprint: The client's grouping override; ``{{ default }}`` elements expand to
            the default hash. ``None`` or empty means no override.

    Returns:
        The fingerprint, with the components that explain it.
    """
    if client_fingerprint:
        components: dict[str, Any] = {"method": "client", "client": list(client_fingerprint)}
        expanded = list(client_fingerprint)
        if any(_DEFAULT_ELEMENT.fullmatch(e.strip()) for e in client_fingerprint):
            default_hash, _, default_components = _default(
                error_type, error_message, message, stack_trace
            )
            expanded = [
                default_hash if _DEFAULT_ELEMENT.fullmatch(e.strip()) else e
                for e in client_fingerprint
            ]
            components["default_hash"] = default_hash
            components["default"] = default_components
        return Fingerprint(_digest(("client", expanded)), FINGERPRINT_VERSION, "client", components)
    digest, method, components = _default(error_type, error_message, message, stack_trace)
    return Fingerprint(digest, FINGERPRINT_VERSION, method, components)
