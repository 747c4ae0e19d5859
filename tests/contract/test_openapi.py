"""The API does what ``/openapi.json`` says (issue 9): schemathesis over every operation.

A real stack (``ledger serve`` subprocesses on fresh databases and the run's Redis db)
answers a few generated requests per operation, positive and negative, with a fixed seed.
Each answer must be no 5xx, a documented status, a documented content type, a body
that matches its schema; bad input must be refused; a method the document does not list must
be 405 with ``Allow``. Bounded so that it stays well under a minute.
"""

from __future__ import annotations

import os
import re
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import checks

from ledger.config import Settings
from ledger.daemons.gateway.app import create_app
from tests.conftest import create_database, drop_database
from tests.stack import Stack

EXAMPLES_PER_OPERATION = 3
#: The live routes stream until the client leaves: one generated request would never end.
STREAMING = ("/api/v1/logs/tail", "/api/v1/notifications/stream")
CHECKS = [not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.negative_data_rejection, checks.unsupported_method]


@pytest.fixture(scope="module")
def stack(pg_server_url: str, templates: dict[str, str], redis_db_url: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Auth, ingest, query and the gateway, for the whole module, on the run's own Redis db
    (each other test empties it before it starts) and databases of the module's own."""
    names = {db: f"ledger_t{os.getpid()}_contract_{db}" for db in templates}
    urls = {db: create_database(pg_server_url, name, templates[db])
            for db, name in names.items()}
    config = Settings(auth_database_url=urls["auth"], logs_database_url=urls["logs"],
                      redis_url=redis_db_url, internal_token=secrets.token_urlsafe(16),
                      jwt_secret=secrets.token_urlsafe(32), ingest_writers=1)
    try:
        with Stack(config, tmp_path_factory.mktemp("contract")) as running:
            running.start("auth", "ingest", "query", "alerts", "gateway")
            yield running
    finally:
        for name in names.values():
            drop_database(pg_server_url, name)


@pytest.fixture(scope="module")
def credentials(stack: Stack) -> dict[str, str]:
    """An account's access token and a key of its project with every scope."""
    with httpx.Client(base_url=stack.url) as http:
        tokens = http.post("/api/v1/accounts/register", json={
            "email": f"contract-{uuid.uuid4().hex[:8]}@example.com",
            "password": "correct horse battery"}).raise_for_status().json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        http.post("/api/v1/projects", headers=bearer,
                  json={"name": "Contract", "slug": "contract"}).raise_for_status()
        key = http.post("/api/v1/projects/contract/api-keys", headers=bearer, json={
            "scopes": ["ingest", "read", "triage"]}).raise_for_status().json()["full_key"]
    return {"token": tokens["access_token"], "key": key}


def _document() -> dict[str, Any]:
    """The gateway's OpenAPI document, built from its routes (nothing connects)."""
    return create_app(Settings(redis_url="redis://unused", internal_token="unused")).openapi()


# OTLP's protobuf bodies and Sentry's envelopes are bytes like any binary body: sent as
# generated (random bytes are a malformed body, which must be a documented 4xx).
schemathesis.serializer.alias(["application/x-protobuf", "application/x-sentry-envelope"],
                              "application/octet-stream")

#: Positive and negative cases, the coverage phase (boundary values, missing fields, methods
#: the document does not list) and a few fuzzed ones, all from one seed.
CONFIG = schemathesis.Config.from_str(f"""
seed = 20261201
[generation]
mode = "all"
max-examples = {EXAMPLES_PER_OPERATION}
[phases.coverage]
enabled = true
[phases.fuzzing]
enabled = true
""")
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG).exclude(
    path=list(STREAMING))


#: Routes only an account may call; every other one is called with the key.
ACCOUNT_ONLY = ("/api/v1/accounts/me", "/api/v1/projects", "/api/v1/api-keys",
                "/api/v1/notifications/preferences")


@schema.auth(refresh_interval=None)  # per case: the credential depends on the route
class LedgerAuth:
    """Marks which credential a case carries: the account's token on account routes, the
    all-scope key elsewhere.

    Registered as schemathesis auth so that it knows the credentials are the caller's, not
    generated data (their refusals have tests of their own). Cases are built before the
    stack runs, so the header names the credential and the test puts the real one in.
    """

    def get(self, case: Any, ctx: Any) -> str:
        return "token" if case.path.startswith(ACCOUNT_ONLY) else "key"

    def set(self, case: Any, data: str, ctx: Any) -> None:
        headers = {name: value for name, value in (case.headers or {}).items()
                   if name.lower() not in ("x-api-key", "authorization")}
        case.headers = {**headers, "Authorization": data}


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
          database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: Any, stack: Stack,
                                               credentials: dict[str, str]) -> None:
    headers = {name: value for name, value in (case.headers or {}).items()
               if name.lower() != "x-api-key"}
    case.headers = headers
    role = headers.get("Authorization")
    if role in credentials:
        headers["Authorization"] = f"Bearer {credentials[role]}"
    case.call_and_validate(base_url=stack.url, headers=headers, checks=CHECKS, timeout=15)


def test_the_served_document_is_the_one_tested(stack: Stack) -> None:
    assert httpx.get(f"{stack.url}/openapi.json").json() == _document()


def _concrete(path: str) -> str:
    """A path of the document with its parameters filled in (a uuid fits every one)."""
    return re.sub(r"\{[^}]+\}", "01a232ed-0000-7000-8000-000000000000", path)


def _credential(path: str, credentials: dict[str, str]) -> dict[str, str]:
    token = credentials["token"] if path.startswith(ACCOUNT_ONLY) else credentials["key"]
    return {"Authorization": f"Bearer {token}"}


def test_malformed_json_gets_a_documented_status(stack: Stack,
                                                 credentials: dict[str, str]) -> None:
    wrong = []
    with httpx.Client(base_url=stack.url, timeout=15) as http:
        for path, operations in _document()["paths"].items():
            for method, operation in operations.items():
                if "requestBody" not in operation:
                    continue
                response = http.request(method, _concrete(path), content=b'{"not json',
                                        headers={"Content-Type": "application/json",
                                                 **_credential(path, credentials)})
                if str(response.status_code) not in operation["responses"] \
                        or not isinstance(response.json().get("detail"), str):
                    wrong.append((method, path, response.status_code,
                                  sorted(operation["responses"])))
    assert not wrong, wrong


def test_options_and_unlisted_methods_are_405_with_allow(stack: Stack) -> None:
    wrong = []
    with httpx.Client(base_url=stack.url, timeout=15) as http:
        for path, operations in _document()["paths"].items():
            listed = {method.upper() for method in operations}
            for method in ("OPTIONS", *sorted({"GET", "POST", "PUT", "PATCH", "DELETE"}
                                               - listed)):
                response = http.request(method, _concrete(path))
                allowed = {m.strip() for m in response.headers.get("allow", "").split(",")
                           if m.strip()}
                if response.status_code != 405 or not listed <= allowed:
                    wrong.append((method, path, response.status_code, sorted(allowed)))
    assert not wrong, wrong
