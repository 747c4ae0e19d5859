"""The binary COPY tuples ingest queues, and queue entries read back (PostgreSQL's side of the
format is exercised by the integration tests, which store them)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.core import events
from ledger.core.error_groups import title
from ledger.core.fingerprints import FINGERPRINT_VERSION
from ledger.queue import rows
from ledger.queue.entries import EntryBuilder, decode_entry

PROJECT = str(uuid.uuid4())
NOW = datetime(2026, 3, 31, 23, 59, 59, 999_999, tzinfo=UTC)


def record(**fields: Any) -> dict[str, Any]:
    clean = events.validate_log({"timestamp": NOW.isoformat(), "level": "info", **fields},
                                now=NOW, retention_days=90)
    return events.enrich(clean, project_id=PROJECT, now=NOW + timedelta(seconds=1))


def test_a_full_record_survives_encode_and_decode() -> None:
    full = record(level="error", log_type="exception", message="ünïcödé\nline 2\t",
                  error_type="KeyError", error_message="'user'", stack_trace="Traceback…",
                  environment="prod", release="1.2.3", sdk_version="0.1", platform="python",
                  platform_version="3.11", attributes={"a": [1, {"b": None}], "é": True},
                  trace_id="ab" * 16, span_id="cd" * 8, fingerprint=["x", "{{ default }}"],
                  log_id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
    decoded = rows.decode_row(rows.encode_row(full, rows.project_bytes(PROJECT)))
    for name in events.LOG_COLUMNS:
        want = full[name]
        if isinstance(want, datetime):
            want = want.isoformat()
        assert decoded[name] == want, name
    assert decoded["fingerprint_version"] == FINGERPRINT_VERSION and decoded["error_fingerprint"]


def test_nulls_and_empty_values() -> None:
    plain = record(message=None)
    decoded = rows.decode_row(rows.encode_row(plain, rows.project_bytes(PROJECT)))
    assert decoded["message"] is None and decoded["client_fingerprint"] is None
    assert decoded["attributes"] == {} and decoded["fingerprint_version"] is None
    plain["client_fingerprint"] = []
    empty = rows.decode_row(rows.encode_row(plain, rows.project_bytes(PROJECT)))
    assert empty["client_fingerprint"] == []


def test_record_of_inverts_decode_row() -> None:
    original = record(message="again", attributes={"k": 1})
    encoded = rows.encode_row(original, rows.project_bytes(PROJECT))
    again = rows.record_of(rows.decode_row(encoded))
    assert rows.encode_row(again, rows.project_bytes(PROJECT)) == encoded


@pytest.mark.parametrize("garbage", [b"", b"\x00\x16", b"\x00\x02\xff\xff\xff\xff",
                                     b"\x00\x16" + b"\x00\x00\x00\x05ab"])
def test_decode_refuses_what_is_not_a_tuple_of_logs(garbage: bytes) -> None:
    with pytest.raises(ValueError, match="not a binary COPY tuple"):
        rows.decode_row(garbage)


def test_entry_fields_read_back() -> None:
    builder = EntryBuilder(PROJECT)
    records = [record(message="a"), record(level="critical", message="b" * 400),
               record(message="c", timestamp=(NOW - timedelta(days=40)).isoformat())]
    for one in records:
        builder.add(one)
    entry = decode_entry(PROJECT, b"1-0", {k.encode(): v for k, v in builder.fields().items()})
    assert (entry.broken, entry.n, entry.entry_id) == (None, 3, "1-0")
    assert [rows.decode_row(entry.row(i))["message"] for i in range(3)] == [
        "a", "b" * 400, "c"]
    assert entry.rows(0, 3) == entry.blob
    assert entry.rows(1, 3) == entry.row(1) + entry.row(2)
    assert {(m.year, m.month) for m in entry.months} == {(2026, 3), (2026, 2)}
    [error] = entry.errors
    assert error[0] == 1 and error[1] == records[1]["id"]
    assert error[5] == title(records[1]) and len(error[5]) == 300
    assert entry.components == {records[1]["error_fingerprint"]:
                                records[1]["fingerprint_components"]}


@pytest.mark.parametrize("fields", [
    {b"n": b"2", b"rows": b"xx", b"ends": b"\x01\x00\x00\x00"},
    {b"n": b"one"},
    {b"n": b"1", b"rows": b"x", b"ends": b"\x01\x00\x00\x00", b"errors": b"{not json"},
])
def test_unreadable_entry_is_marked_broken(fields: dict[bytes, bytes]) -> None:
    assert decode_entry(PROJECT, "1-0", fields).broken


def test_an_entry_reads_the_same_with_field_names_as_text_or_bytes() -> None:
    """The writer's client answers bytes; a client that decodes names gives text: same entry."""
    builder = EntryBuilder(PROJECT)
    for one in (record(message="a"), record(level="error", message="b"),
                record(message="c", timestamp=(NOW - timedelta(days=40)).isoformat())):
        builder.add(one)
    fields = builder.fields()
    as_bytes = decode_entry(PROJECT, b"1-0", {k.encode(): v for k, v in fields.items()})
    as_text = decode_entry(PROJECT, "1-0", fields)
    assert as_bytes == as_text and as_bytes.broken is None
    assert as_bytes.errors and as_bytes.components and len(as_bytes.months) == 2
    assert as_bytes.hours  # every log's hour
    # Without error events: ``[]`` and ``{}`` read back as empty, not as missing.
    plain = EntryBuilder(PROJECT)
    plain.add(record(message="d"))
    entry = decode_entry(PROJECT, b"2-0", {k.encode(): v for k, v in plain.fields().items()})
    assert (entry.broken, entry.errors, entry.components) == (None, [], {})


@pytest.mark.parametrize("fields", [
    {b"n": b"1", b"rows": b"x", b"ends": b"\x01\x00\x00\x00", b"months": b"2026-1x"},
    {b"n": b"1", b"rows": b"x", b"ends": b"\x01\x00\x00\x00", b"fp": b"[]"},
    {"n": "1", "rows": "x", "ends": "\x01\x00\x00\x00"},  # text values: not bytes rows
    {},
])
def test_more_unreadable_entries_are_marked_broken(fields: dict[Any, Any]) -> None:
    assert decode_entry(PROJECT, "1-0", fields).broken
