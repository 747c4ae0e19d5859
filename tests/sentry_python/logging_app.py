"""The SDK's logging integration: an error record and a logger.exception. argv: DSN."""

from __future__ import annotations

import logging
import sys

import sentry_sdk

from tests.sentry_python.shop import load_price


def main(dsn: str) -> None:
    sentry_sdk.init(dsn=dsn, release="worker@0.9.1", environment="staging")
    sentry_sdk.set_tag("queue", "payments")
    sentry_sdk.set_user({"id": "worker-3"})
    logging.basicConfig(level=logging.INFO)
    logger = logging.getLogger("payments")
    logger.info("starting")  # a breadcrumb, not an event
    logger.error("payment %s failed with code %d", "p-17", 402)
    try:
        load_price("sku-3")
    except TypeError:
        logger.exception("pricing failed")
    sentry_sdk.flush(10)


if __name__ == "__main__":
    main(sys.argv[1])
