"""Logs and error groups written straight into a logs database, for the read-side tests.

Rows go in with COPY (as the writers do), after creating the monthly partitions they need.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from ledger.db import partitions

COLUMNS = (
    "project_id", "id", "timestamp", "ingested_at", "level", "log_type", "importance", "message",
    "error_type", "error_message", "stack_trace", "environment", "release", "sdk_version",
    "platform", "platform_version", "attributes", "trace_id", "span_id", "client_fingerprint",
    "error_fingerprint", "fingerprint_version",
)
_seq = itertools.count(1)


def new_id(ts: datetime) -> str:
    """A UUIDv7-shaped id whose time part is ``ts`` (sorted like the ones ingest makes)."""
    ms = int(ts.timestamp() * 1000)
    rand = next(_seq) & ((1 << 74) - 1)
    rand_a, rand_b = rand >> 62, rand & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def log(project_id: str, timestamp: datetime, **fields: Any) -> dict[str, Any]:
    """One stored log row; unspecified fields take ordinary values."""
    row: dict[str, Any] = {
        "project_id": project_id, "id": new_id(timestamp), "timestamp": timestamp,
        "ingested_at": datetime.now(UTC), "level": "info", "log_type": "logger",
        "importance": "standard", "message": "hello", "attributes": {},
    }
    row.update(fields)
    return row


def insert_logs(url: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """COPY ``rows`` into ``logs`` (creating partitions); return them."""
    rows = list(rows)
    with psycopg.connect(url, autocommit=True) as conn:
        partitions.ensure_months_sync(conn, {partitions.month_of(r["timestamp"]) for r in rows})
        with conn.cursor() as cur, cur.copy(
            f"COPY logs ({', '.join(COLUMNS)}) FROM STDIN"
        ) as copy:
            for row in rows:
                values = [row.get(c) for c in COLUMNS]
                attrs = COLUMNS.index("attributes")
                values[attrs] = None if values[attrs] is None else orjson.dumps(
                    values[attrs]).decode()
                copy.write_row(values)
    return rows


def insert_group(url: str, project_id: str, fingerprint: str, **fields: Any) -> dict[str, Any]:
    """One error group row; returns it with its id."""
    now = datetime.now(UTC)
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()), "project_id": project_id, "fingerprint": fingerprint,
        "fingerprint_version": 1,
        "components": {"method": "type_message", "error_type": "KeyError", "message": "x"},
        "title": f"KeyError: {fingerprint}", "error_type": "KeyError", "level": "error",
        "log_type": "exception", "first_seen": now, "last_seen": now, "event_count": 1,
        "status": "unresolved",
    }
    row.update(fields)
    columns = list(row)
    values = [Jsonb(v) if k == "components" else v for k, v in row.items()]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO error_groups ({', '.join(columns)})"
            f" VALUES ({', '.join(['%s'] * len(columns))})",
            values,
        )
    return row
