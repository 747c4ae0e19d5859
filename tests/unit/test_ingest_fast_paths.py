"""The accept side's shortcuts (issue 17) give what the general code gives, on every input.

``from_json=True`` lets clean attributes through without a copy, ``uuid7_strs`` makes a
request's ids at once, and ``EntryBuilder`` encodes the shared ``ingested_at`` once: each is
checked against the path it short-cuts, including the inputs that must fall back to it.
"""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from ledger.core import events
from ledger.core.events import InvalidLog, parse_json_body, validate_batch, validate_log
from ledger.queue import rows
from ledger.queue.entries import EntryBuilder

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
PROJECT = str(uuid.uuid4())


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


ATTRIBUTES: list[Any] = [
    None,
    {},
    {"user_id": 7, "path": "/checkout", "ok": True, "ratio": 0.5, "none": None},
    {"text": "bracket { and [ inside strings", "list": [[1], [2, [3]]]},
    {"nul": "a\x00b", "k\x00ey": ["x\x00"]},  # NULs are removed: the copy is needed
    {"backslash": "\\u0000 is text here"},
    {"big": 2**64, "float": 1e300},
    {"unicode": "ünïcödé ✓ 🚀"},
    nested(16),  # the deepest allowed
    nested(17),  # one too deep
    {f"k{i}": "[" * 10 for i in range(3)},  # many brackets, shallow
    {"blob": "x" * 99_980},  # just over the size cap as JSON
    {"blob": "x" * 50_000},
    [1, 2],  # not an object
    "text",
    {"$exceptions": []},  # reserved
]


def outcome(obj: dict[str, Any], *, from_json: bool) -> Any:
    try:
        return validate_log(obj, now=NOW, retention_days=30, from_json=from_json)
    except InvalidLog as exc:
        return ("refused", exc.field, exc.reason)


@pytest.mark.parametrize("attributes", ATTRIBUTES, ids=lambda a: repr(a)[:40])
def test_attributes_from_json_validate_exactly_as_the_general_path(attributes: Any) -> None:
    # The standard library writes integers beyond 64 bits, which clients send too.
    body = json.dumps({"timestamp": "2026-03-31T11:00:00Z", "level": "info",
                       "attributes": attributes}).encode()
    fast = outcome(parse_json_body(body), from_json=True)
    general = outcome(parse_json_body(body), from_json=False)
    assert fast == general
    if type(fast) is dict:
        assert orjson.dumps(fast["attributes"]) == orjson.dumps(general["attributes"])
        assert "\x00" not in orjson.dumps(fast["attributes"]).decode("unicode_escape")


def test_a_lone_surrogate_escape_in_attributes_is_cleaned_on_both_paths() -> None:
    body = (b'{"timestamp": "2026-03-31T11:00:00Z", "level": "info",'
            b' "attributes": {"a": "\\ud800x"}}')
    fast = outcome(parse_json_body(body), from_json=True)
    assert fast == outcome(parse_json_body(body), from_json=False)
    assert fast["attributes"] == {"a": "\ufffdx"}


def test_a_batch_validates_alike_with_and_without_from_json() -> None:
    items = [{"timestamp": (NOW - timedelta(minutes=i)).isoformat(), "level": "error",
              "message": f"m{i}", "attributes": a} for i, a in enumerate(ATTRIBUTES)]
    items += [{"timestamp": (NOW + timedelta(minutes=6)).isoformat(), "level": "info"},
              {"timestamp": (NOW - timedelta(days=31)).isoformat(), "level": "info"},
              {"level": "info"}]
    parsed = parse_json_body(json.dumps({"logs": items}).encode())["logs"]
    assert validate_batch(parsed, now=NOW, retention_days=30, from_json=True) == (
        validate_batch(parsed, now=NOW, retention_days=30))


def test_uuid7_strs_continue_the_sequence_of_single_ids() -> None:
    made = [events._uuid7_str(), *events.uuid7_strs(2_500), events._uuid7_str(),
            *events.uuid7_strs(1), *events.uuid7_strs(0), str(events.uuid7())]
    ids = [uuid.UUID(text) for text in made]
    assert [str(i) for i in ids] == made  # canonical text
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert all(a < b for a, b in itertools.pairwise(ids))


def test_uuid7_strs_cross_a_counter_overflow_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "_uuid7_last_ms", events._uuid7_last_ms)
    monkeypatch.setattr(events, "_uuid7_counter", events._uuid7_counter)
    monkeypatch.setattr(events.time, "time_ns", lambda: 3_000_000_000_000_000_000)
    first = uuid.UUID(events._uuid7_str())
    events._uuid7_counter = events._COUNTER_MAX - 2
    after = [uuid.UUID(t) for t in events.uuid7_strs(5)]
    assert all(a < b for a, b in itertools.pairwise([first, *after]))
    assert after[-1].int >> 80 == (first.int >> 80) + 1


def test_uuid7_strs_cross_a_wrap_of_the_counters_low_bits_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The low 30 bits of the counter sit in the last 16 hex digits, the rest in the first 16:
    # ids on both sides of a wrap of those bits have different first digits.
    monkeypatch.setattr(events, "_uuid7_last_ms", events._uuid7_last_ms)
    monkeypatch.setattr(events, "_uuid7_counter", events._uuid7_counter)
    monkeypatch.setattr(events.time, "time_ns", lambda: 3_100_000_000_000_000_000)
    events._uuid7_str()  # the millisecond is now the clock's
    events._uuid7_counter = (5 << 30) - 4
    first = uuid.UUID(events._uuid7_str())
    made = events.uuid7_strs(6)
    ids = [uuid.UUID(text) for text in made]
    assert [str(i) for i in ids] == made
    assert all(a < b for a, b in itertools.pairwise([first, *ids]))
    counters = [(i.int >> 64 & 0xFFF) << 30 | (i.int >> 32 & 0x3FFF_FFFF) for i in ids]
    assert counters == [(5 << 30) - 2 + n for n in range(6)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)


def test_entry_rows_are_those_of_encode_row_record_by_record() -> None:
    builder = EntryBuilder(PROJECT)
    records = []
    for i, ingested in enumerate([NOW, NOW, NOW + timedelta(seconds=1), NOW]):
        clean = validate_log({"timestamp": NOW.isoformat(), "level": "info", "message": str(i),
                              "attributes": {"i": i}}, now=NOW, retention_days=30)
        records.append(events.enrich(clean, project_id=PROJECT, now=ingested))
        builder.add(records[-1])
    project = rows.project_bytes(PROJECT)
    assert builder.rows == [rows.encode_row(r, project) for r in records]
    assert [rows.decode_row(r)["ingested_at"] for r in builder.rows] == [
        r["ingested_at"].isoformat() for r in records]
