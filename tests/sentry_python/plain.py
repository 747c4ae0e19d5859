"""A plain script: capture_exception and capture_message. argv: DSN. Prints the event ids."""

from __future__ import annotations

import sys

import sentry_sdk

from tests.sentry_python.shop import load_price


def main(dsn: str) -> None:
    sentry_sdk.init(dsn=dsn, release="shop@1.2.3", environment="staging",
                    server_name="web-1", send_default_pii=True)
    sentry_sdk.set_tag("region", "eu-west")
    sentry_sdk.set_user({"id": "42", "email": "ada@example.com", "ip_address": "198.51.100.4"})
    sentry_sdk.add_breadcrumb(category="cart", message="added sku-9", level="info")
    try:
        load_price("sku-9")
    except TypeError:
        print(sentry_sdk.capture_exception())
    print(sentry_sdk.capture_message("stock is low", level="warning"))
    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = ["{{ default }}", "pricing"]
        try:
            load_price("sku-10")
        except TypeError:
            print(sentry_sdk.capture_exception())
    sentry_sdk.flush(10)


if __name__ == "__main__":
    main(sys.argv[1])
