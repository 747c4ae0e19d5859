"""One error groups the same whichever way it arrives (issue 11): as Sentry-shaped structured
frames, as an OpenTelemetry exception (an OTLP/JSON log record through ``ledger.core.otlp``),
as a native log with a text trace, through Ledger's Python SDK (``Ledger.exception_record``),
or as a Python logging record — and two different errors stay apart in each form.

The structured form is made by the real ``sentry_sdk`` (``event_from_exception``) from a real
chained exception; the text forms by ``traceback``/``logging``/the SDK from the same exception.
"""

from __future__ import annotations

import io
import logging
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.utils import event_from_exception

from ledger.core import events, otlp
from ledger.sdk.client import Ledger
from tests.grouping_corpus import app_errors
from tests.grouping_corpus.model import render

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _record(**fields: Any) -> dict[str, Any]:
    base = {"timestamp": NOW.isoformat(), "level": "error", "log_type": "exception"}
    clean = events.validate_log({**base, **fields}, now=NOW, retention_days=30)
    return events.enrich(clean, project_id="p", now=NOW)


def _raise(func: Callable[[str], int], sku: str) -> BaseException:
    try:
        func(sku)
    except TypeError as exc:
        return exc
    raise AssertionError("expected a TypeError")


def _sentry_values(exc: BaseException) -> list[dict[str, Any]]:
    client = sentry_sdk.Client(dsn=None)
    event, _ = event_from_exception((type(exc), exc, exc.__traceback__),
                                    client_options=client.options)
    values: list[dict[str, Any]] = event["exception"]["values"]
    return values


def _forms(exc: BaseException) -> dict[str, dict[str, Any]]:
    text = "".join(traceback.format_exception(exc))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test_grouping_protocols")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error("charge failed", exc_info=(type(exc), exc, exc.__traceback__))
    finally:
        logger.removeHandler(handler)
    values = _sentry_values(exc)
    otlp_body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "timeUnixNano": str(int(NOW.timestamp() * 1e9)), "severityNumber": 17,
        "body": {"stringValue": "charge failed"},
        "attributes": [
            {"key": "exception.type",
             "value": {"stringValue": f"{type(exc).__module__}.{type(exc).__qualname__}"}},
            {"key": "exception.message", "value": {"stringValue": str(exc)}},
            {"key": "exception.stacktrace", "value": {"stringValue": text}}]}]}]}]}
    [otlp_record] = otlp.to_records(otlp.decode_json(otlp_body),
                                    received_ns=int(NOW.timestamp() * 1e9))
    sdk_record = Ledger.exception_record(exc)
    return {
        "sentry": _record(error_type=values[-1]["type"], error_message=values[-1]["value"],
                          exceptions=values, platform="python",
                          stack_trace=text),  # a rendering next to the frames changes nothing
        "sentry-frames-only": _record(exceptions=values, platform="python"),
        "otlp-shape": _record(error_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
                              error_message=str(exc), stack_trace=text),
        "otlp": _record(**{k: v for k, v in otlp_record.items() if k != "timestamp"}),
        "sdk": _record(**sdk_record),
        "native": _record(error_type=type(exc).__name__, error_message=str(exc),
                          stack_trace=text),
        "logging": _record(log_type="logger", message="charge failed",
                           stack_trace=stream.getvalue()),
    }


def test_a_python_error_groups_the_same_in_every_form() -> None:
    price = _forms(_raise(app_errors.load_price, "sku-1"))
    price_again = _forms(_raise(app_errors.load_price, "sku-2"))
    stock = _forms(_raise(app_errors.load_stock, "sku-1"))
    fingerprints = {name: r["error_fingerprint"] for name, r in price.items()}
    assert len(set(fingerprints.values())) == 1, fingerprints
    assert {r["error_fingerprint"] for r in price_again.values()} == set(fingerprints.values())
    assert {r["error_fingerprint"] for r in stock.values()}.isdisjoint(fingerprints.values())
    chain = price["sentry"]["fingerprint_components"]["exceptions"]
    assert [e["type"] for e in chain] == ["KeyError", "TypeError"]
    assert chain[0]["frames"] == ["grouping_corpus/app_errors:load_price",
                                  "grouping_corpus/app_errors:_cache_get"]
    assert chain[1]["frames"] == ["unit/test_grouping_protocols:_raise",
                                  "grouping_corpus/app_errors:load_price"]


def test_the_structured_chain_is_kept_and_read_back_from_attributes() -> None:
    values = _sentry_values(_raise(app_errors.load_price, "sku-1"))
    record = _record(exceptions=values, platform="python")
    stored = record["attributes"][events.EXCEPTIONS_KEY]
    assert [e["type"] for e in stored] == ["KeyError", "TypeError"]
    frame = stored[-1]["stacktrace"]["frames"][-1]
    assert frame["function"] == "load_price" and frame["lineno"] > 0
    assert "vars" not in frame  # only the known keys are kept
    assert record["error_type"] == "TypeError" and record["error_message"] == "no price for sku-1"


JAVA_TEXT = """\
redis.clients.jedis.exceptions.JedisConnectionException: Failed to connect to any host
\tat redis.clients.jedis.Connection.connect(Connection.java:179)
\tat redis.clients.jedis.UnifiedJedis.get(UnifiedJedis.java:510)
\tat com.acme.{pkg}.{cls}.{method}({cls}.java:41)
\tat com.acme.web.Router.dispatch(Router.java:88)
\tat java.base/java.lang.Thread.run(Thread.java:1583)
"""


def _java_values(pkg: str, cls: str, method: str) -> list[dict[str, Any]]:
    frames = [  # caller first, as sentry-java sends them
        {"module": "java.lang.Thread", "function": "run", "filename": "Thread.java",
         "lineno": 1583, "in_app": False},
        {"module": "com.acme.web.Router", "function": "dispatch", "filename": "Router.java",
         "lineno": 88, "in_app": True},
        {"module": f"com.acme.{pkg}.{cls}", "function": method, "filename": f"{cls}.java",
         "lineno": 41, "in_app": True},
        {"module": "redis.clients.jedis.UnifiedJedis", "function": "get",
         "filename": "UnifiedJedis.java", "lineno": 510, "in_app": False},
        {"module": "redis.clients.jedis.Connection", "function": "connect",
         "filename": "Connection.java", "lineno": 179, "in_app": False},
    ]
    return [{"type": "JedisConnectionException", "module": "redis.clients.jedis.exceptions",
             "value": "Failed to connect to any host", "stacktrace": {"frames": frames}}]


GO_TEXT = """\
panic: runtime error: invalid memory address or nil pointer dereference [recovered]

goroutine 71 [running]:
github.com/acme/shop/internal/billing.(*Service).{func}(0x0)
\t/build/internal/billing/service.go:42 +0x1d
github.com/acme/shop/internal/api.(*Handler).CreateOrder(0xc0001a2000)
\t/build/internal/api/orders.go:88 +0x1a5
net/http.HandlerFunc.ServeHTTP(0x0?)
\t/usr/local/go/src/net/http/server.go:2136 +0x29
"""


def _go_values(func: str) -> list[dict[str, Any]]:
    frames = [
        {"module": "net/http", "function": "HandlerFunc.ServeHTTP",
         "abs_path": "/usr/local/go/src/net/http/server.go", "lineno": 2136, "in_app": False},
        {"module": "github.com/acme/shop/internal/api", "function": "(*Handler).CreateOrder",
         "abs_path": "/build/internal/api/orders.go", "lineno": 88, "in_app": True},
        {"module": "github.com/acme/shop/internal/billing", "function": f"(*Service).{func}",
         "abs_path": "/build/internal/billing/service.go", "lineno": 42, "in_app": True},
    ]
    return [{"type": "runtime.Error", "value": "invalid memory address",
             "stacktrace": {"frames": frames}}]


NODE_TEXT = """\
TypeError: Cannot read properties of undefined (reading 'id')
    at {func} (/srv/app/src/services/users.js:42:17)
    at async loadProfile (/srv/app/src/routes/profile.js:17:5)
    at Layer.handle [as handle_request] (/srv/app/node_modules/express/lib/router/layer.js:95:5)
"""


def _node_values(func: str) -> list[dict[str, Any]]:
    frames = [
        {"filename": "/srv/app/node_modules/express/lib/router/layer.js",
         "module": "express.lib.router:layer", "function": "Layer.handle [as handle_request]",
         "lineno": 95, "colno": 5, "in_app": False},
        {"filename": "/srv/app/src/routes/profile.js", "module": "routes:profile",
         "function": "loadProfile", "lineno": 17, "colno": 5, "in_app": True},
        {"filename": "/srv/app/src/services/users.js", "module": "services:users",
         "function": func, "lineno": 42, "colno": 17, "in_app": True},
    ]
    return [{"type": "TypeError", "value": "Cannot read properties of undefined (reading 'id')",
             "mechanism": {"type": "onuncaughtexception", "handled": False},
             "stacktrace": {"frames": frames}}]


RUBY_TEXT = """\
/app/app/models/order.rb:12:in 'Order#{func}': undefined method 'total' for nil (NoMethodError)
\tfrom /usr/local/bundle/gems/activerecord-7.1.3/lib/active_record/transactions.rb:313:in 'x'
\tfrom /app/app/controllers/orders_controller.rb:9:in 'OrdersController#create'
"""


def _ruby_values(func: str) -> list[dict[str, Any]]:
    frames = [
        {"abs_path": "/app/app/controllers/orders_controller.rb",
         "filename": "app/controllers/orders_controller.rb", "function": "create",
         "lineno": 9, "in_app": True},
        {"abs_path": "/usr/local/bundle/gems/activerecord-7.1.3/lib/active_record/"
                     "transactions.rb", "filename": "active_record/transactions.rb",
         "function": "x", "lineno": 313, "in_app": False},
        {"abs_path": "/app/app/models/order.rb", "filename": "app/models/order.rb",
         "function": func, "lineno": 12, "in_app": True},
    ]
    return [{"type": "NoMethodError", "value": "undefined method 'total' for nil",
             "stacktrace": {"frames": frames}}]


CASES = {
    "java": (JAVA_TEXT, "JedisConnectionException",
             lambda a: _java_values(*a), ("cart", "CartCache", "load"),
             ("session", "SessionStore", "read"), "java"),
    "go": (GO_TEXT, "runtime.Error", lambda a: _go_values(a[0]), ("Charge",), ("Refund",), "go"),
    "node": (NODE_TEXT, "TypeError", lambda a: _node_values(a[0]), ("getUser",),
             ("getAccount",), "node"),
    "ruby": (RUBY_TEXT, "NoMethodError", lambda a: _ruby_values(a[0]), ("total_price",),
             ("subtotal",), "ruby"),
}
_KEYS = {"java": ("pkg", "cls", "method"), "go": ("func",), "node": ("func",),
         "ruby": ("func",)}


@pytest.mark.parametrize("language", sorted(CASES))
def test_structured_frames_group_like_the_printed_trace(language: str) -> None:
    text, error_type, values, one, other, platform = CASES[language]

    def pair(args: tuple[str, ...]) -> tuple[str, str]:
        trace = render(text, dict(zip(_KEYS[language], args, strict=True)))
        printed = _record(error_type=error_type, error_message="x", stack_trace=trace)
        structured = _record(error_type=error_type, error_message="x", exceptions=values(args),
                             platform=platform)
        return printed["error_fingerprint"], structured["error_fingerprint"]

    printed, structured = pair(one)
    assert printed == structured
    assert set(pair(other)).isdisjoint({printed})


@pytest.mark.parametrize(("value", "field"), [
    ("no", "exceptions"),
    ([1], "exceptions[0]"),
    ([{"value": None}], "exceptions[0]"),
    ([{"type": "E", "stacktrace": []}], "exceptions[0].stacktrace"),
    ([{"type": "E", "stacktrace": {"frames": [{"lineno": "12"}]}}],
     "exceptions[0].stacktrace.frames[0].lineno"),
    ([{"type": "E", "stacktrace": {"frames": [{"in_app": "yes"}]}}],
     "exceptions[0].stacktrace.frames[0].in_app"),
    ([{"type": "E", "mechanism": {"handled": 1}}], "exceptions[0].mechanism.handled"),
    ([{"type": "E", "stacktrace": {"frames": [{"pre_context": "x"}]}}],
     "exceptions[0].stacktrace.frames[0].pre_context"),
])
def test_a_wrong_exceptions_shape_is_refused_with_its_path(value: Any, field: str) -> None:
    with pytest.raises(events.InvalidLog) as caught:
        _record(exceptions=value)
    assert caught.value.field == field


def test_exceptions_are_bounded() -> None:
    frame = {"function": "f" * 5000, "abs_path": "/app/x.py", "lineno": 1,
             "context_line": "y" * 5000, "pre_context": ["z"] * 50, "vars": {"a": "b" * 9000}}
    values = [{"type": f"E{i}", "value": "v" * 9000,
               "stacktrace": {"frames": [frame] * 400}} for i in range(40)]
    with pytest.raises(events.InvalidLog) as caught:
        _record(exceptions=values)
    assert caught.value.field == "exceptions" and "bytes" in caught.value.reason
    long_frames = [{"function": "f" * 5000, "abs_path": "/app/x.py", "lineno": 1,
                    "pre_context": ["z"] * 50}]
    long_frames += [{"function": "g", "abs_path": "/app/x.py", "lineno": n}
                    for n in range(2, 401)]
    record = _record(exceptions=[{"type": "E", "value": "v" * 9000,
                                  "stacktrace": {"frames": long_frames}}])
    stored = record["attributes"][events.EXCEPTIONS_KEY]
    assert len(stored[0]["stacktrace"]["frames"]) == 250
    assert stored[0]["stacktrace"]["frames"][-1]["lineno"] == 400  # the innermost are kept
    assert len(stored[0]["value"]) == 5000
    cut = _record(exceptions=[{"type": "E", "value": "",
                               "stacktrace": {"frames": long_frames[:1]}}])
    frame = cut["attributes"][events.EXCEPTIONS_KEY][0]["stacktrace"]["frames"][0]
    assert len(frame["function"]) == 1024 and len(frame["pre_context"]) == 10
    many = _record(exceptions=[{"type": f"E{i}", "value": ""} for i in range(40)])
    kept = many["attributes"][events.EXCEPTIONS_KEY]
    assert len(kept) == 32 and kept[-1]["type"] == "E39"  # the raised one is kept


def test_the_reserved_attribute_key_is_refused() -> None:
    with pytest.raises(events.InvalidLog) as caught:
        _record(log_type="logger", attributes={events.EXCEPTIONS_KEY: []})
    assert caught.value.field == f"attributes.{events.EXCEPTIONS_KEY}"


def test_exception_group_members_from_sentry_are_sorted() -> None:
    def group(order: list[str]) -> list[dict[str, Any]]:
        members = [{"type": name, "value": "x",
                    "mechanism": {"type": "chained", "source": f"exceptions[{i}]",
                                  "exception_id": i + 1, "parent_id": 0},
                    "stacktrace": {"frames": [{"abs_path": "/app/jobs/sync.py",
                                               "function": f"sync_{name.lower()}",
                                               "lineno": 3}]}}
                   for i, name in enumerate(order)]
        top = {"type": "ExceptionGroup", "value": "errors",
               "mechanism": {"type": "generic", "is_exception_group": True, "exception_id": 0},
               "stacktrace": {"frames": [{"abs_path": "/app/jobs/sync.py",
                                          "function": "run_all", "lineno": 1}]}}
        return [*members[::-1], top]

    a = _record(exceptions=group(["ValueError", "KeyError"]))
    b = _record(exceptions=group(["KeyError", "ValueError"]))
    c = _record(exceptions=group(["KeyError", "OSError"]))
    assert a["error_fingerprint"] == b["error_fingerprint"] != c["error_fingerprint"]
    assert len(a["fingerprint_components"]["exceptions"][-1]["members"]) == 2
