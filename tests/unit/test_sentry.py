"""The Sentry protocol as data: envelopes, events -> native records, readable stack traces."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import sentry
from ledger.core.events import validate_log

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EVENT_ID = "9ec79c33ec9942ab8353589fcb2e04dc"


def frame(function: str, path: str, line: int, **extra: Any) -> dict[str, Any]:
    return {"function": function, "abs_path": path, "filename": path.rsplit("/", 1)[-1],
            "lineno": line, "in_app": True, **extra}


def python_event(**extra: Any) -> dict[str, Any]:
    return {
        "event_id": EVENT_ID, "timestamp": NOW.timestamp(), "platform": "python",
        "level": "error", "release": "shop@1.0", "environment": "prod",
        "exception": {"values": [
            {"type": "KeyError", "value": "'price'", "stacktrace": {"frames": [
                frame("get", "/app/cache.py", 12, module="cache",
                      context_line="    return self.data[key]",
                      pre_context=["a", "b", "c", "d", "e", "f", "g"],
                      post_context=["h", "i", "j", "k", "l", "m"],
                      vars={"secret": "x"})]}},
            {"type": "PriceError", "value": "no price", "module": "shop.pricing",
             "mechanism": {"type": "chained", "source": "__cause__"},
             "stacktrace": {"frames": [
                 frame("<module>", "/app/main.py", 3),
                 frame("load_price", "/app/shop/pricing.py", 40, module="shop.pricing",
                       context_line="  raise PriceError('no price') from exc  ")]}},
        ]},
        "sdk": {"name": "sentry.python", "version": "2.75.0"},
        **extra,
    }


def record_of(event: dict[str, Any]) -> dict[str, Any]:
    return sentry.event_to_record(event, event_id=sentry.event_id_of(event), received_at=NOW)


def valid(record: dict[str, Any]) -> dict[str, Any]:
    """The record passes the one validation of DESIGN §3 (what ingest runs)."""
    return validate_log(orjson.loads(orjson.dumps(record)), now=NOW, retention_days=90)


# -- envelopes --------------------------------------------------------------------------------


def test_envelope_items_with_and_without_length() -> None:
    body = (b'{"event_id":"%s","dsn":"http://k@h/1"}\n'
            b'{"type":"event","length":12}\n{"a":"b\\nc"}\n'
            b'{"type":"attachment","length":4,"filename":"x.bin"}\n\x00\n\xff\n\n'
            b'{"type":"client_report"}\n{"discarded_events":[]}\n') % EVENT_ID.encode()
    envelope = sentry.parse_envelope(body)
    assert envelope.headers["event_id"] == EVENT_ID
    assert [(i.index, i.type) for i in envelope.items] == [
        (0, "event"), (1, "attachment"), (2, "client_report")]
    assert envelope.items[0].payload == b'{"a":"b\\nc"}'
    assert envelope.items[1].payload == b"\x00\n\xff\n"  # binary, newlines included
    assert envelope.counts() == {"event": 1, "attachment": 1, "client_report": 1}


def test_envelope_without_trailing_newline_and_empty_envelope() -> None:
    assert sentry.parse_envelope(b'{}\n{"type":"event"}\n{}').items[0].payload == b"{}"
    assert sentry.parse_envelope(b"{}").items == []


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json\n", "the envelope header is not JSON"),
    (b"[1]\n", "the envelope header must be a JSON object"),
    (b'{}\n{"type":"event","length":99}\n{}\n', "item 0 (event): length 99 runs past the end"),
    (b'{}\n{"length":2}\n{}\n', "item 0 has no type"),
    (b'{}\n{"type":"event"}\n{}\n{"type":"session","length":-1}\n', "item 1 (session): length"),
    (b'{}\n{"type":"event"}\n{}\nnope\n', "the header of item 1 is not JSON"),
])
def test_malformed_envelopes_say_which_item_and_why(body: bytes, reason: str) -> None:
    with pytest.raises(sentry.MalformedEnvelope, match=re.escape(reason)):
        sentry.parse_envelope(body)


def test_too_many_items_are_refused() -> None:
    body = b"{}\n" + b'{"type":"session"}\n{}\n' * (sentry.MAX_ITEMS + 1)
    with pytest.raises(sentry.MalformedEnvelope, match="more than"):
        sentry.parse_envelope(body)


def test_event_payload_must_be_a_json_object() -> None:
    with pytest.raises(sentry.MalformedEnvelope, match=r"item 2 .* JSON"):
        sentry.parse_event(b"{nope", "item 2 (event)")
    with pytest.raises(sentry.MalformedEnvelope, match="must be a JSON object"):
        sentry.parse_event(b"[1, 2]", "the event")


# -- keys and DSNs ----------------------------------------------------------------------------


def test_keys_from_the_auth_header_the_dsn_and_the_dsn_form() -> None:
    key = "ledger_abcdef234567_" + "a" * 52
    header = f"Sentry sentry_version=7, sentry_client=sentry.python/2.0, sentry_key={key}"
    assert sentry.key_from_auth_header(header) == key
    assert sentry.key_from_auth_header("Sentry sentry_version=7") is None
    dsn = sentry.dsn(key, "logs.example.com:8000", 17)
    assert dsn == f"http://{key}@logs.example.com:8000/17"
    assert sentry.key_from_dsn(dsn) == key
    # The JavaScript SDK's DSN regex: word characters for the key, digits for the project.
    js_dsn = re.compile(r"^(?:(\w+):)//(?:(\w+)(?::(\w+)?)?@)([\w.-]+)(?::(\d+))?/(.+)")
    match = js_dsn.match(dsn)
    assert match is not None and match.group(2) == key and match.group(6) == "17"


def test_event_ids_are_32_hex_digits() -> None:
    assert sentry.event_id_of({"event_id": EVENT_ID.upper()}) == EVENT_ID
    assert sentry.event_id_of({"event_id": str(uuid.UUID(EVENT_ID))}) == EVENT_ID
    assert sentry.event_id_of({}, EVENT_ID) == EVENT_ID
    fresh = sentry.event_id_of({"event_id": "nope"})
    assert re.fullmatch(r"[0-9a-f]{32}", fresh) and fresh != EVENT_ID


# -- events -> records ------------------------------------------------------------------------


def test_exception_event_becomes_a_valid_exception_log() -> None:
    record = record_of(python_event(tags={"region": "eu"}, user={"id": "42"},
                                    server_name="web-1", transaction="/prices"))
    clean = valid(record)
    assert clean["log_id"] == str(uuid.UUID(EVENT_ID))
    assert (clean["log_type"], clean["level"]) == ("exception", "error")
    assert (clean["error_type"], clean["error_message"]) == ("PriceError", "no price")
    assert clean["message"] == "PriceError: no price"
    assert (clean["release"], clean["environment"], clean["platform"],
            clean["sdk_version"]) == ("shop@1.0", "prod", "python", "2.75.0")
    assert clean["timestamp"] == NOW
    attributes = clean["attributes"]
    assert attributes["tags"] == {"region": "eu"}
    assert attributes["user"] == {"id": "42"}
    assert (attributes["server_name"], attributes["transaction"]) == ("web-1", "/prices")
    assert attributes["sdk"] == {"name": "sentry.python", "version": "2.75.0"}


def test_the_exceptions_field_is_sentry_shaped_oldest_first_frames_caller_first() -> None:
    exceptions = record_of(python_event())["exceptions"]
    assert [e["type"] for e in exceptions] == ["KeyError", "PriceError"]
    assert exceptions[1]["module"] == "shop.pricing"
    assert exceptions[1]["mechanism"] == {"type": "chained", "source": "__cause__"}
    frames = exceptions[1]["stacktrace"]["frames"]
    assert [f["function"] for f in frames] == ["<module>", "load_price"]
    first = exceptions[0]["stacktrace"]["frames"][0]
    assert first == {"function": "get", "abs_path": "/app/cache.py", "filename": "cache.py",
                     "module": "cache", "lineno": 12, "in_app": True,
                     "context_line": "    return self.data[key]",
                     "pre_context": ["c", "d", "e", "f", "g"],
                     "post_context": ["h", "i", "j", "k", "l"]}


def test_python_stack_trace_reads_like_a_python_traceback() -> None:
    trace = record_of(python_event())["stack_trace"]
    assert trace == (
        "Traceback (most recent call last):\n"
        '  File "/app/cache.py", line 12, in get\n'
        "    return self.data[key]\n"
        "KeyError: 'price'\n"
        "\nThe above exception was the direct cause of the following exception:\n\n"
        "Traceback (most recent call last):\n"
        '  File "/app/main.py", line 3, in <module>\n'
        '  File "/app/shop/pricing.py", line 40, in load_price\n'
        "    raise PriceError('no price') from exc\n"
        "shop.pricing.PriceError: no price")


def test_javascript_stack_trace_is_v8_style_newest_first() -> None:
    exceptions = [
        {"type": "RangeError", "value": "miss", "stacktrace": {"frames": [
            frame("readCache", "/srv/app.js", 4, colno=9)]}},
        {"type": "TypeError", "value": "declined", "stacktrace": {"frames": [
            frame("main", "/srv/app.js", 20, colno=3), frame("charge", "/srv/app.js", 10,
                                                            colno=11),
            frame("?", "/srv/lib.js", 2)]}},
    ]
    assert sentry.render_stack_trace(exceptions, "node") == (
        "TypeError: declined\n"
        "    at /srv/lib.js:2\n"
        "    at charge (/srv/app.js:10:11)\n"
        "    at main (/srv/app.js:20:3)\n"
        "Caused by: RangeError: miss\n"
        "    at readCache (/srv/app.js:4:9)")


def test_java_go_ruby_and_other_platforms_have_their_own_forms() -> None:
    chain = [{"type": "SQLException", "value": "timeout", "module": "java.sql",
              "stacktrace": {"frames": [
                  {"module": "com.shop.Orders", "function": "save", "filename": "Orders.java",
                   "lineno": 30},
                  {"module": "com.shop.Db", "function": "run", "filename": "Db.java",
                   "lineno": 7}]}}]
    assert sentry.render_stack_trace(chain, "java") == (
        "java.sql.SQLException: timeout\n"
        "\tat com.shop.Db.run(Db.java:7)\n"
        "\tat com.shop.Orders.save(Orders.java:30)")
    assert sentry.render_stack_trace(chain, "csharp").startswith("SQLException: timeout\n\tat")
    go = [{"type": "*net.OpError", "value": "dial tcp: timeout", "stacktrace": {"frames": [
        {"module": "main", "function": "main", "abs_path": "/src/main.go", "lineno": 9},
        {"module": "main", "function": "connect", "abs_path": "/src/db.go", "lineno": 21}]}}]
    assert sentry.render_stack_trace(go, "go") == (
        "*net.OpError: dial tcp: timeout\n\ngoroutine 1 [running]:\n"
        "main.connect(...)\n\t/src/db.go:21\nmain.main(...)\n\t/src/main.go:9")
    ruby = [{"type": "NoMethodError", "value": "undefined method", "stacktrace": {"frames": [
        {"function": "call", "abs_path": "/app/app.rb", "lineno": 3},
        {"function": "total", "abs_path": "/app/cart.rb", "lineno": 12}]}}]
    assert sentry.render_stack_trace(ruby, "ruby") == (
        "/app/cart.rb:12:in 'total': undefined method (NoMethodError)\n"
        "\tfrom /app/app.rb:3:in 'call'")


def test_message_events_become_logger_logs_with_the_formatted_message() -> None:
    event = {"timestamp": NOW.isoformat(), "level": "fatal", "platform": "python",
             "logger": "payments",
             "logentry": {"message": "payment %s failed: %d%% (%s)", "params": ["p-1", 40]}}
    clean = valid(record_of(event))
    assert (clean["log_type"], clean["level"]) == ("logger", "critical")
    assert clean["message"] == "payment p-1 failed: 40% (%s)"
    assert clean["attributes"]["logger"] == "payments"
    assert valid(record_of({"message": "plain", "level": "log"}))["level"] == "info"
    assert valid(record_of({"message": {"formatted": "done"}}))["message"] == "done"
    assert valid(record_of({}))["level"] == "error"  # Sentry's default level


def test_a_huge_format_width_is_not_expanded() -> None:
    event = {"logentry": {"message": "%999999999d items", "params": [1]}}
    assert valid(record_of(event))["message"] == "%999999999d items"


def test_request_loses_cookies_and_credentials() -> None:
    event = python_event(request={
        "url": "https://shop.example/cart", "method": "POST", "query_string": "a=1",
        "cookies": {"session": "s3cret"},
        "headers": {"Cookie": "session=s3cret", "Authorization": "Bearer t0ken",
                    "X-Sentry-Auth": "sentry_key=k", "User-Agent": "curl/8"}})
    request = valid(record_of(event))["attributes"]["request"]
    assert request == {"url": "https://shop.example/cart", "method": "POST",
                       "query_string": "a=1", "headers": {"User-Agent": "curl/8"}}
    pairs = python_event(request={"headers": [["cookie", "x"], ["Accept", "*/*"]]})
    assert record_of(pairs)["attributes"]["request"] == {"headers": {"Accept": "*/*"}}


def test_breadcrumbs_are_capped_to_the_newest_and_big_events_are_trimmed_not_refused() -> None:
    crumbs = [{"message": f"crumb {i}", "data": {"blob": "x" * 3000}} for i in range(300)]
    event = python_event(breadcrumbs={"values": crumbs}, extra={"big": "y" * 200_000})
    record = record_of(event)
    clean = valid(record)
    attributes = clean["attributes"]
    assert len(orjson.dumps(attributes)) <= sentry.ATTRIBUTES_BUDGET
    assert "breadcrumbs" in attributes["truncated"]
    few = [{"message": f"crumb {i}"} for i in range(150)]
    small = valid(record_of(python_event(breadcrumbs=few)))["attributes"]
    assert len(small["breadcrumbs"]) == sentry.MAX_BREADCRUMBS
    assert small["breadcrumbs"][-1]["message"] == "crumb 149"


def test_deep_contexts_and_long_fields_are_bounded() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(40):
        node["n"] = {}
        node = node["n"]
    event = python_event(contexts={"deep": deep}, environment="e" * 50, release="r" * 300,
                         tags=[["k", "v"], ["bad"], ["n", None]])
    event["exception"]["values"][-1]["value"] = "v" * 9000
    clean = valid(record_of(event))
    assert len(clean["environment"]) == 20 and len(clean["release"]) == 100
    assert len(clean["error_message"]) == 5000
    assert clean["attributes"]["tags"] == {"k": "v"}


def test_fingerprint_and_trace_context_pass_through() -> None:
    event = python_event(fingerprint=["{{ default }}", "db", 7],
                         contexts={"trace": {"trace_id": "a" * 32, "span_id": "b" * 16}})
    clean = valid(record_of(event))
    assert clean["client_fingerprint"] == ["{{ default }}", "db", "7"]
    assert (clean["trace_id"], clean["span_id"]) == ("a" * 32, "b" * 16)
    bad = valid(record_of(python_event(contexts={"trace": {"trace_id": "zz"}})))
    assert bad["trace_id"] is None


def test_junk_in_every_field_never_breaks_the_mapping() -> None:
    event = {"exception": {"values": [None, 3, {"type": ["x"], "stacktrace": {"frames": [
        None, {"lineno": "7", "in_app": "yes", "function": {"a": 1}}]}}]},
             "tags": "nope", "user": [], "request": "x", "breadcrumbs": 5, "sdk": "s",
             "timestamp": {"x": 1}, "level": 42, "platform": None, "fingerprint": "f"}
    clean = valid(record_of(event))
    assert clean["log_type"] == "exception" and clean["error_type"] == "Error"
    assert clean["platform"] == "other"


def test_exception_chains_and_frames_are_capped() -> None:
    values = [{"type": f"E{i}", "value": "v", "stacktrace": {"frames": [
        frame(f"f{j}", "/app/a.py", j) for j in range(400)]}} for i in range(40)]
    exceptions = record_of({"exception": {"values": values}})["exceptions"]
    assert len(exceptions) == sentry.MAX_EXCEPTIONS
    assert exceptions[-1]["type"] == "E39"
    frames = exceptions[-1]["stacktrace"]["frames"]
    assert len(frames) == sentry.MAX_FRAMES
    assert frames[0]["function"] == "f0" and frames[-1]["function"] == "f399"


FRAME_KEYS = ["filename", "abs_path", "module", "function", "context_line", "package",
              "lineno", "colno", "in_app", "pre_context", "post_context", "vars", "platform",
              "instruction_addr"]
FRAME_VALUE = st.one_of(
    st.sampled_from(["views.py", "", "ü ✓", "x" * 1024, "x" * 1025, 7, 2**70, 1.5, True, False,
                     None, {"a": 1}]),
    st.lists(st.sampled_from(["", "  x = 1", "y" * 4096, "y" * 4097, 3, None]), max_size=7))


@st.composite
def sdk_frame(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from([None, "frame", [1]]))
    names = draw(st.lists(st.sampled_from(FRAME_KEYS), unique=True, max_size=len(FRAME_KEYS)))
    if draw(st.booleans()):  # mostly of the kept shape, as SDKs send them
        typed = {"lineno": st.integers(0, 10_000), "colno": st.integers(0, 200),
                 "in_app": st.booleans(), "vars": FRAME_VALUE,
                 "pre_context": st.lists(st.sampled_from(["", "a = 1"]), max_size=5),
                 "post_context": st.lists(st.sampled_from(["", "b = 2"]), max_size=5)}
        names = [n for n in names if n not in ("platform", "instruction_addr")]
        return {n: draw(typed.get(n, st.sampled_from(["views.py", "", "ü ✓", "x" * 1024])))
                for n in names}
    return {name: draw(FRAME_VALUE) for name in names}


@settings(max_examples=400, deadline=None)
@given(st.lists(sdk_frame(), max_size=6))
def test_frames_of_the_kept_shape_are_taken_as_they_are_and_others_as_before(
        frames: list[Any]) -> None:
    # The C-checked shortcut gives what _frame gives frame by frame, key order included.
    slow = [f for f in (sentry._frame(r) for r in frames) if f is not None]
    fast = sentry._frames({"frames": frames})
    assert [list(f.items()) for f in fast] == [list(f.items()) for f in slow]
