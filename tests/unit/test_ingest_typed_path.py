"""The typed path of ingest (msgspec, issue 17) prepares every body as the general path does.

``events.typed_records`` reads the common-case body in one msgspec pass and ``rows.encode_rows``
encodes its logs with per-request constants; any other body answers ``None`` and takes the
general path (``parse_json_body`` → ``validate_batch`` → ``enrich`` → ``encode_row``). Each
body of a varied corpus (valid and not, canonical and odd spellings, integers beyond 64 bits,
escapes, invalid UTF-8, unknown fields, Sentry exception chains of every shape, frames in any
key order) is prepared both ways: the same refusal, or the same records, item errors, COPY
tuples, queue entry fields (bytes) and notifications.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.core import events, sentry
from ledger.core.grouping_rules import GroupingConfig
from ledger.daemons.ingest import service
from ledger.errors import LedgerError
from ledger.proto import ingest_pb2
from ledger.queue import rows
from ledger.queue.entries import EntryBuilder

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
PROJECT = str(uuid.uuid4())
SINGLE, BATCH = ingest_pb2.INGEST_SHAPE_SINGLE, ingest_pb2.INGEST_SHAPE_BATCH


def fixed_ids(count: int) -> list[str]:
    # The same ids on both paths, so that whole records and tuples can be compared.
    return [str(uuid.UUID(int=(7 << 76) | (2 << 62) | i)) for i in range(count)]


def prepared(monkeypatch: pytest.MonkeyPatch, shape: int, body: bytes, *,
             typed: bool) -> Any:
    """What ``prepare`` gives (or the error it raises), on the typed path or without it."""
    with monkeypatch.context() as patch:
        patch.setattr(events, "uuid7_strs", fixed_ids)
        if not typed:
            patch.setattr(events, "typed_records", lambda *args, **kwargs: None)
        try:
            out = service.prepare(PROJECT, shape, body, retention_days=30, now=NOW)
        except LedgerError as exc:
            return ("refused", type(exc).__name__, exc.message)
    return {
        "total": out.total,
        "errors": out.errors,
        "records": out.all_records(),
        "keys": [list(record) for record in out.all_records()],  # in the same order too
        "ids": out.ids(),
        "notifications": out.notifications,
        "fields": out.entry.fields(),
        "rows": out.entry.rows,
    }


def typed_request(records: list[dict[str, Any]],
                  attributes_json: list[bytes]) -> events.TypedRequest:
    """``records`` (of one project and ingest time) as the typed path holds them."""
    typed = events.TypedRequest(
        PROJECT, records[0]["ingested_at"], [rows.row_values(r) for r in records],
        attributes_json, [i for i, r in enumerate(records) if r["error_fingerprint"]])
    assert typed.records() == records  # the tuples hold each record whole
    return typed


def assert_alike(monkeypatch: pytest.MonkeyPatch, shape: int, body: bytes) -> bool:
    """Both paths agree on ``body``; True when the typed path took it."""
    general = prepared(monkeypatch, shape, body, typed=False)
    assert prepared(monkeypatch, shape, body, typed=True) == general
    return events.typed_records(body, single=shape == SINGLE, project_id=PROJECT, now=NOW,
                                retention_days=30) is not None


# --------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------

def iso(delta: timedelta, form: int) -> str:
    at = NOW + delta
    return [at.isoformat(), at.isoformat().replace("+00:00", "Z"),
            at.replace(tzinfo=None).isoformat(sep=" "),
            at.strftime("%Y-%m-%dT%H:%M:%S.%f+02:00"),
            at.isoformat() + "x", at.strftime("%Y-%m-%dT%H:%M:%S.%f123Z")][form]


TEXT = st.one_of(
    st.none(), st.sampled_from(["", "plain", "ünïcödé ✓ 🚀", "a\x00b", "\ud800lone", "é" * 20,
                                "x" * 21, "\\u0000 as text", "tab\tnew\nline"]),
    st.text(max_size=30))
TIMESTAMPS: st.SearchStrategy[Any] = st.one_of(
    st.builds(iso, st.timedeltas(min_value=timedelta(days=-40), max_value=timedelta(hours=1)),
              st.integers(0, 5)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([NOW.timestamp(), int(NOW.timestamp() * 1000), 2**64, -(2**63) - 1,
                     True, None, [], {}, "", "yesterday"]))
CHOICE = st.one_of(st.none(), st.sampled_from(
    ["info", "INFO", "Error", "error", "critical", "warning", "debug", "verbose", 3, "",
     "exception", "endpoint", "logger", "CONSOLE", "high", "Low", "standard"]))
JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**66), max_value=2**66), st.sampled_from([2**64 - 1, 2**63, -(2**63)]),
    st.text(max_size=12), st.sampled_from(["[{", "x\x00y", "\udc00", "\\u0000"]))
JSON = st.recursive(JSON_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=12)
ENDPOINT = st.fixed_dictionaries({
    "method": st.sampled_from(["GET", "", 5]), "path": st.sampled_from(["/a", None]),
    "status_code": st.sampled_from([200, 99, 600, 200.0, "200"]),
    "duration_ms": st.sampled_from([1.5, 0, -1, "1"])})
ATTRIBUTES = st.one_of(
    st.none(), st.dictionaries(st.text(max_size=8), JSON, max_size=4),
    st.builds(lambda e, a: {**a, "endpoint": e}, ENDPOINT,
              st.dictionaries(st.text(max_size=4), JSON, max_size=2)),
    st.sampled_from([{}, [1], "text", {"$exceptions": []}, {"blob": "x" * 99_990},
                     {"deep": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}]))
HEX = st.one_of(st.none(), st.sampled_from(
    ["", "0" * 32, "0" * 16, "AB" * 16, "ab" * 8, "xyz", "ab" * 15, 12]),
    st.text("0123456789abcdefABCDEF", min_size=16, max_size=16))
FINGERPRINT = st.one_of(st.none(), st.lists(st.text(max_size=5), max_size=3),
                        st.sampled_from([[], "x", [1], ["x" * 256], ["a\x00"]]))
LOG_ID = st.one_of(st.none(), st.sampled_from(
    ["0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B", "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b", "nope", 7,
     "{0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b}"]), st.uuids().map(str))
# Each part of a chain mostly valid (so that whole chains often are) and sometimes not.
TEXT_OK = ["views.py", "/app/shop/views.py", "shop.views", "", "ünï ✓ 🚀", "x" * 1024]
TEXT_BAD = ["x" * 1025, "a\x00b", "\ud800", None, 5, 1.5, True]
INT_OK, INT_BAD = [0, 7, 2**31 - 1], [2**31, -1, True, 3.0, "7", None, 2**64]
CONTEXT_OK = st.lists(st.sampled_from(["", "  x = 1", "é"]), max_size=10)
CONTEXT_BAD = st.one_of(st.lists(st.sampled_from(["", None, 3, "y" * 1025]), min_size=1,
                                 max_size=12), st.sampled_from(["x", None]))


def mostly(ok: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``ok`` nine times in ten, else ``other``."""
    return st.integers(0, 9).flatmap(lambda n: other if n == 0 else ok)


def frame_values(ok: bool) -> dict[str, st.SearchStrategy[Any]]:
    text = st.sampled_from(TEXT_OK if ok else TEXT_OK + TEXT_BAD)
    number = st.sampled_from(INT_OK if ok else INT_OK + INT_BAD)
    values: dict[str, st.SearchStrategy[Any]] = {
        **dict.fromkeys(("filename", "abs_path", "module", "function", "context_line",
                         "package", "platform"), text),
        **dict.fromkeys(("lineno", "colno"), number),
        "in_app": st.sampled_from([True, False] if ok else [True, False, None, 1, "true"]),
        **dict.fromkeys(("pre_context", "post_context"),
                        CONTEXT_OK if ok else st.one_of(CONTEXT_OK, CONTEXT_BAD)),
    }
    if not ok:  # dropped by the general path: unknown to the typed one
        values |= {"vars": st.sampled_from([{"a": 1}, None]),
                   "instruction_addr": st.just("0x1f")}
    return values


MECHANISM_OK = [None, {"type": "generic", "handled": True},
                {"handled": False, "type": "excepthook", "description": "é", "synthetic": None},
                {"type": "chained", "source": "__cause__", "exception_id": 1, "parent_id": 0},
                {"is_exception_group": True, "exception_id": 0, "source": "exceptions[0]"}]
MECHANISM_BAD = [{"handled": "yes"}, {"data": {"x": 1}}, "x", {"type": "x" * 256},
                 {"exception_id": -1}]


@st.composite
def keyed(draw: st.DrawFn, values: dict[str, st.SearchStrategy[Any]],
          common: tuple[str, ...]) -> dict[str, Any]:
    # Keys in any order (the frames keep theirs) and any subset, mostly the common ones.
    names = draw(st.one_of(st.just(list(common)), st.permutations(list(common)),
                           st.lists(st.sampled_from(sorted(values)), unique=True,
                                    max_size=len(values))))
    return {name: draw(values[name]) for name in names}


def frames(ok: bool) -> st.SearchStrategy[Any]:
    frame = keyed(frame_values(ok), ("filename", "abs_path", "function", "module", "lineno",
                                     "context_line", "in_app"))
    return frame if ok else st.one_of(frame, st.sampled_from([None, "frame", [1]]))


def exceptions(ok: bool) -> st.SearchStrategy[Any]:
    stacktrace = st.builds(lambda f: {"frames": f}, st.lists(
        frames(True) if ok else mostly(frames(True), frames(False)), max_size=4))
    if not ok:
        stacktrace = st.one_of(stacktrace, st.sampled_from(
            [None, {"frames": None}, {"frames": "x"}, {}, "x", {"frames": [], "registers": {}}]))
    values: dict[str, st.SearchStrategy[Any]] = {
        "type": st.sampled_from(["KeyError", "", None, "T" * 255, "ÿ"]
                                + ([] if ok else ["T" * 256, 1])),
        "value": st.sampled_from(["'k'", "", None, "v" * 5000] + ([] if ok else ["v" * 5001])),
        "module": st.sampled_from(TEXT_OK if ok else TEXT_OK + TEXT_BAD),
        "mechanism": st.sampled_from(MECHANISM_OK if ok else MECHANISM_OK + MECHANISM_BAD),
        "stacktrace": stacktrace,
    }
    if not ok:
        values["thread_id"] = st.just(1)
    exception = keyed(values, ("type", "value", "module", "stacktrace"))
    return exception if ok else st.one_of(exception, st.sampled_from([None, "x"]))


CHAINS = st.one_of(
    st.lists(mostly(exceptions(True), exceptions(False)), max_size=3),
    st.sampled_from([None, [], "x", [{"type": 1}], {"values": []},
                     [{"type": "E", "value": str(i)} for i in range(33)]]))
EXCEPTIONS = st.one_of(st.none(), CHAINS)
FIELDS: dict[str, Any] = {
    "timestamp": TIMESTAMPS, "level": CHOICE, "log_type": CHOICE, "importance": CHOICE,
    "message": TEXT, "error_type": TEXT, "error_message": TEXT, "stack_trace": TEXT,
    "environment": TEXT, "release": TEXT, "sdk_version": TEXT, "platform": TEXT,
    "platform_version": TEXT, "attributes": ATTRIBUTES, "trace_id": HEX, "span_id": HEX,
    "fingerprint": FINGERPRINT, "log_id": LOG_ID, "exceptions": EXCEPTIONS,
    "unknown_field": st.sampled_from([1, 1.5, None, [1e308]]),
}


def common_log(i: int) -> dict[str, Any]:
    """A log the typed path takes (as SDKs send them)."""
    log: dict[str, Any] = {
        "timestamp": (NOW - timedelta(seconds=i)).isoformat(), "level": "info",
        "message": f"user {i} opened /things/{i % 7}", "environment": "production",
        "release": "1.4.2", "sdk_version": "0.1.0", "platform": "python",
        "platform_version": "3.11", "attributes": {"user_id": i, "ok": True, "ratio": 0.5}}
    if i % 3 == 0:
        log |= {"level": "error", "log_type": "exception", "error_type": "KeyError",
                "error_message": f"missing {i % 2}", "stack_trace": 'File "a.py", line 3\n'}
    return log


def sentry_record(i: int = 0) -> dict[str, Any]:
    """What the gateway makes of a Python SDK error event (30 frames, a chained exception)."""
    frames = [{"filename": f"shop/m{j}.py", "abs_path": f"/app/shop/m{j}.py",
               "module": f"shop.m{j}", "function": f"step_{j}", "lineno": 100 + j,
               "in_app": j > 5, "context_line": f"    r = s{j}(o)"} for j in range(30)]
    event = {"event_id": uuid.UUID(int=i + 1).hex, "timestamp": NOW.timestamp() - i,
             "platform": "python", "level": "error", "release": "shop@4.2.0",
             "exception": {"values": [
                 {"type": "KeyError", "value": "'price'", "module": "builtins",
                  "stacktrace": {"frames": frames[-1:]}},
                 {"type": "PricingError", "value": f"no price for sku-{i}",
                  "mechanism": {"type": "chained", "source": "__context__", "handled": True},
                  "stacktrace": {"frames": frames}}]},
             "tags": {"region": "eu-west"}, "sdk": {"name": "sentry.python", "version": "2.7"}}
    return sentry.event_to_record(event, event_id=event["event_id"])


@st.composite
def logs(draw: st.DrawFn) -> dict[str, Any]:
    # Mostly common logs with a few fields changed, so that both the typed path and each
    # way out of it are met often.
    log = common_log(draw(st.integers(0, 5)))
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=3, unique=True)):
        value = draw(FIELDS[name])
        if value is None and draw(st.booleans()):
            log.pop(name, None)
        else:
            log[name] = value
    return log


def encoded(value: Any, form: int) -> bytes:
    """``value`` as JSON as different clients write it (escapes, spacing, invalid UTF-8)."""
    if form == 0:
        return json.dumps(value).encode()  # ASCII escapes, surrogate pairs, big integers
    if form == 1:
        return json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8", "surrogatepass")
    if form == 2:
        return b"\xef\xbb\xbf" + json.dumps(value, separators=(",", ":")).encode()
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "replace") + b" \n"


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------

@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(logs(), min_size=1, max_size=6), st.integers(0, 3))
def test_a_batch_is_prepared_alike_on_both_paths(monkeypatch: pytest.MonkeyPatch,
                                                 items: list[dict[str, Any]], form: int) -> None:
    assert_alike(monkeypatch, BATCH, encoded({"logs": items}, form))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(logs(), st.integers(0, 3))
def test_a_single_log_is_prepared_alike_on_both_paths(monkeypatch: pytest.MonkeyPatch,
                                                      item: dict[str, Any], form: int) -> None:
    assert_alike(monkeypatch, SINGLE, encoded(item, form))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(logs(), CHAINS, st.booleans(), st.integers(0, 3))
def test_a_log_with_an_exception_chain_is_prepared_alike_on_both_paths(
        monkeypatch: pytest.MonkeyPatch, item: dict[str, Any], chain: Any, bare: bool,
        form: int) -> None:
    if bare:  # error_type and error_message then come from the raised exception
        item = {k: v for k, v in item.items() if k not in ("error_type", "error_message")}
    assert_alike(monkeypatch, SINGLE, encoded(item | {"exceptions": chain}, form))


BODIES: list[tuple[str, int, bytes, bool]] = [
    # (what, shape, body, typed path taken)
    ("common batch", BATCH, orjson.dumps({"logs": [common_log(i) for i in range(60)]}), True),
    ("common single", SINGLE, orjson.dumps(common_log(3)), True),
    ("epoch seconds and ms", BATCH, orjson.dumps({"logs": [
        {"timestamp": NOW.timestamp() - 5, "level": "info"},
        {"timestamp": int(NOW.timestamp() * 1000) - 5, "level": "WARNING"}]}), True),
    ("endpoint log", SINGLE, orjson.dumps({
        "timestamp": NOW.isoformat(), "level": "info", "log_type": "endpoint",
        "attributes": {"endpoint": {"method": "GET", "path": "/a", "status_code": 200,
                                    "duration_ms": 1.5}}}), True),
    ("trace, fingerprint, log id", SINGLE, orjson.dumps({
        "timestamp": NOW.isoformat(), "level": "error", "trace_id": "AB" * 16,
        "span_id": "0" * 16, "fingerprint": ["checkout", "{{ default }}"],
        "log_id": "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B"}), True),
    ("BOM and whitespace", BATCH, b"\xef\xbb\xbf {\"logs\": [" + orjson.dumps(common_log(1))
     + b"]}\n", True),
    ("integer beyond 64 bits in attributes", BATCH,
     b'{"logs": [{"timestamp": "2026-03-31T11:00:00Z", "level": "info",'
     b' "attributes": {"n": 18446744073709551616, "m": -9223372036854775809}}]}', False),
    ("integers at the 64-bit edges", BATCH,
     b'{"logs": [{"timestamp": "2026-03-31T11:00:00Z", "level": "info",'
     b' "attributes": {"n": 18446744073709551615, "m": -9223372036854775808}}]}', True),
    ("integer timestamp beyond 64 bits", SINGLE,
     b'{"timestamp": 123456789012345678901234567890, "level": "info"}', False),
    ("a number beyond a double", SINGLE,
     b'{"timestamp": "2026-03-31T11:00:00Z", "level": "info", "attributes": {"x": 1e400}}',
     False),
    ("NUL escape", SINGLE, b'{"timestamp": "2026-03-31T11:00:00Z", "level": "info",'
     b' "message": "a\\u0000b"}', False),
    ("lone surrogate escape", SINGLE, b'{"timestamp": "2026-03-31T11:00:00Z", "level": "info",'
     b' "message": "a\\ud800b"}', False),
    ("invalid UTF-8", SINGLE, b'{"timestamp": "2026-03-31T11:00:00Z", "level": "info",'
     b' "message": "a\xffb"}', False),
    ("unknown field", SINGLE, b'{"timestamp": "2026-03-31T11:00:00Z", "level": "info",'
     b' "service": "shop"}', False),
    ("unknown top-level field", BATCH, b'{"logs": [{"timestamp": "2026-03-31T11:00:00Z",'
     b' "level": "info"}], "meta": 1}', False),
    ("one invalid log", BATCH, orjson.dumps({"logs": [common_log(1), {"level": "info"}]}),
     False),
    ("message one over its limit", SINGLE, orjson.dumps(
        {"timestamp": NOW.isoformat(), "level": "info", "message": "é" * 10_001}), False),
    ("message at its limit", SINGLE, orjson.dumps(
        {"timestamp": NOW.isoformat(), "level": "info", "message": "é" * 10_000}), True),
    ("the reserved attribute", SINGLE, orjson.dumps(
        {"timestamp": NOW.isoformat(), "level": "info", "attributes": {"$exceptions": []}}),
     False),
    ("exceptions", SINGLE, orjson.dumps(
        {"timestamp": NOW.isoformat(), "level": "error",
         "exceptions": [{"type": "KeyError", "value": "k"}]}), True),
    ("a converted Sentry event", SINGLE, orjson.dumps(sentry_record()), True),
    ("Sentry events, batched", BATCH, orjson.dumps({"logs": [sentry_record(i)
                                                             for i in range(5)]}), True),
    ("exceptions without error_type", SINGLE, orjson.dumps(
        {"timestamp": NOW.isoformat(), "log_type": "exception", "level": "error",
         "exceptions": [{"type": "OSError", "value": None},
                        {"type": "KeyError", "value": "k", "mechanism": {"handled": False}}]}),
     True),
    ("exceptions twice", SINGLE, b'{"timestamp": "2026-03-31T11:00:00Z", "level": "error",'
     b' "exceptions": [{"type": "A", "value": "a"}], "exceptions": [{"type": "B"}]}', True),
    ("exceptions null", SINGLE, b'{"timestamp": "2026-03-31T11:00:00Z", "level": "error",'
     b' "exceptions": null}', True),
    ("an unknown frame key", SINGLE, orjson.dumps(
        {"timestamp": NOW.isoformat(), "level": "error", "exceptions": [
            {"type": "E", "stacktrace": {"frames": [{"function": "f", "vars": {"a": 1}}]}}]}),
     False),
    ("251 frames", SINGLE, orjson.dumps(
        {"timestamp": NOW.isoformat(), "level": "error", "exceptions": [
            {"type": "E", "stacktrace": {"frames": [{"function": f"f{i}"}
                                                    for i in range(251)]}}]}), False),
    ("a chain over its size limit", SINGLE, orjson.dumps(
        {"timestamp": NOW.isoformat(), "level": "error", "exceptions": [
            {"type": "E", "stacktrace": {"frames": [{"function": "f" * 1000,
                                                     "context_line": "c" * 1000}
                                                    for i in range(250)]}}]}), False),
    ("a chain just under its size limit", SINGLE, orjson.dumps(
        {"timestamp": NOW.isoformat(), "level": "error", "attributes": {"a": "b" * 90_000},
         "exceptions": [{"type": "E", "stacktrace": {"frames": [{"function": "f" * 1000}
                                                                for i in range(240)]}}]}),
     True),
    ("a lone surrogate in a frame", SINGLE, b'{"timestamp": "2026-03-31T11:00:00Z",'
     b' "level": "error", "exceptions": [{"type": "E", "stacktrace": {"frames":'
     b' [{"function": "a\\ud800b"}]}}]}', False),
    ("invalid UTF-8 in a frame", SINGLE, b'{"timestamp": "2026-03-31T11:00:00Z",'
     b' "level": "error", "exceptions": [{"type": "E", "stacktrace": {"frames":'
     b' [{"function": "\xff"}]}}]}', False),
    ("a number beyond a double in a frame", SINGLE, b'{"timestamp": "2026-03-31T11:00:00Z",'
     b' "level": "error", "exceptions": [{"type": "E", "stacktrace": {"frames":'
     b' [{"lineno": 1e400}]}}]}', False),
    ("too deep for orjson", SINGLE, b'{"timestamp": "2026-03-31T11:00:00Z", "level": "info",'
     b' "attributes": {"a": ' + b"[" * 2000 + b"]" * 2000 + b"}}", False),
    ("17 levels", SINGLE, orjson.dumps({"timestamp": NOW.isoformat(), "level": "info",
                                        "attributes": {"a": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}}),
     False),
    ("empty logs", BATCH, b'{"logs": []}', False),
    ("1 001 logs", BATCH, orjson.dumps({"logs": [{"level": "info"}] * 1001}), False),
    ("not JSON", BATCH, b'{"logs": [', False),
    ("empty body", SINGLE, b"", False),
    ("a list for a single log", SINGLE, b"[]", False),
    ("duplicate keys", SINGLE, b'{"timestamp": "2026-03-31T11:00:00Z", "level": "debug",'
     b' "level": "info", "attributes": {"a": 1, "b": 2, "a": 3}}', True),
]


@pytest.mark.parametrize(("shape", "body", "typed"), [b[1:] for b in BODIES],
                         ids=[b[0] for b in BODIES])
def test_chosen_bodies_are_prepared_alike_and_take_the_expected_path(
        monkeypatch: pytest.MonkeyPatch, shape: int, body: bytes, typed: bool) -> None:
    assert assert_alike(monkeypatch, shape, body) is typed


def test_an_error_repeated_in_a_batch_is_fingerprinted_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Each error differs from the first in one input of its fingerprint (or none: a repeat).
    # Both paths agree (the general one computes each), and each distinct set of inputs is
    # computed once: a memo keyed on fewer inputs computes fewer (some inputs, the release
    # say, only matter to a project's grouping rules, so the records alone cannot tell).
    chain = [{"type": "KeyError", "value": "k", "stacktrace": {"frames": [
        {"filename": "app/shop.py", "function": "checkout", "lineno": 3}]}}]
    first = {"timestamp": (NOW - timedelta(minutes=1)).isoformat(), "level": "error",
             "log_type": "exception", "error_type": "KeyError", "error_message": "k",
             "message": "checkout failed", "environment": "production", "release": "1.0",
             "platform": "python",
             "stack_trace": 'File "app/shop.py", line 3, in checkout\nKeyError: k'}
    variants = [{}, {"error_type": "ValueError"}, {"error_message": "other"},
                {"message": "refund failed"}, {"stack_trace": 'File "app/pay.py", line 9, in'
                                                              ' pay\nKeyError: k'},
                {"fingerprint": ["checkout"]}, {"fingerprint": ["{{ default }}", "x"]},
                {"exceptions": chain}, {"stack_trace": None, "exceptions": chain},
                {"platform": "node"}, {"level": "critical"}, {"environment": "staging"},
                {"release": "2.0"}, {"log_type": "logger"}, {}]
    logs = [first | variant for variant in variants] * 3
    body = orjson.dumps({"logs": logs})
    assert assert_alike(monkeypatch, BATCH, body)
    computed = []
    made_by = GroupingConfig.fingerprint

    def counted(self: GroupingConfig, **inputs: Any) -> Any:
        computed.append(inputs)
        return made_by(self, **inputs)

    monkeypatch.setattr(GroupingConfig, "fingerprint", counted)
    typed = events.typed_records(body, single=False, project_id=PROJECT, now=NOW,
                                 retention_days=30)
    assert typed is not None
    records = typed.records()
    # Neither the last variant (a repeat) nor log_type (not an input, the level makes the log
    # an error) is computed again, nor are the batch's second and third rounds.
    assert len(computed) == len(variants) - 2
    for record, again in zip(records, records[len(variants):], strict=False):
        assert record["error_fingerprint"] == again["error_fingerprint"]


def test_encode_rows_gives_the_tuples_of_encode_row() -> None:
    # Records straight from the general path, the odd ones included (an unknown level as a
    # replayed dead letter may carry, an empty fingerprint list).
    records = []
    for i in range(40):
        clean = events.validate_log(common_log(i) | {
            "trace_id": "ab" * 16 if i % 4 == 0 else None,
            "fingerprint": ["x", "ü"] if i % 5 == 0 else None,
            "environment": "staging" if i % 6 == 0 else "production"},
            now=NOW, retention_days=30)
        records.append(events.enrich(clean, project_id=PROJECT, now=NOW))
    records[1]["level"] = "unknown"
    records[2]["client_fingerprint"] = []
    project, ingested = rows.project_bytes(PROJECT), rows.timestamp_field(NOW)
    attributes = [orjson.dumps(r["attributes"]) for r in records]
    hours: set[int] = set()
    assert rows.encode_rows([rows.row_values(r) for r in records], attributes, project,
                            ingested, hours) == [rows.encode_row(r, project, ingested)
                                                 for r in records]
    assert hours == {(r["timestamp"] - datetime(2000, 1, 1, tzinfo=UTC)) // timedelta(hours=1)
                     for r in records}
    builder, extended = EntryBuilder(PROJECT), EntryBuilder(PROJECT)
    for record in records:
        builder.add(record)
    extended.extend(typed_request(records, attributes))
    assert extended.fields() == builder.fields()


@pytest.mark.parametrize("stamps", [
    ["2026-03-31T10:59:59.999999Z", "2026-03-31T11:00:00Z", "2026-02-28T23:59:59.999999Z",
     "2026-03-01T00:00:00Z", "2025-12-31T23:30:00-01:00"],
    ["1969-12-31T23:59:59.5Z", "1969-12-31T23:00:00Z", "1969-12-31T22:59:59.999999Z",
     "1970-01-01T00:00:00Z", "1940-06-01T12:00:00Z"],  # before 1970: int() rounds to zero
    ["2200-01-01T00:00:00Z", "2227-12-31T23:59:59.999999Z"],
    ["2240-06-01T00:00:00Z"],  # past what the hours shortcut trusts
])
def test_extend_notes_the_months_and_hours_add_notes(stamps: list[str]) -> None:
    records = []
    latest = max(datetime.fromisoformat(stamp) for stamp in stamps)
    for i, stamp in enumerate(stamps):
        clean = events.validate_log({"timestamp": stamp, "level": "error" if i % 2 else "info",
                                     "message": str(i)}, now=latest, retention_days=36_525)
        records.append(events.enrich(clean, project_id=PROJECT, now=NOW))
    builder, extended = EntryBuilder(PROJECT), EntryBuilder(PROJECT)
    for record in records:
        builder.add(record)
    extended.extend(typed_request(records, [orjson.dumps(r["attributes"]) for r in records]))
    assert extended.fields() == builder.fields()
    assert extended.months == builder.months and extended.hours == builder.hours
