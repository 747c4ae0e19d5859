"""The queue's scripts: named arguments encoded in order, the notification envelope, layering."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from ledger.queue.scripts import ACK, ENQUEUE_MANY, NOTIFICATION_ENVELOPE, TAIL, Arg, Script

QUEUE = Path(__file__).resolve().parents[2] / "ledger" / "queue"

_ECHO = Script("echo", keys=(("a", "first"), ("b", "second")),
               args=(Arg("x", "a scalar"), Arg("items", "a list", many=True),
                     Arg("y", "after the list")),
               body="return {k_a, k_b, x, items_n, ARGV[items_at], y}")


def test_encode_orders_keys_and_arguments_as_declared() -> None:
    keys, argv = _ECHO.encode({"b": "kb", "a": "ka"}, {"y": 9, "items": ["p", "q"], "x": 1})
    assert keys == ["ka", "kb"]
    assert argv == [1, 2, "p", "q", 9]  # a list is its length, then its items


@pytest.mark.parametrize(("keys", "args"), [
    ({"a": "ka"}, {"x": 1, "items": [], "y": 2}),  # a key missing
    ({"a": "ka", "b": "kb"}, {"x": 1, "items": []}),  # an argument missing
    ({"a": "ka", "b": "kb"}, {"x": 1, "items": [], "y": 2, "z": 3}),  # one unknown
])
def test_encode_refuses_missing_or_unknown_names(keys: dict[str, str],
                                                 args: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="echo"):
        _ECHO.encode(keys, args)


async def test_the_script_sees_every_argument_by_name(aredis: aioredis.Redis) -> None:
    keys, argv = _ECHO.encode({"a": "ka", "b": "kb"}, {"x": "1", "items": ["p", "q"], "y": "9"})
    answer: Any = await aredis.eval(_ECHO.lua, len(keys), *keys, *argv)
    assert answer == [b"ka", b"kb", b"1", 2, b"p", b"9"]


def test_every_script_documents_each_name() -> None:
    for script in (ENQUEUE_MANY, TAIL, ACK):
        assert all(doc for _, doc in script.keys), script.name
        assert all(arg.doc for arg in script.args), script.name
        for name, _ in script.keys:
            assert f"k_{name}" in script.body, f"{script.name}: key {name} unused"
        for arg in script.args:
            assert arg.name in script.body, f"{script.name}: argument {arg.name} unused"


def test_the_notification_envelope_is_the_json_live_clients_parse() -> None:
    head, middle, tail = NOTIFICATION_ENVELOPE
    data = orjson.dumps({"message": 'a "quoted" line\n', "level": "error"})
    message = head + b"1700000000000-3" + middle + data + tail
    assert orjson.loads(message) == {"event_id": "1700000000000-3", "data": orjson.loads(data)}


def test_the_queue_package_belongs_to_no_daemon() -> None:
    for path in sorted(QUEUE.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        modules = {node.module for node in ast.walk(tree)
                   if isinstance(node, ast.ImportFrom) and node.module}
        assert not {m for m in modules if m.startswith(("ledger.daemons", "ledger.cli"))}, path
