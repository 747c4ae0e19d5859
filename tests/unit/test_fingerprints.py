"""Error fingerprints (DESIGN §6): a corpus of real-looking traces in five languages."""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson
import pytest

from ledger.core.fingerprints import (
    FINGERPRINT_VERSION,
    MAX_FRAMES,
    MAX_NORMALIZED_CHARS,
    Fingerprint,
    Frame,
    compute_fingerprint,
    normalize_message,
    parse_stack_trace,
)
from ledger.core.stacktraces import parse_exceptions


def render(template: str, **values: object) -> str:
    # Not str.format: Go argument lists and Java lambdas are full of braces and dollars.
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    assert not re.search(r"\{[a-z]\w*\}", template), "unfilled placeholder"
    return template


def fingerprint(
    trace: str | None = None,
    *,
    error_type: str | None = "Error",
    error_message: str | None = None,
    message: str | None = None,
    client: list[str] | None = None,
) -> Fingerprint:
    return compute_fingerprint(
        error_type=error_type,
        error_message=error_message,
        message=message,
        stack_trace=trace,
        client_fingerprint=client,
    )


# --------------------------------------------------------------------------------------------
# The corpus. Each template is one error; {root} is the deploy directory, {l1}.. line numbers,
# {id}/{hex} values that differ per event, {func} the innermost in-app function.
# --------------------------------------------------------------------------------------------

PYTHON = """\
Traceback (most recent call last):
  File "{root}/.venv/lib/python3.11/site-packages/starlette/routing.py", line 74, in app
    response = await func(request)
  File "{root}/.venv/lib/python3.11/site-packages/fastapi/routing.py", line 278, in app
    raw_response = await run_endpoint_function(
  File "{root}/app/api/orders.py", line {l1}, in create_order
    invoice = await billing.{func}(order)
  File "{root}/app/services/billing.py", line {l2}, in {func}
    price = PRICES[order.sku]
  File "/usr/lib/python3.11/collections/__init__.py", line {l3}, in __getitem__
    raise KeyError(key)
KeyError: 'sku-{id}'
"""

NODE = """\
TypeError: Cannot read properties of undefined (reading 'id') at user {id}
    at {func} ({root}/src/services/users.js:{l1}:17)
    at async Promise.all (index 0)
    at async loadProfile ({root}/src/routes/profile.js:{l2}:5)
    at Layer.handle [as handle_request] ({root}/node_modules/express/lib/router/layer.js:95:5)
    at next ({root}/node_modules/express/lib/router/route.js:{l3}:13)
    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)
"""

FIREFOX = """\
{func}@https://app.example.com/static/js/main.{hex}.js:{l1}:4211
loadProfile@https://app.example.com/static/js/main.{hex}.js:2:{l2}
promiseReactionJob@[native code]
@https://app.example.com/static/js/vendor.{hex}.js:1:{l3}
"""

JAVA = """\
org.springframework.dao.DataIntegrityViolationException: could not execute statement; \
SQL [n/a]; constraint [users_email_key]; request {id}
\tat org.springframework.orm.jpa.vendor.HibernateJpaDialect.convertHibernateAccessException\
(HibernateJpaDialect.java:276)
\tat org.springframework.orm.jpa.vendor.HibernateJpaDialect.translateExceptionIfPossible\
(HibernateJpaDialect.java:233)
\tat com.acme.users.UserService.{func}(UserService.java:{l1})
\tat com.acme.users.UserController.register(UserController.java:{l2})
\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)
\tat org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:166)
\tat java.base/java.lang.Thread.run(Thread.java:833)
Caused by: org.hibernate.exception.ConstraintViolationException: could not execute statement
\tat org.hibernate.exception.internal.SQLStateConversionDelegate.convert\
(SQLStateConversionDelegate.java:109)
\tat org.hibernate.engine.jdbc.spi.SqlExceptionHelper.convert(SqlExceptionHelper.java:113)
\tat org.hibernate.engine.jdbc.batch.internal.NonBatchingBatch.addToBatch\
(NonBatchingBatch.java:46)
\tat com.acme.users.UserRepository.insert(UserRepository.java:{l3})
\t... 5 more
Caused by: org.postgresql.util.PSQLException: ERROR: duplicate key value violates unique \
constraint "users_email_key"
  Detail: Key (email)=(user{id}@example.com) already exists.
\tat org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse(QueryExecutorImpl.java:2676)
\tat org.postgresql.jdbc.PgPreparedStatement.executeUpdate(PgPreparedStatement.java:152)
\t... 7 more
"""

GO = """\
panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x{hex}]

goroutine {id} [running]:
github.com/acme/shop/internal/billing.(*Service).{func}(0x0, {0xc00001{id}, 0x24})
\t{root}/internal/billing/service.go:{l1} +0x1d
github.com/acme/shop/internal/api.(*Handler).CreateOrder(0xc0001a2000, {0x7f1c2c, 0xc0002})
\t{root}/internal/api/orders.go:{l2} +0x1a5
net/http.HandlerFunc.ServeHTTP(0x0?, {0x6c1a10?, 0xc0000b4000?}, 0xc000010000?)
\t/usr/local/go/src/net/http/server.go:2136 +0x29
net/http.(*conn).serve(0xc00012a000, {0x6c2b58, 0xc0000a8000})
\t/usr/local/go/src/net/http/server.go:{l3} +0x612
created by net/http.(*Server).Serve in goroutine 1
\t/usr/local/go/src/net/http/server.go:3086 +0x5cb

goroutine 7 [IO wait]:
internal/poll.runtime_pollWait(0x7f2a, 0x72)
\t/usr/local/go/src/runtime/netpoll.go:343 +0x85
github.com/acme/shop/internal/worker.(*Pool).run(0xc000100000)
\t{root}/internal/worker/pool.go:88 +0x55
"""

RUBY = """\
{root}/app/models/order.rb:{l1}:in `{func}': undefined method `total' for nil:NilClass \
(NoMethodError) order {id}
\tfrom {root}/app/services/checkout.rb:{l2}:in `block in call'
\tfrom /usr/local/bundle/gems/activerecord-7.1.3/lib/active_record/connection_adapters/\
abstract/transaction.rb:535:in `block in within_new_transaction'
\tfrom {root}/app/controllers/orders_controller.rb:{l3}:in `create'
\tfrom /usr/local/bundle/gems/actionpack-7.1.3/lib/action_controller/metal/\
basic_implicit_render.rb:6:in `send_action'
"""

# Ruby 3.4 quotes with ' instead of ` and qualifies labels with the class.
RUBY_34 = """\
{root}/app/models/order.rb:{l1}:in 'Order#{func}': undefined method 'total' for nil \
(NoMethodError) order {id}
\tfrom {root}/app/services/checkout.rb:{l2}:in 'block in Checkout#call'
\tfrom /usr/local/bundle/gems/activerecord-7.1.3/lib/active_record/connection_adapters/\
abstract/transaction.rb:535:in 'block in ActiveRecord::ConnectionAdapters::\
TransactionManager#within_new_transaction'
\tfrom {root}/app/controllers/orders_controller.rb:{l3}:in 'OrdersController#create'
\tfrom /usr/local/bundle/gems/actionpack-7.1.3/lib/action_controller/metal/\
basic_implicit_render.rb:6:in 'ActionController::BasicImplicitRender#send_action'
"""


@dataclass(frozen=True)
class Case:
    name: str
    template: str
    error_type: str
    func: str
    other_func: str
    roots: tuple[str, str]
    expected: tuple[tuple[str, tuple[str, ...]], ...]  # chain: (type, frames with {func})


CASES = [
    Case(
        "python",
        PYTHON,
        "KeyError",
        "charge",
        "refund",
        ("/srv/app", "/home/deploy/releases/20240501T1200"),
        (("KeyError", ("api/orders:create_order", "services/billing:{func}")),),
    ),
    Case(
        "node",
        NODE,
        "TypeError",
        "getUser",
        "getAccount",
        ("/srv/app", "/var/www/app-v2"),
        (("TypeError", ("routes/profile:loadProfile", "services/users:{func}")),),
    ),
    Case(
        "firefox",
        FIREFOX,
        "TypeError",
        "getUser",
        "getAccount",
        ("", ""),
        (("TypeError", ("vendor:<anonymous>", "main:loadProfile", "main:{func}")),),
    ),
    Case(
        "java",
        JAVA,
        "org.springframework.dao.DataIntegrityViolationException",
        "register",
        "updateEmail",
        ("", ""),
        # The whole chain, root cause first: each exception's innermost in-app frames.
        (
            ("PSQLException", ("com.acme.users.UserController:register",
                               "com.acme.users.UserService:{func}",
                               "com.acme.users.UserRepository:insert")),
            ("ConstraintViolationException", ("com.acme.users.UserController:register",
                                              "com.acme.users.UserService:{func}",
                                              "com.acme.users.UserRepository:insert")),
            ("DataIntegrityViolationException", ("com.acme.users.UserController:register",
                                                 "com.acme.users.UserService:{func}")),
        ),
    ),
    Case(
        "go",
        GO,
        "runtime.Error",
        "Charge",
        "Refund",
        ("/home/ci/work/shop", "/go/src/github.com/acme/shop"),
        (("Error", ("github.com/acme/shop/internal/api:(*Handler).CreateOrder",
                    "github.com/acme/shop/internal/billing:(*Service).{func}")),),
    ),
    Case(
        "ruby",
        RUBY,
        "NoMethodError",
        "total_price",
        "subtotal",
        ("/srv/app/releases/20240501", "/app"),
        (("NoMethodError", ("controllers/orders_controller:create",
                            "services/checkout:block in call", "models/order:{func}")),),
    ),
    Case(
        "ruby-3.4",
        RUBY_34,
        "NoMethodError",
        "total_price",
        "subtotal",
        ("/srv/app/releases/20240501", "/app"),
        (("NoMethodError", ("controllers/orders_controller:create",
                            "services/checkout:block in call", "models/order:{func}")),),
    ),
]

EVENT_A = {"l1": 42, "l2": 17, "l3": 311, "id": 1001, "hex": "3f2a1b9c"}
EVENT_B = {"l1": 58, "l2": 23, "l3": 340, "id": 98231, "hex": "8e1d44a0f1"}


def trace_for(
    case: Case, *, func: str | None = None, root: int = 0, event: dict[str, object]
) -> str:
    return render(case.template, func=func or case.func, root=case.roots[root], **event)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_same_error_groups_across_lines_ids_and_deploy_directories(case: Case) -> None:
    first = fingerprint(trace_for(case, event=EVENT_A), error_type=case.error_type)
    second = fingerprint(trace_for(case, root=1, event=EVENT_B), error_type=case.error_type)
    assert first.method == second.method == "stacktrace"
    assert first.hash == second.hash


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_different_function_is_a_different_error(case: Case) -> None:
    first = fingerprint(trace_for(case, event=EVENT_A), error_type=case.error_type)
    other = fingerprint(
        trace_for(case, func=case.other_func, event=EVENT_A), error_type=case.error_type
    )
    assert first.hash != other.hash


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_different_error_type_from_the_same_frames_is_a_different_error(case: Case) -> None:
    trace = trace_for(case, event=EVENT_A)
    assert fingerprint(trace, error_type=case.error_type).hash != (
        fingerprint(trace, error_type="ValueError").hash
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_innermost_in_app_frames_contribute_without_lines_or_paths(case: Case) -> None:
    result = fingerprint(trace_for(case, event=EVENT_A), error_type=case.error_type)
    expected = [
        {"type": t, "frames": [f.replace("{func}", case.func) for f in frames], "in_app": True}
        for t, frames in case.expected
    ]
    assert result.components == {
        "method": "stacktrace",
        "error_type": case.expected[-1][0],
        "exceptions": expected,
    }
    explained = orjson.dumps(result.components).decode()
    for line in ("42", "17", "311"):
        assert f":{line}" not in explained
    assert "/srv" not in explained and "/home" not in explained


def test_ruby_34_labels_group_with_older_ruby() -> None:
    ruby = next(c for c in CASES if c.name == "ruby")
    ruby_34 = next(c for c in CASES if c.name == "ruby-3.4")
    assert (
        fingerprint(trace_for(ruby, event=EVENT_A), error_type="NoMethodError").hash
        == fingerprint(trace_for(ruby_34, event=EVENT_B), error_type="NoMethodError").hash
    )


# --------------------------------------------------------------------------------------------
# Parsing details
# --------------------------------------------------------------------------------------------


def test_python_frames_are_outermost_first_with_in_app_flags() -> None:
    frames = parse_stack_trace(render(PYTHON, root="/srv/app", func="charge", **EVENT_A))
    assert frames == [
        Frame("starlette/routing", "app", False),
        Frame("fastapi/routing", "app", False),
        Frame("api/orders", "create_order", True),
        Frame("services/billing", "charge", True),
        Frame("collections/__init__", "__getitem__", False),
    ]


PYTHON_CHAINED = """\
Traceback (most recent call last):
  File "/srv/app/app/clients/payments.py", line 31, in {func}
    response = self.session.post(url, json=payload, timeout=5)
  File "/srv/app/.venv/lib/python3.12/site-packages/requests/sessions.py", line 637, in post
    return self.request("POST", url, data=data, json=json, **kwargs)
  File "/srv/app/.venv/lib/python3.12/site-packages/requests/adapters.py", line 519, in send
    raise ConnectionError(e, request=request)
requests.exceptions.ConnectionError: HTTPSConnectionPool(host='pay.example.com', port=443)

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/srv/app/app/api/checkout.py", line {l1}, in {wrapper}
    receipt = payments.capture(order)
  File "/srv/app/app/clients/payments.py", line 33, in {func}
    raise PaymentUnavailable("payment provider unreachable") from exc
app.errors.PaymentUnavailable: payment provider unreachable
"""


def test_python_chained_exceptions_use_every_exception_of_the_chain() -> None:
    chain = parse_exceptions(render(PYTHON_CHAINED, func="capture", wrapper="checkout", l1=12))
    assert [(e.type, [f.module for f in e.frames]) for e in chain] == [
        ("requests.exceptions.ConnectionError",
         ["clients/payments", "requests/sessions", "requests/adapters"]),
        ("app.errors.PaymentUnavailable", ["api/checkout", "clients/payments"]),
    ]
    # The wrapper's frames count too: the same root cause reached from two callers is two
    # errors (a checkout and an express checkout fail for different users and reasons).
    a = fingerprint(render(PYTHON_CHAINED, func="capture", wrapper="checkout", l1=12))
    a2 = fingerprint(render(PYTHON_CHAINED, func="capture", wrapper="checkout", l1=99))
    b = fingerprint(render(PYTHON_CHAINED, func="capture", wrapper="express_checkout", l1=80))
    c = fingerprint(render(PYTHON_CHAINED, func="authorize", wrapper="checkout", l1=12))
    assert a.hash == a2.hash
    assert len({a.hash, b.hash, c.hash}) == 3


def test_two_errors_raised_while_handling_the_same_cause_stay_apart() -> None:
    template = """\
Traceback (most recent call last):
  File "/app/cache.py", line 12, in get
    return self._data[key]
KeyError: 'price:42'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/{module}.py", line 30, in {func}
    return int(cache.get(key)) * rate
  File "/app/cache.py", line 14, in get
    raise TypeError("cache miss for " + key)
TypeError: cache miss for {module}
"""
    pricing = fingerprint(render(template, module="pricing", func="load_price"),
                          error_type="TypeError")
    stock = fingerprint(render(template, module="inventory", func="load_stock"),
                        error_type="TypeError")
    assert pricing.hash != stock.hash


def test_python_exception_group_members_are_read_and_sorted() -> None:
    trace = """\
  + Exception Group Traceback (most recent call last):
  |   File "/srv/app/app/jobs.py", line 10, in run_all
  |     async with asyncio.TaskGroup() as tg:
  | ExceptionGroup: unhandled errors in a TaskGroup (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | Traceback (most recent call last):
    |   File "/srv/app/app/jobs.py", line 20, in {first}
    |     raise ValueError("bad user")
    | ValueError: bad user
    +---------------- 2 ----------------
    | Traceback (most recent call last):
    |   File "/srv/app/app/jobs.py", line 30, in {second}
    |     raise KeyError(order_id)
    | KeyError: 42
    +------------------------------------
"""
    chain = parse_exceptions(render(trace, first="sync_user", second="sync_order"))
    assert [(e.type, [f.function for f in e.frames]) for e in chain] == [
        ("ExceptionGroup", ["run_all"])]
    members = [[(e.type, [f.function for f in e.frames]) for e in m] for m in chain[0].members]
    assert members == [[("ValueError", ["sync_user"])], [("KeyError", ["sync_order"])]]
    # Completion order differs between runs: the members are sorted before hashing.
    swapped = render(trace, first="sync_order", second="sync_user").replace(
        "ValueError: bad user", "@@").replace("KeyError: 42", "ValueError: bad user").replace(
        "@@", "KeyError: 42")
    one = fingerprint(render(trace, first="sync_user", second="sync_order"), error_type=None)
    two = fingerprint(swapped, error_type=None)
    assert one.hash == two.hash
    assert one.components["error_type"] == "ExceptionGroup"
    other = fingerprint(render(trace, first="sync_user", second="sync_invoice"), error_type=None)
    assert other.hash != one.hash


def test_windows_python_paths() -> None:
    trace = """\
Traceback (most recent call last):
  File "C:\\deploy\\app\\billing.py", line 4, in charge\r
    x = json.loads(s)\r
  File "C:\\Python311\\Lib\\json\\__init__.py", line 346, in loads\r
    return _default_decoder.decode(s)\r
"""
    assert parse_stack_trace(trace) == [
        Frame("billing", "charge", True),
        Frame("json/__init__", "loads", False),
    ]


def test_java_rebuilds_each_cause_stack_from_the_enclosing_trace() -> None:
    chain = parse_exceptions(render(JAVA, func="register", **EVENT_A))
    assert [e.type for e in chain] == [
        "org.postgresql.util.PSQLException",
        "org.hibernate.exception.ConstraintViolationException",
        "org.springframework.dao.DataIntegrityViolationException",
    ]
    root = chain[0].frames
    assert [f"{f.module}.{f.function}" for f in root] == [
        "java.lang.Thread.run",
        "org.apache.catalina.core.ApplicationFilterChain.doFilter",
        "jdk.internal.reflect.NativeMethodAccessorImpl.invoke0",
        "com.acme.users.UserController.register",
        "com.acme.users.UserService.register",
        "com.acme.users.UserRepository.insert",
        "org.hibernate.engine.jdbc.batch.internal.NonBatchingBatch.addToBatch",
        "org.postgresql.jdbc.PgPreparedStatement.executeUpdate",
        "org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse",
    ]
    assert [f.in_app for f in root] == [False, False, False, True, True, True, False, False,
                                        False]


def test_java_library_frames_of_a_wrapper_do_not_change_the_fingerprint() -> None:
    trace = render(JAVA, func="register", **EVENT_A)
    rewrapped = trace.replace(
        "HibernateJpaDialect.translateExceptionIfPossible",
        "HibernateJpaDialect.translateExceptionIfPossibleAgain",
    )
    error_type = "org.springframework.dao.DataIntegrityViolationException"
    a = fingerprint(trace, error_type=error_type)
    b = fingerprint(rewrapped, error_type=error_type)
    assert a.components == b.components
    assert a.hash == b.hash


def test_a_jedis_root_cause_does_not_hide_the_caller() -> None:
    template = """\
redis.clients.jedis.exceptions.JedisConnectionException: Failed to connect to any host
\tat redis.clients.jedis.DefaultJedisSocketFactory.createSocket(DefaultJedisSocketFactory.java:112)
\tat redis.clients.jedis.Connection.connect(Connection.java:179)
\tat redis.clients.jedis.Connection.sendCommand(Connection.java:126)
\tat redis.clients.jedis.Jedis.get(Jedis.java:428)
\tat redis.clients.jedis.JedisPooled.get(JedisPooled.java:70)
\tat com.acme.{pkg}.{cls}.{method}({cls}.java:41)
\tat com.acme.web.Router.dispatch(Router.java:88)
"""
    a = fingerprint(render(template, pkg="cart", cls="CartCache", method="load"))
    b = fingerprint(render(template, pkg="session", cls="SessionStore", method="read"))
    assert a.hash != b.hash
    assert a.components["exceptions"][0]["frames"] == [
        "com.acme.web.Router:dispatch", "com.acme.cart.CartCache:load"]


def test_java_suppressed_exceptions_and_logback_decorations_are_ignored() -> None:
    trace = """\
java.io.IOException: close failed
\tat com.acme.io.Exporter.export(Exporter.java:40) ~[app.jar:1.4.2]
\tat com.acme.io.Main.main(Main.java:12) ~[app.jar:1.4.2]
\tSuppressed: java.lang.IllegalStateException: stream already closed
\t\tat com.acme.io.Sink.close(Sink.java:99)
\t\tat com.acme.io.Exporter.export(Exporter.java:38)
\t\t... 1 more
\tCaused by: java.lang.RuntimeException: inner
\t\tat com.acme.io.Sink.flush(Sink.java:120)
\t\t... 2 more
"""
    assert [f"{f.module}.{f.function}" for f in parse_stack_trace(trace)] == [
        "com.acme.io.Main.main",
        "com.acme.io.Exporter.export",
    ]


def test_java_lambdas_proxies_and_accessors_are_stable_names() -> None:
    def trace(n: int, addr: str, proxy: str) -> str:
        return f"""\
java.lang.NullPointerException: Cannot invoke "String.length()"
\tat com.acme.orders.OrderService.lambda$total$0(OrderService.java:{n})
\tat com.acme.orders.OrderService$$Lambda${n}/0x{addr}.apply(Unknown Source)
\tat jdk.internal.reflect.GeneratedMethodAccessor{n}.invoke(Unknown Source)
\tat com.acme.orders.OrderService$$SpringCGLIB$$0.total(<generated>)
\tat com.acme.orders.OrderController$$EnhancerBySpringCGLIB${proxy}.list(<generated>)
"""

    a = parse_stack_trace(trace(14, "0000000800066840", "5e8a3b1f"))
    b = parse_stack_trace(trace(97, "00007f00c0a1b2c8", "9c1d77e2"))
    assert a == b
    assert Frame("com.acme.orders.OrderService$$Lambda", "apply", True) in a


def test_node_prefixes_and_internal_frames() -> None:
    frames = parse_stack_trace(render(NODE, root="/srv/app", func="getUser", **EVENT_A))
    assert frames == [
        Frame("process/task_queues", "process.processTicksAndRejections", False),
        Frame("router/route", "next", False),
        Frame("router/layer", "Layer.handle", False),
        Frame("routes/profile", "loadProfile", True),
        Frame("index 0", "Promise.all", False),
        Frame("services/users", "getUser", True),
    ]


def test_node_anonymous_constructor_and_esm_frames() -> None:
    trace = """\
Error: boom
    at new Invoice (file:///srv/app/src/invoice.mjs:3:11)
    at /srv/app/src/handler.js:20:3
    at Object.<anonymous> (/srv/app/index.js:5:1)
    at Module._compile (node:internal/modules/cjs/loader:1105:14)
    at eval (eval at compile (/srv/app/src/tpl.js:1:1), <anonymous>:1:1)
"""
    assert parse_stack_trace(trace) == [
        Frame("<eval>", "eval", False),
        Frame("cjs/loader", "Module._compile", False),
        Frame("index", "<anonymous>", True),
        Frame("handler", "<anonymous>", True),
        Frame("invoice", "Invoice", True),
    ]
    assert parse_exceptions(trace)[0].type == "Error"


def test_go_reads_only_the_panicking_goroutine() -> None:
    frames = parse_stack_trace(render(GO, root="/srv/shop", func="Charge", **EVENT_A))
    assert frames == [
        Frame("net/http", "(*Server).Serve", False),
        Frame("net/http", "(*conn).serve", False),
        Frame("net/http", "HandlerFunc.ServeHTTP", False),
        Frame("github.com/acme/shop/internal/api", "(*Handler).CreateOrder", True),
        Frame("github.com/acme/shop/internal/billing", "(*Service).Charge", True),
    ]


def test_go_panic_and_runtime_frames_are_not_in_app() -> None:
    trace = """\
panic: boom [recovered]
\tpanic: boom

goroutine 1 [running]:
panic({0x4a5b20?, 0xc000014070?})
\t/opt/hostedtoolcache/go/1.22.1/x64/src/runtime/panic.go:770 +0x132
main.process(...)
\t/workspace/main.go:12
main.main()
\t/workspace/main.go:7 +0x25
exit status 2
"""
    assert parse_stack_trace(trace) == [
        Frame("main", "main", True),
        Frame("main", "process", True),
        Frame("panic", "", False),
    ]


def test_go_versioned_module_paths_are_third_party() -> None:
    template = """\
panic: pq: canceling statement due to statement timeout

goroutine 1 [running]:
github.com/lib/pq.(*conn).query(0xc000120000, {{0x7a1b2c, 0x1f}})
\tgithub.com/lib/pq@v1.10.9/conn.go:1012 +0x1d
github.com/lib/pq.(*conn).QueryContext(0xc000120000)
\tgithub.com/lib/pq@v1.10.9/conn_go18.go:21 +0x1d
github.com/acme/api/{pkg}.{func}(0xc0001a2000)
\tgithub.com/acme/api/{pkg}/store.go:42 +0x1a5
main.main()
\tgithub.com/acme/api/main.go:9 +0x25
"""
    users = fingerprint(render(template, pkg="users", func="List"), error_type="*pq.Error")
    orders = fingerprint(render(template, pkg="orders", func="Recent"), error_type="*pq.Error")
    assert users.hash != orders.hash
    assert users.components["exceptions"][0]["frames"] == [
        "main:main", "github.com/acme/api/users:List"]


def test_firefox_and_safari_frames() -> None:
    frames = parse_stack_trace(render(FIREFOX, func="getUser", **EVENT_A))
    assert frames == [
        Frame("vendor", "<anonymous>", True),
        Frame("main", "loadProfile", True),
        Frame("main", "getUser", True),
    ]
    safari = "render@https://x.example/app.js:10:5\nglobal code@https://x.example/app.js:1:1\n"
    assert [f.function for f in parse_stack_trace(safari)] == ["global code", "render"]


def test_ruby_gems_are_not_in_app() -> None:
    frames = parse_stack_trace(render(RUBY, root="/app", func="total", **EVENT_A))
    assert [(f.module, f.in_app) for f in frames] == [
        ("metal/basic_implicit_render", False),
        ("controllers/orders_controller", True),
        ("abstract/transaction", False),
        ("services/checkout", True),
        ("models/order", True),
    ]
    assert parse_exceptions(render(RUBY, root="/app", func="total", **EVENT_A))[0].type == (
        "NoMethodError")


def test_rails_cleaned_gem_frames_are_not_in_app() -> None:
    template = """\
app/models/{model}.rb:{line}:in 'save!': Validation failed (ActiveRecord::RecordInvalid)
activerecord (7.1.3) lib/active_record/validations.rb:84:in 'raise_validation_error'
activerecord (7.1.3) lib/active_record/validations.rb:55:in 'save!'
activerecord (7.1.3) lib/active_record/transactions.rb:313:in 'block in save!'
activerecord (7.1.3) lib/active_record/transactions.rb:365:in 'block in with_transaction'
activerecord (7.1.3) lib/active_record/connection_adapters/abstract/transaction.rb:535:in 'x'
app/controllers/{controller}_controller.rb:12:in 'create'
actionpack (7.1.3) lib/action_controller/metal/basic_implicit_render.rb:6:in 'send_action'
"""
    users = fingerprint(render(template, model="user", controller="users", line=3),
                        error_type="ActiveRecord::RecordInvalid")
    orders = fingerprint(render(template, model="order", controller="orders", line=3),
                         error_type="ActiveRecord::RecordInvalid")
    assert users.hash != orders.hash
    assert users.components["exceptions"][0]["frames"] == [
        "controllers/users_controller:create", "models/user:save!"]


def test_unrecognised_text_yields_no_frames() -> None:
    assert parse_stack_trace("") == []
    assert parse_stack_trace("something went wrong\nno frames here") == []


def test_at_most_the_innermost_five_in_app_frames_contribute() -> None:
    lines = "".join(
        f'  File "/srv/app/app/step{i}.py", line {i}, in step{i}\n    step{i + 1}()\n'
        for i in range(30)
    )
    result = fingerprint(f"Traceback (most recent call last):\n{lines}RecursionError: x\n")
    frames = result.components["exceptions"][-1]["frames"]
    assert frames == [f"step{i}:step{i}" for i in range(25, 30)]
    assert len(frames) == MAX_FRAMES


def test_all_frames_count_when_none_is_in_app() -> None:
    trace = """\
Traceback (most recent call last):
  File "/usr/lib/python3.11/runpy.py", line 198, in _run_module_as_main
  File "/usr/local/lib/python3.11/site-packages/gunicorn/arbiter.py", line 609, in spawn_worker
  File "/usr/local/lib/python3.11/site-packages/gunicorn/workers/base.py", line 142, in init
OSError: [Errno 24] Too many open files
"""
    result = fingerprint(trace, error_type="OSError")
    assert result.method == "stacktrace"
    assert result.components["exceptions"] == [{
        "type": "OSError",
        "frames": ["python3.11/runpy:_run_module_as_main", "gunicorn/arbiter:spawn_worker",
                   "workers/base:init"],
        "in_app": False,
    }]


def test_two_views_modules_with_the_same_function_stay_apart() -> None:
    template = """\
Traceback (most recent call last):
  File "/app/{package}/views.py", line 10, in post
    obj.save()
ValueError: invalid
"""
    users = fingerprint(render(template, package="users"), error_type="ValueError")
    orders = fingerprint(render(template, package="orders"), error_type="ValueError")
    assert users.hash != orders.hash


def test_minified_javascript_falls_back_to_type_and_message() -> None:
    template = """\
TypeError: {message}
    at e (https://cdn.example.com/assets/index.{hash}.js:1:{col})
    at t (https://cdn.example.com/assets/index.{hash}.js:1:9812)
    at n (https://cdn.example.com/assets/vendor.{hash}.js:2:311)
"""
    a = fingerprint(render(template, message="x is undefined", hash="4f3c2a1b", col=100),
                    error_type="TypeError", error_message="x is undefined")
    a2 = fingerprint(render(template, message="x is undefined", hash="9e8d7c6b", col=380),
                     error_type="TypeError", error_message="x is undefined")
    b = fingerprint(render(template, message="y.map is not a function", hash="4f3c2a1b",
                           col=100),
                    error_type="TypeError", error_message="y.map is not a function")
    assert a.hash == a2.hash != b.hash
    assert a.components["exceptions"] == [
        {"type": "TypeError", "message": "x is undefined", "minified": True}]


def test_vite_bundle_hashes_do_not_split_an_error_on_every_deploy() -> None:
    template = """\
TypeError: Cannot read properties of null (reading 'name')
    at renderProfile (https://app.example.com/assets/index-{hash}.js:12:345)
    at loadPage (https://app.example.com/assets/index-{hash}.js:40:12)
"""
    first = fingerprint(render(template, hash="DiwrgTda"), error_type="TypeError")
    second = fingerprint(render(template, hash="BQfr2X0u"), error_type="TypeError")
    assert first.hash == second.hash
    assert first.components["exceptions"][0]["frames"] == ["index:loadPage",
                                                           "index:renderProfile"]


def test_the_type_is_read_from_the_trace_when_error_type_is_missing() -> None:
    template = """\
Traceback (most recent call last):
  File "/app/orders/service.py", line 8, in total
    return prices[sku] + tax
{line}
"""
    key_error = fingerprint(render(template, line="KeyError: 'sku-1'"), error_type=None)
    type_error = fingerprint(
        render(template, line="TypeError: unsupported operand type(s) for +: 'int' and 'str'"),
        error_type=None)
    assert key_error.hash != type_error.hash
    assert key_error.components["error_type"] == "KeyError"
    assert key_error.hash == fingerprint(render(template, line="KeyError: 'sku-1'"),
                                         error_type="KeyError").hash


def test_status_exit_sqlstate_and_errno_codes_stay_in_messages() -> None:
    def message(text: str) -> str:
        return fingerprint(None, error_type=None, message=text).hash

    assert message("worker died: exit status 137") != message("worker died: exit status 1")
    assert message("tx failed: SQLSTATE 40001") != message("tx failed: SQLSTATE 23505")
    assert message("[Errno 111] Connection refused") != message("[Errno 104] Connection reset")
    assert message("upstream answered status 503") != message("upstream answered status 404")
    # Other numbers still vary per event.
    assert message("order 1234 failed: exit status 1") == message("order 98 failed: exit status 1")


# --------------------------------------------------------------------------------------------
# Precedence and the fingerprint itself
# --------------------------------------------------------------------------------------------

TRACE = render(PYTHON, root="/srv/app", func="charge", **EVENT_A)


def test_fingerprint_shape() -> None:
    result = fingerprint(TRACE, error_type="KeyError")
    assert result.version == FINGERPRINT_VERSION == 2
    assert re.fullmatch(r"[0-9a-f]{32}", result.hash)
    assert result.components["method"] == result.method
    orjson.dumps(result.components)  # JSON-serialisable


def test_unparseable_trace_falls_back_to_type_and_message() -> None:
    a = fingerprint("<no trace>", error_type="ValueError", error_message="bad id 42")
    b = fingerprint(None, error_type="ValueError", error_message="bad id 977")
    assert a.method == b.method == "type_message"
    assert a.hash == b.hash
    assert a.components == {
        "method": "type_message",
        "error_type": "ValueError",
        "message": "bad id <num>",
    }
    assert a.hash != fingerprint(None, error_type="TypeError", error_message="bad id 1").hash
    assert a.hash != fingerprint(None, error_type="ValueError", error_message="no id 1").hash


def test_message_alone_uses_error_message_else_message() -> None:
    a = fingerprint(error_type=None, error_message="Timeout after 30s talking to 10.0.0.7")
    b = fingerprint(error_type=None, message="Timeout after 2.5s talking to 10.1.2.3")
    assert a.method == b.method == "message"
    assert a.components == {
        "method": "message",
        "message": "Timeout after <duration> talking to <ip>",
    }
    assert a.hash == b.hash
    # error_message wins over message
    c = fingerprint(error_type=None, error_message="disk full", message="Timeout after 1s")
    assert c.components["message"] == "disk full"
    # nothing at all still gives a (shared) fingerprint
    assert fingerprint(error_type=None).method == "message"


def test_methods_never_collide() -> None:
    # The method is part of the hashed input: the same text as a message and as a client
    # fingerprint are different keys.
    assert fingerprint(error_type=None, message="x").hash != fingerprint(client=["x"]).hash


def test_client_fingerprint_wins_over_everything() -> None:
    a = fingerprint(TRACE, error_type="KeyError", client=["billing", "prices"])
    b = fingerprint(None, error_type="OtherError", message="other", client=["billing", "prices"])
    assert a.method == "client"
    assert a.components == {"method": "client", "client": ["billing", "prices"]}
    assert a.hash == b.hash
    assert a.hash != fingerprint(TRACE, error_type="KeyError", client=["billing"]).hash
    # Order matters: the list is the key.
    assert a.hash != fingerprint(TRACE, error_type="KeyError", client=["prices", "billing"]).hash


def test_default_placeholder_expands_to_the_default_fingerprint() -> None:
    default = fingerprint(TRACE, error_type="KeyError")
    split = fingerprint(TRACE, error_type="KeyError", client=["{{ default }}", "tenant-a"])
    assert split.method == "client"
    assert split.components["default_hash"] == default.hash
    assert split.components["default"] == default.components
    assert split.hash != default.hash
    assert (
        split.hash
        != fingerprint(TRACE, error_type="KeyError", client=["{{ default }}", "tenant-b"]).hash
    )
    same_default = fingerprint(
        render(PYTHON, root="/opt/x", func="charge", **EVENT_B),
        error_type="KeyError",
        client=["{{default}}", "tenant-a"],
    )
    assert same_default.hash == split.hash
    # Only `{{ default }}` alone expands; text around it is literal.
    literal = fingerprint(TRACE, error_type="KeyError", client=["x {{ default }}"])
    assert "default_hash" not in literal.components


def test_empty_client_fingerprint_means_none() -> None:
    assert fingerprint(TRACE, error_type="KeyError", client=[]).method == "stacktrace"


# --------------------------------------------------------------------------------------------
# Message normalisation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("User 12345 not found", "User <num> not found"),
        ("price -3.75 below zero", "price -<num> below zero"),
        ("order_98123 failed", "order_<num> failed"),
        # Digits glued to letters too: ids like node7 vary, names like md5 stay consistent.
        ("node7 of shard12 down", "node<num> of shard<num> down"),
        ("id 550e8400-E29B-41d4-a716-446655440000 missing", "id <uuid> missing"),
        ("object at 0x7f3a9b2c1d40 is dead", "object at <hex> is dead"),
        ("doc 65f1c2ab9e3d4a0012bc7e91 gone", "doc <hex> gone"),
        ("obj_7f3a9b2c1d4e failed", "obj_<hex> failed"),
        ("md5 d41d8cd98f00b204e9800998ecf8427e", "md<num> <hash>"),
        ("sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709", "sha<num> <hash>"),
        (
            "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha<num> <hash>",
        ),
        ("mail to alice.smith+tag@mail.example.co.uk bounced", "mail to <email> bounced"),
        ("GET https://api.example.com/v1/users/42?x=1. failed", "GET <url>. failed"),
        ("(see http://example.com/a)", "(see <url>)"),
        ("connect to 10.0.0.12:5432 refused", "connect to <ip>:<num> refused"),
        ("peer 2001:db8::8a2e:370:7334 reset", "peer <ip> reset"),
        ("peer fe80::1ff:fe23:4567:890a reset", "peer <ip> reset"),
        ("peer ::ffff:192.0.2.1 reset", "peer <ip> reset"),
        ("nic 00:1a:2b:3c:4d:5e down", "nic <mac> down"),
        ("at 2024-05-01T12:30:45.123Z retry", "at <date> retry"),
        ("at 2024-05-01 12:30:45+02:00 retry", "at <date> retry"),
        ("on 2024-05-01 only", "on <date> only"),
        ("at 09:15:02 exactly", "at <date> exactly"),
        ("took 150ms", "took <duration>"),
        ("took 2.5s then 3 minutes then 1 day", "took <duration> then <duration> then <duration>"),
        ("timeout 30 seconds", "timeout <duration>"),
        ("value 'short' is bad", "value 'short' is bad"),
        ("payload '" + "x" * 80 + "' rejected", "payload '<str>' rejected"),
        ('payload "' + "y z " * 30 + '" rejected', "payload '<str>' rejected"),
        ("can't connect, don't retry", "can't connect, don't retry"),
        ("Foo::Bar and std::vector", "Foo::Bar and std::vector"),
        ("deadbeef cafe decade", "deadbeef cafe decade"),
        ("  lots\tof \n\n whitespace  ", "lots of whitespace"),
        ("", ""),
        ("émigré №5 naïve", "émigré №<num> naïve"),
    ],
)
def test_normalize_message(raw: str, normalised: str) -> None:
    assert normalize_message(raw) == normalised


def test_normalised_messages_are_truncated() -> None:
    long = "error " * 5000
    assert len(normalize_message(long)) <= MAX_NORMALIZED_CHARS
    a = normalize_message("x" * 3000 + " tail one")
    b = normalize_message("x" * 3000 + " tail two")
    assert a == b


def test_pathological_messages_stay_linear() -> None:
    # No timing assertion (DESIGN §9): this only has to finish, which a regex with
    # catastrophic backtracking would not.
    for text in ("a." * 5000, "1" * 10000, "'" * 10000, "a@" * 5000, "f:" * 5000, "x" * 10000):
        assert len(normalize_message(text)) <= MAX_NORMALIZED_CHARS
