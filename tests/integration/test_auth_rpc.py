"""The auth daemon's gRPC API, served in process on port 0 over real PostgreSQL and Redis."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from ledger.config import Settings
from ledger.daemons.auth import AuthDaemon, create
from ledger.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    InvalidInputError,
    MigrationError,
    NotFoundError,
)
from ledger.proto import auth_pb2 as pb
from ledger.rpc import convert
from ledger.rpc.auth_client import AuthClient
from ledger.rpc.interceptors import TOKEN_KEY
from tests.conftest import RUN, create_database, drop_database


@pytest.fixture
async def daemon(settings: Settings) -> AsyncIterator[AuthDaemon]:
    instance = create(settings)
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def client(daemon: AuthDaemon, settings: Settings) -> AsyncIterator[AuthClient]:
    rpc = AuthClient(f"127.0.0.1:{daemon.port}", str(settings.internal_token))
    yield rpc
    await rpc.close()


async def _status_of(client: AuthClient, method: Any, request: Any, token: str | None) -> Any:
    """Call a stub directly (not through the client) and return the gRPC status code."""
    metadata = ((TOKEN_KEY, token),) if token else ()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await method(request, metadata=metadata, timeout=5)
    return caught.value.code()


async def test_health_reports_postgres_and_redis(client: AuthClient) -> None:
    health = await client.check_health()
    assert health.daemon == "auth" and health.healthy
    assert dict(health.checks) == {"postgres": "ok", "redis": "ok"}


async def test_accounts_over_grpc(client: AuthClient) -> None:
    stub = client.stub
    registered = (await client.call(stub.RegisterAccount, pb.RegisterAccountRequest(
        email="Ada@Example.com", password="analytical", name="Ada"))).account
    assert registered.email == "ada@example.com" and registered.created_at
    logged_in = await client.call(stub.LoginAccount, pb.LoginAccountRequest(
        email="ada@example.com", password="analytical"))
    assert logged_in.account == registered
    with pytest.raises(AuthenticationError, match="wrong email or password"):
        await client.call(stub.LoginAccount, pb.LoginAccountRequest(
            email="ada@example.com", password="difference"))
    with pytest.raises(ConflictError):
        await client.call(stub.RegisterAccount, pb.RegisterAccountRequest(
            email="ada@example.com", password="analytical"))

    by_id = await client.call(stub.GetAccount, pb.GetAccountRequest(account_id=registered.id))
    by_email = await client.call(stub.GetAccount, pb.GetAccountRequest(email="ADA@example.com"))
    assert by_id.account == by_email.account == registered
    with pytest.raises(InvalidInputError, match="exactly one"):
        await client.call(stub.GetAccount, pb.GetAccountRequest())
    listed = await client.call(stub.ListAccounts, pb.ListAccountsRequest())
    assert list(listed.accounts) == [registered]

    renamed = await client.call(stub.RenameAccount, pb.RenameAccountRequest(
        account_id=registered.id, name="Countess"))
    assert renamed.account.name == "Countess"
    changed = await client.call(stub.ChangeAccountPassword, pb.ChangeAccountPasswordRequest(
        account_id=registered.id, current_password="analytical", new_password="engine no 2"))
    assert changed.account.id == registered.id
    await client.call(stub.LoginAccount, pb.LoginAccountRequest(
        email="ada@example.com", password="engine no 2"))
    core = convert.account_from_proto(renamed.account)
    assert convert.account_to_proto(core) == renamed.account


async def test_projects_and_keys_over_grpc(client: AuthClient) -> None:
    stub = client.stub
    owner = (await client.call(stub.RegisterAccount, pb.RegisterAccountRequest(
        email="ops@example.com", password="password1"))).account
    project = (await client.call(stub.CreateProject, pb.CreateProjectRequest(
        account_id=owner.id, name="Billing", slug="billing"))).project
    assert (project.slug, project.environment, project.retention_days) == (
        "billing", "production", 90)
    assert convert.project_to_proto(convert.project_from_proto(project)) == project
    mine = await client.call(stub.ListProjects, pb.ListProjectsRequest(account_id=owner.id))
    everyone = await client.call(stub.ListProjects, pb.ListProjectsRequest())
    assert list(mine.projects) == list(everyone.projects) == [project]
    got = await client.call(stub.GetProject, pb.GetProjectRequest(ref="billing"))
    assert got.project == project

    updated = (await client.call(stub.UpdateProject, pb.UpdateProjectRequest(
        ref=project.id, retention_days=14, rate_limit_minute=0))).project
    assert (updated.retention_days, updated.rate_limit_minute) == (14, 0)  # 0 is a real value
    assert (updated.name, updated.daily_quota) == (project.name, project.daily_quota)

    created = await client.call(stub.CreateApiKey, pb.CreateApiKeyRequest(
        project_id=project.id, name="sdk", scopes=["ingest"], rate_limit_hour=10))
    assert created.full_key.startswith(f"ledger_{created.key.key_id}_")
    assert list(created.key.scopes) == ["ingest"]
    assert (created.key.rate_limit_minute, created.key.rate_limit_hour) == (0, 10)
    assert convert.api_key_to_proto(convert.api_key_from_proto(created.key)) == created.key

    validated = (await client.call(stub.ValidateApiKey, pb.ValidateApiKeyRequest(
        full_key=created.full_key))).identity
    identity = convert.identity_from_proto(validated)
    assert identity.project_slug == "billing" and identity.scopes == ("ingest",)
    assert (identity.rate_limit_minute, identity.rate_limit_hour) == (0, 10)
    assert identity.retention_days == 14
    assert convert.identity_to_proto(identity) == validated
    # The second check is answered from the cache: the same identity.
    again = await client.call(stub.ValidateApiKey, pb.ValidateApiKeyRequest(
        full_key=created.full_key))
    assert again.identity == validated

    keys = await client.call(stub.ListApiKeys, pb.ListApiKeysRequest(project_id=project.id))
    assert [k.key_id for k in keys.keys] == [created.key.key_id]
    assert keys.keys[0].last_used_at  # the validation recorded it

    revoked = await client.call(stub.RevokeApiKey, pb.RevokeApiKeyRequest(
        key_id=created.key.key_id, project_id=project.id))
    assert revoked.key.status == "revoked" and revoked.key.revoked_at
    with pytest.raises(AuthenticationError):
        await client.call(stub.ValidateApiKey, pb.ValidateApiKeyRequest(
            full_key=created.full_key))


async def test_errors_map_to_the_right_grpc_status(client: AuthClient, settings: Settings) -> None:
    stub, token = client.stub, str(settings.internal_token)
    owner = (await client.call(stub.RegisterAccount, pb.RegisterAccountRequest(
        email="x@example.com", password="password1"))).account
    await client.call(stub.CreateProject, pb.CreateProjectRequest(
        account_id=owner.id, name="A", slug="a"))
    cases = [
        (stub.CreateProject, pb.CreateProjectRequest(account_id=owner.id, name="A", slug="a"),
         grpc.StatusCode.ALREADY_EXISTS),
        (stub.CreateProject, pb.CreateProjectRequest(account_id=owner.id, name="B", slug="B!"),
         grpc.StatusCode.INVALID_ARGUMENT),
        (stub.CreateProject, pb.CreateProjectRequest(name="B"), grpc.StatusCode.INVALID_ARGUMENT),
        (stub.GetProject, pb.GetProjectRequest(ref="missing"), grpc.StatusCode.NOT_FOUND),
        (stub.ListApiKeys, pb.ListApiKeysRequest(project_id="garbage"),
         grpc.StatusCode.NOT_FOUND),
        (stub.CreateApiKey, pb.CreateApiKeyRequest(project_id="garbage"),
         grpc.StatusCode.NOT_FOUND),
        (stub.RevokeApiKey, pb.RevokeApiKeyRequest(key_id="abcdef234567"),
         grpc.StatusCode.NOT_FOUND),
        (stub.ValidateApiKey, pb.ValidateApiKeyRequest(full_key="junk"),
         grpc.StatusCode.UNAUTHENTICATED),
        (stub.ValidateApiKey,
         pb.ValidateApiKeyRequest(full_key="ledger_abcdef234567_" + "a" * 52),
         grpc.StatusCode.UNAUTHENTICATED),
        (stub.RegisterAccount, pb.RegisterAccountRequest(email="y@example.com", password="1"),
         grpc.StatusCode.INVALID_ARGUMENT),
        (stub.GetAccount, pb.GetAccountRequest(account_id="nope"), grpc.StatusCode.NOT_FOUND),
    ]
    for method, request, expected in cases:
        assert await _status_of(client, method, request, token) == expected, request
    # And the client rebuilds the server's error class.
    with pytest.raises(NotFoundError, match="no project 'missing'"):
        await client.call(stub.GetProject, pb.GetProjectRequest(ref="missing"))


async def test_a_call_without_the_internal_token_is_unauthenticated(
    client: AuthClient, settings: Settings
) -> None:
    request = pb.ListProjectsRequest()
    assert await _status_of(client, client.stub.ListProjects, request, None) == \
        grpc.StatusCode.UNAUTHENTICATED
    assert await _status_of(client, client.stub.ListProjects, request, "wrong-token") == \
        grpc.StatusCode.UNAUTHENTICATED


async def test_start_refuses_without_token_or_with_pending_migrations(
    settings: Settings, pg_server_url: str
) -> None:
    with pytest.raises(ConfigError, match="LEDGER_INTERNAL_TOKEN"):
        await create(dataclasses.replace(settings, internal_token=None)).start()
    name = f"ledger_{RUN}_auth_unmigrated"
    url = create_database(pg_server_url, name)
    try:
        with pytest.raises(MigrationError, match="ledger db migrate"):
            await create(settings.with_overrides(auth_database_url=url)).start()
    finally:
        drop_database(pg_server_url, name)
