"""Python errors: FastAPI/Django/Celery shapes, chains, groups, message-only logs."""

from tests.grouping_corpus.model import Cluster, variants

_FASTAPI = """\
Traceback (most recent call last):
  File "{site}/starlette/routing.py", line {s1}, in app
    response = await func(request)
  File "{site}/fastapi/routing.py", line {s2}, in app
    raw_response = await run_endpoint_function(
  File "{root}/api/orders.py", line {l1}, in create_order
    invoice = await billing.{func}(order)
  File "{root}/services/billing.py", line {l2}, in {func}
    price = PRICES[order.sku]
KeyError: 'sku-{id}'
"""

_PREFIXES = [
    {"root": "/srv/app", "site": "/srv/app/.venv/lib/python3.11/site-packages"},
    {"root": "/home/deploy/releases/20240501T1200", "site":
     "/home/deploy/.local/lib/python3.12/site-packages"},
    {"root": "/app", "site": "/usr/local/lib/python3.12/site-packages"},
]
_EVENTS = [{"l1": 42, "l2": 17, "s1": 74, "s2": 278, "id": 1001},
           {"l1": 58, "l2": 23, "s1": 76, "s2": 301, "id": 98231},
           {"l1": 61, "l2": 25, "s1": 76, "s2": 301, "id": 7}]

_VIEWS = """\
Traceback (most recent call last):
  File "{site}/django/core/handlers/exception.py", line {s1}, in inner
    response = get_response(request)
  File "{site}/django/views/generic/base.py", line {s2}, in view
    return self.dispatch(request, *args, **kwargs)
  File "{root}/{package}/views.py", line {l1}, in post
    serializer.is_valid(raise_exception=True)
  File "{site}/rest_framework/serializers.py", line 235, in is_valid
    raise ValidationError(self.errors)
rest_framework.exceptions.ValidationError: {{'email': ['user {id} exists']}}
"""

_DURING = """\
Traceback (most recent call last):
  File "{root}/cache.py", line {l1}, in get
    return self._data[key]
KeyError: '{module}:{id}'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "{root}/{module}.py", line {l2}, in {func}
    return int(cache.get(key)) * rate
  File "{root}/cache.py", line {l3}, in get
    raise TypeError(f"cache miss for {{key}}")
TypeError: cache miss for {module}:{id}
"""

_RAISE_FROM = """\
Traceback (most recent call last):
  File "{root}/clients/payments.py", line {l1}, in capture
    response = self.session.post(url, json=payload, timeout=5)
  File "{site}/requests/sessions.py", line 637, in post
    return self.request("POST", url, data=data, json=json, **kwargs)
  File "{site}/requests/adapters.py", line {s1}, in send
    raise ConnectionError(e, request=request)
requests.exceptions.ConnectionError: HTTPSConnectionPool(host='pay{id}.example.com', port=443)

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "{root}/api/checkout.py", line {l2}, in {func}
    receipt = payments.capture(order)
  File "{root}/clients/payments.py", line {l3}, in capture
    raise PaymentUnavailable("payment provider unreachable") from exc
app.errors.PaymentUnavailable: payment provider unreachable
"""

_GROUP = """\
  + Exception Group Traceback (most recent call last):
  |   File "{root}/jobs/sync.py", line {l1}, in run_all
  |     async with asyncio.TaskGroup() as tg:
  |   File "/usr/lib/python3.12/asyncio/taskgroups.py", line 145, in __aexit__
  |     raise me from None
  | ExceptionGroup: unhandled errors in a TaskGroup (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | Traceback (most recent call last):
    |   File "{root}/jobs/sync.py", line {l2}, in {first}
    |     raise {first_exc}
    | {first_line}
    +---------------- 2 ----------------
    | Traceback (most recent call last):
    |   File "{root}/jobs/sync.py", line {l3}, in {second}
    |     raise {second_exc}
    | {second_line}
    +------------------------------------
"""
_USER = {"func": "sync_user", "exc": "ValueError(...)", "line": "ValueError: user {id} invalid"}
_ORDER = {"func": "sync_order", "exc": "KeyError(order_id)", "line": "KeyError: {id}"}
_INVOICE = {"func": "sync_invoice", "exc": "KeyError(invoice_id)", "line": "KeyError: {id}"}


def _group(a: dict[str, str], b: dict[str, str]) -> dict[str, str]:
    return {"first": a["func"], "first_exc": a["exc"], "first_line": a["line"],
            "second": b["func"], "second_exc": b["exc"], "second_line": b["line"]}


_NO_TYPE = """\
Traceback (most recent call last):
  File "{root}/worker/tasks.py", line {l1}, in process_order
    total = compute_total(order)
  File "{root}/worker/pricing.py", line {l2}, in compute_total
    return prices[order["sku"]] + order["tax"]
{line}
"""

_PSYCOPG = """\
Traceback (most recent call last):
  File "{root}/repo/accounts.py", line {l1}, in {func}
    cur.execute(SQL, params)
  File "{site}/psycopg/cursor.py", line {s1}, in execute
    raise ex.with_traceback(None)
psycopg.errors.{exc}: {text}
"""

CLUSTERS = [
    Cluster("py-billing-charge", "python", _FASTAPI, "KeyError",
            variants(_PREFIXES, _EVENTS, func="charge")
            # The same error logged by `logger.exception(...)`: the log line comes first.
            + variants(_PREFIXES[:2], _EVENTS[1:], func="charge",
                       template="ERROR:app.api:order {id} failed\n" + _FASTAPI)),
    Cluster("py-billing-refund", "python", _FASTAPI, "KeyError",
            variants(_PREFIXES, _EVENTS, func="refund")),
    Cluster("py-users-views-post", "python", _VIEWS, "ValidationError",
            variants(_PREFIXES, _EVENTS, package="users")),
    Cluster("py-orders-views-post", "python", _VIEWS, "ValidationError",
            variants(_PREFIXES, _EVENTS, package="orders")),
    Cluster("py-pricing-during-cache", "python", _DURING, "TypeError",
            variants(_PREFIXES, _EVENTS, module="pricing", func="load_price", l3=14)),
    Cluster("py-inventory-during-cache", "python", _DURING, "TypeError",
            variants(_PREFIXES, _EVENTS, module="inventory", func="load_stock", l3=14)),
    Cluster("py-checkout-payment-unavailable", "python", _RAISE_FROM, "PaymentUnavailable",
            variants(_PREFIXES, _EVENTS, func="checkout", l3=33)),
    Cluster("py-express-payment-unavailable", "python", _RAISE_FROM, "PaymentUnavailable",
            variants(_PREFIXES, _EVENTS, func="express_checkout", l3=33)),
    Cluster("py-taskgroup-user-order", "python", _GROUP, "ExceptionGroup",
            variants(_PREFIXES[:2], _EVENTS[:2], l3=30, **_group(_USER, _ORDER))
            + variants(_PREFIXES[2:], _EVENTS[2:], l3=30, **_group(_ORDER, _USER))),
    Cluster("py-taskgroup-user-invoice", "python", _GROUP, "ExceptionGroup",
            variants(_PREFIXES, _EVENTS[:1], l3=30, **_group(_INVOICE, _USER))),
    Cluster("py-untyped-keyerror", "python", _NO_TYPE, None,
            variants(_PREFIXES, _EVENTS, line="KeyError: 'sku-{id}'")),
    Cluster("py-untyped-typeerror", "python", _NO_TYPE, None,
            variants(_PREFIXES, _EVENTS,
                     line="TypeError: unsupported operand type(s) for +: 'int' and 'str'")),
    Cluster("py-serialization-failure", "python", _PSYCOPG, "SerializationFailure",
            variants(_PREFIXES, _EVENTS, func="transfer", exc="SerializationFailure",
                     text="could not serialize access due to concurrent update")),
    Cluster("py-unique-violation", "python", _PSYCOPG, "UniqueViolation",
            variants(_PREFIXES, _EVENTS, func="transfer", exc="UniqueViolation",
                     text='duplicate key value violates unique constraint "accounts_pkey"')),
    Cluster("msg-oom-killed", "python", None, None, [
        {"message": "worker pod billing-7f9c4d-x2k8p exited: exit status 137"},
        {"message": "worker pod billing-5b2a11-q9zzt exited: exit status 137"},
        {"message": "worker pod billing-0c3e5f-mm1aa exited: exit status 137"},
    ]),
    Cluster("msg-exit-1", "python", None, None, [
        {"message": "worker pod billing-7f9c4d-x2k8p exited: exit status 1"},
        {"message": "worker pod billing-1d2e3f-abc12 exited: exit status 1"},
    ]),
    Cluster("msg-sqlstate-40001", "python", None, None, [
        {"message": "transaction 88123 aborted (SQLSTATE 40001) after 3 retries"},
        {"message": "transaction 90017 aborted (SQLSTATE 40001) after 5 retries"},
    ]),
    Cluster("msg-sqlstate-23505", "python", None, None, [
        {"message": "transaction 88123 aborted (SQLSTATE 23505) after 3 retries"},
        {"message": "transaction 12 aborted (SQLSTATE 23505) after 1 retries"},
    ]),
]
