"""The ``exceptions`` field of a log: Sentry's exception interface, checked and bounded.

Shape (exactly Sentry's ``exception.values``): a list oldest first and the raised exception
last, each ``{"type", "value", "module"?, "mechanism"?, "stacktrace": {"frames": [...]}}`` with
frames caller first (the crashing frame last), each frame ``{"filename", "abs_path", "module",
"function", "lineno", "colno", "in_app", "context_line", "pre_context", "post_context"}``.

Bounds: at most ``MAX_EXCEPTIONS`` exceptions (the newest kept), ``MAX_FRAMES`` frames each (the
innermost kept, like Sentry's SDKs trim), strings cut to their limits, context to
``MAX_CONTEXT_LINES`` lines each side, only the known keys kept (``vars`` and other extras are
dropped), and at most ``MAX_EXCEPTIONS_BYTES`` as JSON. A wrong shape (a frame that is not an
object, a ``lineno`` that is a string …) is refused with the path of the offending value.

Stored inside the log's ``attributes`` under the reserved key ``STORAGE_KEY`` (``$exceptions``),
so that it is read back with the log and the ``logs`` table and its COPY codec stay as they are.

``to_chain`` turns a checked value into the same ``ParsedException`` chain that a printed
trace parses into, through the same frame functions (``ledger.core.frames``), so that an error
groups the same whether it arrives as structured frames or as text.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import msgspec
import orjson

from ledger.core import frames as fr
from ledger.core.frames import InAppRules, RawFrame
from ledger.core.stacktraces import ParsedException

__all__ = [
    "MAX_EXCEPTIONS",
    "MAX_EXCEPTIONS_BYTES",
    "MAX_FRAMES",
    "STORAGE_KEY",
    "ShapeError",
    "Uncommon",
    "to_chain",
    "validate_common",
    "validate_exceptions",
]

STORAGE_KEY = "$exceptions"
MAX_EXCEPTIONS = 32
MAX_FRAMES = 250
MAX_CONTEXT_LINES = 10
MAX_EXCEPTIONS_BYTES = 262_144
_MAX_TYPE = 255
_MAX_VALUE = 5_000
_MAX_FRAME_TEXT = 1_024
_MAX_INT = 2**31 - 1
_FRAME_TEXT = ("filename", "abs_path", "module", "function", "context_line", "package",
               "platform")
_MECHANISM_TEXT = ("type", "source", "description")
_MECHANISM_BOOL = ("handled", "synthetic", "is_exception_group")
_MECHANISM_INT = ("exception_id", "parent_id")


class ShapeError(ValueError):
    """An ``exceptions`` value of the wrong shape; ``field`` is its path."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _clean(text: str) -> str:
    if text.isascii():  # the usual case, checked in C: only NUL can be wrong
        return text.replace("\x00", "") if "\x00" in text else text
    if "\x00" in text:
        text = text.replace("\x00", "")
    # Lone surrogates (from a `\ud800` escape) cannot be stored by PostgreSQL.
    return text.encode("utf-8", "replace").decode("utf-8")


def _text(value: Any, where: str, limit: int) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise ShapeError(where, f"{where} must be a string")
    if len(value) > limit:
        value = value[: limit * 2]
    return _clean(value)[:limit]


def _int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= _MAX_INT:
        raise ShapeError(where, f"{where} must be an integer from 0 to {_MAX_INT}")
    return value


def _bool(value: Any, where: str) -> bool | None:
    if value is None:
        return None
    if type(value) is not bool:
        raise ShapeError(where, f"{where} must be true or false")
    return value


def _context(value: Any, where: str, keep_last: bool) -> list[str] | None:
    if value is None:
        return None
    if type(value) is not list:
        raise ShapeError(where, f"{where} must be a list of strings")
    lines = value[-MAX_CONTEXT_LINES:] if keep_last else value[:MAX_CONTEXT_LINES]
    return [_text(line, where, _MAX_FRAME_TEXT) or "" for line in lines]


_FRAME_KINDS = {**dict.fromkeys(_FRAME_TEXT, "text"), "lineno": "int", "colno": "int",
                "in_app": "bool", "pre_context": "pre", "post_context": "post"}


def _frame(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise ShapeError(where, f"{where} must be an object")
    out: dict[str, Any] = {}
    # Over the keys the frame has (SDKs send half of them), not over every known key.
    for key, item in value.items():
        kind = _FRAME_KINDS.get(key)
        if kind is None or item is None:
            continue  # vars, data, instruction_addr …: not kept
        if kind == "text":
            if type(item) is str and len(item) <= _MAX_FRAME_TEXT and item.isascii() \
                    and "\x00" not in item:
                out[key] = item  # the usual case, without a call
            else:
                out[key] = _text(item, f"{where}.{key}", _MAX_FRAME_TEXT)
        elif kind == "int":
            out[key] = _int(item, f"{where}.{key}")
        elif kind == "bool":
            out[key] = _bool(item, f"{where}.{key}")
        else:
            out[key] = _context(item, f"{where}.{key}", keep_last=kind == "pre")
    return out


def _mechanism(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if type(value) is not dict:
        raise ShapeError(where, f"{where} must be an object")
    out: dict[str, Any] = {}
    for key in _MECHANISM_TEXT:
        text = _text(value.get(key), f"{where}.{key}", _MAX_TYPE)
        if text is not None:
            out[key] = text
    for key in _MECHANISM_BOOL:
        flag = _bool(value.get(key), f"{where}.{key}")
        if flag is not None:
            out[key] = flag
    for key in _MECHANISM_INT:
        number = _int(value.get(key), f"{where}.{key}")
        if number is not None:
            out[key] = number
    return out


def _exception(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise ShapeError(where, f"{where} must be an object")
    out: dict[str, Any] = {}
    type_ = _text(value.get("type"), f"{where}.type", _MAX_TYPE)
    message = _text(value.get("value"), f"{where}.value", _MAX_VALUE)
    if not type_ and not message:
        raise ShapeError(where, f"{where} needs a type or a value")
    out["type"] = type_
    out["value"] = message
    module = _text(value.get("module"), f"{where}.module", _MAX_FRAME_TEXT)
    if module is not None:
        out["module"] = module
    mechanism = _mechanism(value.get("mechanism"), f"{where}.mechanism")
    if mechanism is not None:
        out["mechanism"] = mechanism
    stacktrace = value.get("stacktrace")
    if stacktrace is not None:
        if type(stacktrace) is not dict:
            raise ShapeError(f"{where}.stacktrace", f"{where}.stacktrace must be an object")
        frames = stacktrace.get("frames")
        if frames is None:
            frames = []
        if type(frames) is not list:
            raise ShapeError(f"{where}.stacktrace.frames",
                             f"{where}.stacktrace.frames must be a list of frames")
        offset = max(0, len(frames) - MAX_FRAMES)
        out["stacktrace"] = {"frames": [
            _frame(frame, f"{where}.stacktrace.frames[{offset + i}]")
            for i, frame in enumerate(frames[offset:])]}
    return out


def validate_exceptions(value: Any) -> list[dict[str, Any]] | None:
    """Check and bound an ``exceptions`` value; None when not given.

    Raises:
        ShapeError: The value, or a part of it, has the wrong shape or is too large.
    """
    if value is None:
        return None
    if type(value) is not list:
        raise ShapeError("exceptions", "exceptions must be a list of exception objects")
    if not value:
        return None
    offset = max(0, len(value) - MAX_EXCEPTIONS)
    cleaned = [_exception(item, f"exceptions[{offset + i}]")
               for i, item in enumerate(value[offset:])]
    size = len(orjson.dumps(cleaned))
    if size > MAX_EXCEPTIONS_BYTES:
        raise ShapeError("exceptions", f"exceptions must be at most {MAX_EXCEPTIONS_BYTES} bytes"
                                       f" as JSON, got {size}")
    return cleaned


# --------------------------------------------------------------------------------------------
# The common case, checked in C
# --------------------------------------------------------------------------------------------

# What ``validate_exceptions`` keeps unchanged, as msgspec types: every known key with a value
# of its type within its limit, no null in a frame (``_frame`` drops those), no unknown key
# anywhere (``_frame`` and ``_exception`` drop those), no list beyond what is kept. A value of
# that shape is a fixed point of ``_frame``: the frame dicts can be used as they were parsed,
# in their own key order, and only the exceptions themselves (two or three) are rebuilt.
_FrameText = Annotated[str, msgspec.Meta(max_length=_MAX_FRAME_TEXT)]
_Int = Annotated[int, msgspec.Meta(ge=0, le=_MAX_INT)]
_Context = Annotated[list[_FrameText], msgspec.Meta(max_length=MAX_CONTEXT_LINES)]
_Unset = msgspec.UnsetType
_UNSET = msgspec.UNSET


class _CommonFrame(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    filename: _FrameText | _Unset = _UNSET
    abs_path: _FrameText | _Unset = _UNSET
    module: _FrameText | _Unset = _UNSET
    function: _FrameText | _Unset = _UNSET
    context_line: _FrameText | _Unset = _UNSET
    package: _FrameText | _Unset = _UNSET
    platform: _FrameText | _Unset = _UNSET
    lineno: _Int | _Unset = _UNSET
    colno: _Int | _Unset = _UNSET
    in_app: bool | _Unset = _UNSET
    pre_context: _Context | _Unset = _UNSET
    post_context: _Context | _Unset = _UNSET


class _CommonStacktrace(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    frames: Annotated[list[_CommonFrame], msgspec.Meta(max_length=MAX_FRAMES)] | None = None


_MechanismText = Annotated[str, msgspec.Meta(max_length=_MAX_TYPE)]
_MECHANISM_KEYS = (*_MECHANISM_TEXT, *_MECHANISM_BOOL, *_MECHANISM_INT)  # _mechanism's order
#: _mechanism's keys with their types, from the same lists; a null is "not given" there.
_COMMON_MECHANISM = msgspec.defstruct(
    "_CommonMechanism",
    [(key, (_MechanismText if key in _MECHANISM_TEXT else bool if key in _MECHANISM_BOOL
            else _Int) | None, None) for key in _MECHANISM_KEYS],
    forbid_unknown_fields=True, gc=False)


class _CommonException(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    type: Annotated[str, msgspec.Meta(max_length=_MAX_TYPE)] | None = None
    value: Annotated[str, msgspec.Meta(max_length=_MAX_VALUE)] | None = None
    module: _FrameText | None = None
    #: Checked on its own (``_COMMON_MECHANISM``): one or two of them an event.
    mechanism: dict[str, Any] | None = None
    stacktrace: _CommonStacktrace | None = None


_COMMON = Annotated[list[_CommonException], msgspec.Meta(max_length=MAX_EXCEPTIONS)]


class Uncommon(ValueError):
    """Not the common case: ``validate_exceptions`` decides (and words any refusal)."""


def validate_common(value: Any) -> list[dict[str, Any]] | None:
    """``validate_exceptions(value)`` for a value in the common case, checked in C.

    Only for a value straight from ``orjson.loads`` (what ``parse_json_body`` gives: no lone
    surrogates; and no NUL in any string, which the caller makes sure of), whose frame dicts
    it takes over. The size limit is the caller's to check (it writes the JSON anyway).

    Raises:
        Uncommon: Anything else, valid or not.
    """
    if value is None:
        return None
    try:
        checked = msgspec.convert(value, _COMMON)
        if not checked:
            return None
        out: list[dict[str, Any]] = []
        for raw, exc in zip(value, checked, strict=True):
            if not exc.type and not exc.value:
                raise Uncommon  # "needs a type or a value"
            cleaned: dict[str, Any] = {"type": exc.type, "value": exc.value}
            if exc.module is not None:
                cleaned["module"] = exc.module
            if exc.mechanism is not None:
                mechanism = msgspec.convert(exc.mechanism, _COMMON_MECHANISM)
                cleaned["mechanism"] = {key: item for key in _MECHANISM_KEYS
                                        if (item := getattr(mechanism, key)) is not None}
            if exc.stacktrace is not None:
                # Each frame passed _CommonFrame: _frame would copy it key for key.
                cleaned["stacktrace"] = {"frames": raw["stacktrace"].get("frames") or []}
            out.append(cleaned)
    except msgspec.ValidationError:
        raise Uncommon from None
    return out


# --------------------------------------------------------------------------------------------
# To the chain the fingerprint reads
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)  # the same code locations recur on every event
def _raw_frame(path: str, module: str, function: str, platform: str | None,
               sdk: bool | None) -> RawFrame:
    kind = fr.kind_of(path, module, platform)
    if kind == "go" and not module and function:
        module, function = fr.split_go_function(function)
    return RawFrame(kind, path, module, function,
                    sdk if type(sdk) is bool else fr.default_in_app(kind, path, module))


def _chain_frame(frame: dict[str, Any], platform: str | None,
                 in_app_rules: InAppRules | None) -> RawFrame:
    get = frame.get
    sdk = get("in_app")
    # The frame made once per location (it was ~40 % of a 31-frame error's fingerprint);
    # an ``in_app`` that is not a bool counts as not given (only checked chains come here).
    raw = _raw_frame(get("abs_path") or get("filename") or "", get("module") or "",
                     get("function") or "", get("platform") or platform,
                     sdk if type(sdk) is bool else None)
    if in_app_rules is not None:
        decided = in_app_rules.decide(raw.frame().module, raw.path)
        if decided is not None:
            raw = raw.with_in_app(decided)
    return raw


def _one(value: dict[str, Any], platform: str | None,
         in_app_rules: InAppRules | None) -> ParsedException:
    frames: list[RawFrame] = []
    kinds: dict[str, int] = {}
    for item in (value.get("stacktrace") or {}).get("frames") or ():
        frame = _chain_frame(item, platform, in_app_rules)
        frames.append(frame)
        kinds[frame.kind] = kinds.get(frame.kind, 0) + 1
    kind = max(kinds, key=lambda k: kinds[k]) if kinds else "other"
    return ParsedException(value.get("type"), value.get("value"), frames, kind)


def to_chain(values: list[dict[str, Any]], *, platform: str | None = None,
             in_app_rules: InAppRules | None = None) -> list[ParsedException]:
    """The chain of a checked ``exceptions`` value, oldest first, as ``parse_exceptions`` gives.

    Exception groups (``mechanism.is_exception_group`` with ``exception_id``/``parent_id``, as
    Sentry's SDKs send them flattened) become a group with its members; each member keeps the
    exceptions linked below it as its own chain.
    """
    parsed = [_one(v, platform, in_app_rules) for v in values]
    ids = {v["mechanism"]["exception_id"]: i for i, v in enumerate(values)
           if "exception_id" in (v.get("mechanism") or {})}
    groups = {i for i, v in enumerate(values) if (v.get("mechanism") or {}).get(
        "is_exception_group")}
    if not groups or not ids:
        return parsed
    children: dict[int, list[int]] = {}
    for i, v in enumerate(values):
        parent = (v.get("mechanism") or {}).get("parent_id")
        if parent in ids and ids[parent] != i:
            children.setdefault(ids[parent], []).append(i)
    placed: set[int] = set()

    def member_chain(index: int, depth: int) -> list[ParsedException]:
        # A member and what it was chained from (its non-group descendants), oldest first.
        placed.add(index)
        node = parsed[index]
        chain = [node]
        if depth > MAX_EXCEPTIONS:
            return chain
        for child in children.get(index, ()):
            if child in placed:
                continue
            source = str((values[child].get("mechanism") or {}).get("source") or "")
            if index in groups and source.startswith("exceptions"):
                node.members.append(member_chain(child, depth + 1))
            else:
                chain = member_chain(child, depth + 1) + chain
        return chain

    roots = [i for i in range(len(values)) if i not in placed
             and (values[i].get("mechanism") or {}).get("parent_id") not in ids]
    out: list[ParsedException] = []
    for root in roots:
        if root not in placed:
            out = member_chain(root, 0) + out
    return out or parsed
