"""`ledger serve auth` as a real subprocess: serves, revokes, stops on SIGTERM, fails clearly."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
from pathlib import Path

import pytest

from ledger.config import Settings
from ledger.errors import AuthenticationError
from ledger.proto import auth_pb2 as pb
from ledger.rpc.auth_client import AuthClient
from tests.stack import LEDGER, Stack

pytestmark = pytest.mark.e2e


async def test_serve_auth_create_validate_revoke_then_sigterm(
    settings: Settings, tmp_path: Path
) -> None:
    with Stack(settings, tmp_path / "stack") as stack:
        stack.start("auth")
        client = AuthClient(f"127.0.0.1:{stack.ports['auth']}",
                            str(stack.settings.internal_token))
        try:
            auth = client.stub
            owner = (await client.call(auth.RegisterAccount, pb.RegisterAccountRequest(
                email="e2e@example.com", password="password1"))).account
            project = (await client.call(auth.CreateProject, pb.CreateProjectRequest(
                account_id=owner.id, name="E2E", slug="e2e"))).project
            created = await client.call(auth.CreateApiKey, pb.CreateApiKeyRequest(
                project_id=project.id))
            validate = pb.ValidateApiKeyRequest(full_key=created.full_key)
            identity = (await client.call(auth.ValidateApiKey, validate)).identity
            assert (identity.project_id, identity.key_id) == (project.id, created.key.key_id)
            await client.call(auth.RevokeApiKey, pb.RevokeApiKeyRequest(
                key_id=created.key.key_id))
            with pytest.raises(AuthenticationError):
                await client.call(auth.ValidateApiKey, validate)
        finally:
            await client.close()

        # SIGTERM: the daemon exits by itself, cleanly (``stop`` fails if it has to be killed).
        assert stack.stop("auth") == 0, stack.daemons["auth"].log_tail()


def test_serve_auth_refuses_to_start_with_one_clear_line(
    settings: Settings, tmp_path: Path
) -> None:
    busy = socket.create_server(("127.0.0.1", 0))  # held until the test ends
    port = busy.getsockname()[1]
    cases = {
        "LEDGER_INTERNAL_TOKEN is not set": dataclasses.replace(settings, internal_token=None),
        "cannot connect to PostgreSQL": settings.with_overrides(
            auth_database_url="postgresql://ledger@127.0.0.1:1/ledger"),
        # One line, and not gRPC's C-core "Failed to add port" before it.
        f"cannot listen on 127.0.0.1:{port} for auth: the port is in use": settings.with_overrides(
            auth_listen=f"127.0.0.1:{port}"),
    }
    procs = {
        expected: subprocess.Popen([*LEDGER, "serve", "auth"], env=broken.child_environ(),
                                   cwd=tmp_path, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for expected, broken in cases.items()
    }
    for expected, proc in procs.items():
        output, _ = proc.communicate(timeout=30)
        text = output.decode()
        lines = [line for line in text.splitlines() if line.strip()]
        assert proc.returncode != 0, text
        assert len(lines) == 1 and expected in lines[0], text
        assert lines[0].startswith("error: ") and "Traceback" not in text
    busy.close()
