"""A FastAPI app with the SDK's FastAPI integration; one failing request. argv: DSN."""

from __future__ import annotations

import sys

import sentry_sdk
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.sentry_python.shop import load_price


def main(dsn: str) -> None:
    sentry_sdk.init(dsn=dsn, release="api@2.0.0", environment="production",
                    send_default_pii=True)
    app = FastAPI()

    @app.get("/prices/{sku}")
    def price(sku: str) -> dict[str, float]:
        sentry_sdk.set_tag("endpoint", "prices")
        sentry_sdk.set_user({"id": "u-7"})
        return {"price": load_price(sku)}

    client = TestClient(app, raise_server_exceptions=False)
    answer = client.get("/prices/sku-1?currency=eur",
                        headers={"Authorization": "Bearer secret-token",
                                 "Cookie": "session=hunter2", "X-Request-Id": "r-1"})
    print(answer.status_code)
    sentry_sdk.flush(10)


if __name__ == "__main__":
    main(sys.argv[1])
