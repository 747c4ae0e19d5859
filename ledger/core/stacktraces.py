"""Printed stack traces parsed into exception chains, in time linear in the input.

Python, JavaScript (V8, Firefox/Safari), Java (and the JVM languages and .NET), Go and Ruby.
The result is what a Sentry SDK would have sent as ``exception.values``: a chain oldest first
and the raised exception last, each exception with its type, message and frames outermost
first, and for a Python ``ExceptionGroup`` its members. Frames get their identity and in-app
flag from ``ledger.core.frames``, the same functions that structured frames go through.

Linear time: the text is read line by line, every line cut to ``MAX_LINE_CHARS``, and each
line is looked at with string operations or a regular expression anchored at its start that
cannot backtrack more than the line's length. (The previous parser ran one multi-line pattern
over the whole text; a 48 KB adversarial trace made it backtrack for 14 s.)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ledger.core import frames as fr
from ledger.core.frames import Frame, RawFrame

__all__ = ["MAX_LINE_CHARS", "ParsedException", "parse_exceptions"]

#: Characters of a line examined; no real frame line is longer, and the cap bounds the work.
MAX_LINE_CHARS = 1024
#: Lines of a trace examined (a 50 000-char trace has at most that many anyway).
MAX_LINES = 20_000


@dataclass(slots=True)
class ParsedException:
    """One exception of a chain.

    Attributes:
        type: The exception type as printed (``KeyError``, ``java.lang.IllegalStateException``),
            or None when the trace does not say.
        value: Its message, when printed.
        raw: The frames as parsed, outermost first, the crashing frame last (``frames`` gives
            their identities).
        kind: ``python``, ``js``, ``jvm``, ``go``, ``ruby`` or ``other``.
        members: For an exception group, each member's own chain (in the order printed, which
            is completion order; the fingerprint sorts them).
    """

    type: str | None
    value: str | None
    raw: list[RawFrame]
    kind: str
    members: list[list[ParsedException]] = field(default_factory=list)

    @property
    def frames(self) -> list[Frame]:
        """Every frame's identity, outermost first."""
        return [r.frame() for r in self.raw]


def _lines(trace: str) -> list[str]:
    lines = trace.splitlines()
    if len(lines) > MAX_LINES:
        lines = lines[:MAX_LINES]
    return [line[:MAX_LINE_CHARS] for line in lines]


# "TypeError: message", "java.lang.IllegalStateException: message", "Error [ERR_X]: message",
# "ValueError". Anchored, and only a run of identifier characters can backtrack.
_TYPE_LINE = re.compile(r"([A-Za-z_$][\w$.]*)(?: \[[^\]\s]{1,64}\])?(?::[ \t]?(.*))?\Z")


def _type_line(text: str) -> tuple[str, str | None] | None:
    m = _TYPE_LINE.match(text.rstrip())
    if m is None:
        return None
    return m[1], m[2]


# Python -------------------------------------------------------------------------------------


class _PythonChain:
    """The exceptions of one region of a Python traceback (the top, or one group member)."""

    def __init__(self, member: bool) -> None:
        self.done: list[ParsedException] = []
        self.frames: list[RawFrame] = []
        self.type: str | None = None
        self.value: str | None = None
        self.started = member  # a member may print its exception line without a traceback

    def finish(self) -> None:
        if self.type is not None or self.frames:
            self.done.append(ParsedException(self.type, self.value, self.frames, "python"))
        self.frames, self.type, self.value = [], None, None

    def feed(self, content: str) -> None:
        if content.startswith(("Traceback (most recent call last)", "Exception Group Traceback")):
            self.finish()
            self.started = True
            return
        if content.startswith(("The above exception was the direct cause",
                               "During handling of the above exception")):
            self.finish()
            return
        text = content.lstrip(" \t")
        if text.startswith('File "') and content[0] in " \t":
            if self.type is not None:
                self.finish()
            frame = _python_frame(text)
            if frame is not None:
                self.frames.append(frame)
                self.started = True
            return
        if (self.type is None and self.started and content[:1] not in ("", " ", "\t")
                and (parsed := _type_line(content)) is not None):
            self.type, self.value = parsed


def _python_frame(text: str) -> RawFrame | None:
    # `File "/srv/app/billing.py", line 12, in charge`
    end = text.find('"', 6)
    if end < 0:
        return None
    path = text[6:end]
    at = text.find(", in ", end)
    if at < 0:
        return None
    func = text[at + 5:].strip().partition(" ")[0]
    return RawFrame("python", path, "", func, fr.python_in_app(path))


def _parse_python(trace: str) -> list[ParsedException]:
    # An ExceptionGroup prints each member indented behind "|" markers, between separators
    # `+-+---- 1 ----` / `+---- 2 ----` and a closing `+------`. Each member is parsed as a region
    # of its own, keyed by the path of members that encloses it.
    regions: dict[tuple[int, ...], _PythonChain] = {(): _PythonChain(member=False)}
    path: list[tuple[int, int]] = []  # (column of the member's marker, member serial)
    serial = 0
    for line in _lines(trace):
        stripped = line.lstrip(" ")
        if not stripped:
            continue
        column = len(line) - len(stripped)
        if stripped[0] in "+|":
            dashes = line.find("---", column)
            if stripped[0] == "+" and dashes >= 0:
                marker = line.rfind("+", 0, dashes)
                while path and path[-1][0] >= marker:
                    path.pop()
                if any(c.isdigit() for c in line[dashes:]):
                    serial += 1
                    path.append((marker, serial))
                continue
            while path and path[-1][0] > column:
                path.pop()
            content = stripped[1:]
            if content.startswith(" "):
                content = content[1:]
        else:
            content = line
        key = tuple(s for _, s in path)
        region = regions.get(key)
        if region is None:
            region = regions[key] = _PythonChain(member=True)
        region.feed(content)
    for region in regions.values():
        region.finish()

    def build(key: tuple[int, ...]) -> list[ParsedException]:
        chain = regions[key].done
        children = [k for k in regions if len(k) == len(key) + 1 and k[: len(key)] == key]
        if chain and children:
            chain[-1].members = [c for c in (build(k) for k in children) if c]
        return chain

    return build(())


# Java / .NET / V8: `at` lines ------------------------------------------------------------------


def _strip_position(loc: str) -> str:
    """``/a/b.js:10:15`` -> ``/a/b.js`` (also ``:10`` alone)."""
    for _ in range(2):
        head, sep, tail = loc.rpartition(":")
        if not sep or not tail.isdigit():
            break
        loc = head
    return loc


_JVM_HIDDEN = re.compile(r"/0x[0-9a-fA-F]+")


def _jvm_frame(full: str) -> RawFrame:
    # `java.base/java.lang.Thread.run` (Java 9+ module) and `app//com.acme.Foo.bar` (class loader
    # name): the prefix says where the class was loaded from, not which code it is.
    if "/0x" in full:
        # JDK 15+ hidden classes (lambdas): `Foo$$Lambda$14/0x0000000800066840.get`.
        full = _JVM_HIDDEN.sub("", full)
    module_prefix, _, full = full.rpartition("/")
    cls, _, method = full.rpartition(".")
    cls = cls or full
    in_app = fr.jvm_in_app(cls) and not module_prefix.startswith(("java.", "jdk."))
    return RawFrame("jvm", "", cls, method, in_app)


def _js_frame(func: str, loc: str) -> RawFrame:
    file = _strip_position(loc.strip())
    if file.startswith("eval at "):
        return RawFrame("eval", "", "", func, False)
    in_app = fr.js_in_app(file)
    if file.startswith("file://"):
        file = file[7:]
    return RawFrame("js", file, "", func, in_app)


@functools.lru_cache(maxsize=8192)  # framework frames recur in every trace
def _at_frame(rest: str) -> tuple[RawFrame, str]:
    """A frame from the text after ``at ``, and its kind (``jvm`` or ``js``)."""
    rest = rest.strip()
    paren = rest.find("(")
    space = rest.find(" ")
    if paren > 0 and (space < 0 or paren < space):
        # JVM `pkg.Class.method(File.java:42)` and .NET `Ns.Class.Method(Type arg) in f.cs:line 4`
        # have no space before the parenthesis; V8 always has one.
        return _jvm_frame(rest[:paren]), "jvm"
    if rest.endswith(")"):
        # Usually the line holds one "(": the one that opens the location.
        opening = rest.rfind(" (")
        if opening > 0 and rest.find("(") == opening + 1 and rest.find(")") == len(rest) - 1:
            return _js_frame(rest[:opening].rstrip(), rest[opening + 2: -1]), "js"
        depth = 0
        for index in range(len(rest) - 1, -1, -1):  # the "(" matching the final ")"
            char = rest[index]
            if char == ")":
                depth += 1
            elif char == "(":
                depth -= 1
                if depth == 0:
                    func = rest[:index].rstrip()
                    if func:
                        return _js_frame(func, rest[index + 1: -1]), "js"
                    break
    return _js_frame("", rest), "js"


@dataclass(slots=True)
class _Section:
    type: str | None = None
    value: str | None = None
    frames: list[RawFrame] = field(default_factory=list)  # innermost first, as printed
    more: int = 0
    kind: str = "jvm"


def _header(section: _Section, text: str) -> None:
    if text.startswith("Exception in thread "):
        quote = text.find('" ', 21)
        text = text[quote + 2:] if quote > 0 else text
    if text.startswith("Uncaught "):
        text = text[9:]
    parsed = _type_line(text)
    if parsed is not None:
        section.type, section.value = parsed


def _more(text: str) -> int | None:
    # `... 5 more` / `... 12 common frames omitted`
    if not text.startswith("..."):
        return None
    words = text[3:].split()
    if len(words) >= 2 and words[0].isdigit() and words[1] in ("more", "common"):
        return int(words[0])
    return None


def _parse_at(trace: str) -> list[ParsedException]:
    sections = [_Section()]
    suppressed_indent = -1
    for line in _lines(trace):
        text = line.lstrip(" \t")
        if not text:
            continue
        indent = len(line) - len(text)
        if suppressed_indent >= 0:
            # A suppressed exception (and its own causes) is a side story of try-with-resources;
            # it ends at the next "Caused by:" less indented than its "Suppressed:" line.
            if not (text.startswith("Caused by:") and indent < suppressed_indent):
                continue
            suppressed_indent = -1
        if text.startswith(("at ", "at\t")):
            frame, kind = _at_frame(text[3:])
            sections[-1].frames.append(frame)
            sections[-1].kind = kind
        elif text.startswith("Caused by:"):
            section = _Section()
            _header(section, text[10:].lstrip())
            sections.append(section)
        elif text.startswith("Suppressed:"):
            suppressed_indent = indent
        elif (more := _more(text)) is not None:
            sections[-1].more = more
        elif sections[-1].type is None and not sections[-1].frames:
            _header(sections[-1], text)
    # Java prints the outermost exception first and each "Caused by:" below it, each cause's
    # frames only up to the part shared with the enclosing one ("... N more" = the last N frames
    # of the enclosing trace). Each stack is rebuilt whole, then the chain is reversed: oldest
    # (the root cause) first, the raised exception last.
    chain: list[ParsedException] = []
    enclosing: list[RawFrame] = []
    for section in sections:
        if not section.frames and not section.more and section.type is None:
            continue
        full = section.frames + (enclosing[len(enclosing) - section.more:] if section.more
                                 else [])
        enclosing = full
        chain.append(ParsedException(section.type, section.value, full[::-1], section.kind))
    chain.reverse()
    return chain


# Go -----------------------------------------------------------------------------------------


def _go_function(line: str) -> str:
    """``created by net/http.(*Server).Serve in goroutine 1`` -> ``net/http.(*Server).Serve``."""
    line = line.rstrip()
    if line.startswith("created by "):
        line = line[11:].partition(" in goroutine ")[0]
    if line.endswith(")"):
        # The final parenthesised group is the argument list; it never holds parentheses.
        line = line[: line.rfind("(")]
    return line


def _go_file(line: str) -> str | None:
    # `\t/srv/shop/internal/billing/service.go:42 +0x1d`
    text = line.strip().partition(" +0x")[0].rstrip()
    path, sep, number = text.rpartition(":")
    return path if sep and number.isdigit() and path else None


def _parse_go(trace: str) -> list[ParsedException]:
    frames: list[RawFrame] = []
    func: str | None = None
    lines = _lines(trace)
    # `debug.Stack()` output starts at "goroutine N"; a trace cut before it is read whole.
    has_header = any(line.startswith("goroutine ") for line in lines)
    seen_goroutine = not has_header
    value: str | None = None
    for line in lines:
        if line.startswith("goroutine "):
            if seen_goroutine and frames:
                break  # only the goroutine that panicked (printed first) counts
            seen_goroutine = True
            func = None
            continue
        if not line.strip():
            func = None
            continue
        if not seen_goroutine:
            if value is None and line.startswith(("panic: ", "fatal error: ")):
                value = line.partition(": ")[2].removesuffix(" [recovered]")
            continue
        if line[0] in " \t":
            path = _go_file(line)
            if path is not None and func is not None:
                package, function = fr.split_go_function(func)
                frames.append(RawFrame("go", path, package, function,
                                       fr.go_in_app(package, path)))
            func = None
        else:
            func = _go_function(line)
    frames.reverse()  # Go prints innermost first
    return [ParsedException(None, value, frames, "go")] if frames else []


# Ruby ---------------------------------------------------------------------------------------


_RUBY_TYPE = re.compile(r"\(([A-Z][\w]*(?:::[A-Z]\w*)*)\)")


def _ruby_line(text: str) -> tuple[RawFrame, str] | None:
    """A frame from ``path:12:in `label'`` and what follows the label."""
    if text.startswith("from "):
        text = text[5:].lstrip()
    at = text.find(":in ")
    if at <= 0 or at + 5 >= len(text) or text[at + 4] not in "`'":
        return None
    path, sep, number = text[:at].rpartition(":")
    if not sep or not number.isdigit() or not path or path[0].isspace():
        return None
    end = text.find("'", at + 5)
    if end < 0:
        return None
    label = text[at + 5:end]
    frame = RawFrame("ruby", path, "", label, fr.ruby_in_app(path))
    return frame, text[end + 1:]


def _parse_ruby(trace: str) -> list[ParsedException]:
    frames: list[RawFrame] = []
    type_: str | None = None
    value: str | None = None
    for line in _lines(trace):
        parsed = _ruby_line(line.strip())
        if parsed is None:
            continue
        frame, tail = parsed
        if not frames and tail.startswith(": "):
            # `app/models/order.rb:12:in 'total': undefined method 'x' for nil (NoMethodError)`
            message = tail[2:].rstrip()
            types = _RUBY_TYPE.findall(message)
            type_ = types[-1] if types else None
            value = message.replace(f" ({type_})", "") if type_ else message
        frames.append(frame)
    frames.reverse()  # Ruby prints innermost first
    return [ParsedException(type_, value, frames, "ruby")] if frames else []


# Firefox / Safari ----------------------------------------------------------------------------

_GECKO_NAMED = ("global code", "eval code", "module code")


def _parse_gecko(trace: str) -> list[ParsedException]:
    frames: list[RawFrame] = []
    for line in _lines(trace):
        text = line.strip()
        at = text.find("@")
        if at < 0:
            continue
        func, loc = text[:at], text[at + 1:]
        if (" " in func and func not in _GECKO_NAMED) or not loc or " " in loc:
            continue
        if _strip_position(loc) == loc:
            continue  # no line number: not a frame
        frames.append(_js_frame(func, loc))
    frames.reverse()  # innermost first
    return [ParsedException(None, None, frames, "js")] if frames else []


# Dispatch -----------------------------------------------------------------------------------

# Cheap substring tests pick the parsers worth running; the first that finds frames wins.
_PARSERS: tuple[tuple[Callable[[str], bool], Callable[[str], list[ParsedException]]], ...] = (
    (lambda t: 'File "' in t, _parse_python),
    (lambda t: "goroutine " in t or ".go:" in t, _parse_go),
    (lambda t: "at " in t or "at\t" in t, _parse_at),
    (lambda t: ":in " in t, _parse_ruby),
    (lambda t: "@" in t, _parse_gecko),
)


def _has_frames(chain: list[ParsedException]) -> bool:
    return any(e.raw or (e.members and any(_has_frames(m) for m in e.members))
               for e in chain)


def parse_exceptions(trace: str) -> list[ParsedException]:
    """Parse a printed stack trace into its exception chain.

    Args:
        trace: The stack trace as the runtime printed it.

    Returns:
        The chain, oldest first and the raised exception last; empty when no frame was
        recognised.
    """
    for applies, parse in _PARSERS:
        if applies(trace):
            chain = parse(trace)
            if _has_frames(chain):
                return chain
    return []
