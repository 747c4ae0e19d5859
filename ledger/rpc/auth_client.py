"""``AuthClient``: the auth daemon's RPCs as methods on core models."""

from __future__ import annotations

from ledger.core.accounts import Account
from ledger.core.api_keys import ApiKeyRow, KeyIdentity
from ledger.core.notification_prefs import NotificationPreference
from ledger.core.projects import Project
from ledger.core.rpc_models import CreatedApiKey, IssuedSession
from ledger.proto import auth_pb2, auth_pb2_grpc
from ledger.rpc import convert
from ledger.rpc.channel import DaemonClient


class AuthClient(DaemonClient):
    """Keys, projects, accounts, sessions and notification preferences (the auth daemon)."""

    target = "auth"
    stub_type = auth_pb2_grpc.AuthServiceStub

    # -- API keys ----------------------------------------------------------------------------

    async def validate_api_key(self, full_key: str, *,
                               timeout: float | None = None) -> KeyIdentity:
        """The identity of a valid, active key (``AuthenticationError`` otherwise)."""
        answer = await self.call(self.stub.ValidateApiKey,
                                 auth_pb2.ValidateApiKeyRequest(full_key=full_key),
                                 timeout=timeout)
        return convert.identity_from_proto(answer.identity)

    async def create_api_key(self, project_id: str, name: str, scopes: list[str], *,
                             rate_limit_minute: int | None = None,
                             rate_limit_hour: int | None = None) -> CreatedApiKey:
        """A new key of the project (``None`` limits follow the project's)."""
        answer = await self.call(self.stub.CreateApiKey, auth_pb2.CreateApiKeyRequest(
            project_id=project_id, name=name, scopes=scopes,
            rate_limit_minute=rate_limit_minute or 0, rate_limit_hour=rate_limit_hour or 0))
        return convert.created_key_from_proto(answer)

    async def list_api_keys(self, project_id: str) -> list[ApiKeyRow]:
        """The project's keys, active and revoked."""
        answer = await self.call(self.stub.ListApiKeys,
                                 auth_pb2.ListApiKeysRequest(project_id=project_id))
        return [convert.api_key_from_proto(k) for k in answer.keys]

    async def revoke_api_key(self, key_id: str, *, project_id: str = "",
                             account_id: str = "") -> ApiKeyRow:
        """Revoke a key, scoped to a project or to an account's projects when given."""
        answer = await self.call(self.stub.RevokeApiKey, auth_pb2.RevokeApiKeyRequest(
            key_id=key_id, project_id=project_id, account_id=account_id))
        return convert.api_key_from_proto(answer.key)

    # -- projects ----------------------------------------------------------------------------

    async def create_project(self, account_id: str, name: str, *, slug: str = "",
                             environment: str) -> Project:
        """A new project owned by the account ("" slug: derived from the name)."""
        answer = await self.call(self.stub.CreateProject, auth_pb2.CreateProjectRequest(
            account_id=account_id, name=name, slug=slug, environment=environment))
        return convert.project_from_proto(answer.project)

    async def list_projects(self, account_id: str = "") -> list[Project]:
        """The account's projects ("" = every project, for the daemons)."""
        answer = await self.call(self.stub.ListProjects,
                                 auth_pb2.ListProjectsRequest(account_id=account_id))
        return [convert.project_from_proto(p) for p in answer.projects]

    async def get_project(self, ref: str) -> Project:
        """A project by id or slug."""
        answer = await self.call(self.stub.GetProject, auth_pb2.GetProjectRequest(ref=ref))
        return convert.project_from_proto(answer.project)

    async def update_project(self, ref: str, *, name: str | None = None,
                             environment: str | None = None, retention_days: int | None = None,
                             daily_quota: int | None = None,
                             rate_limit_minute: int | None = None,
                             rate_limit_hour: int | None = None) -> Project:
        """Change the fields given (``None`` = unchanged)."""
        changes = {"name": name, "environment": environment, "retention_days": retention_days,
                   "daily_quota": daily_quota, "rate_limit_minute": rate_limit_minute,
                   "rate_limit_hour": rate_limit_hour}
        request = auth_pb2.UpdateProjectRequest(
            ref=ref, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]
        answer = await self.call(self.stub.UpdateProject, request)
        return convert.project_from_proto(answer.project)

    # -- accounts ----------------------------------------------------------------------------

    async def register_account(self, email: str, password: str, name: str) -> Account:
        """A new account."""
        answer = await self.call(self.stub.RegisterAccount, auth_pb2.RegisterAccountRequest(
            email=email, password=password, name=name))
        return convert.account_from_proto(answer.account)

    async def login_account(self, email: str, password: str) -> Account:
        """The account whose password this is (``AuthenticationError`` otherwise)."""
        answer = await self.call(self.stub.LoginAccount,
                                 auth_pb2.LoginAccountRequest(email=email, password=password))
        return convert.account_from_proto(answer.account)

    async def get_account(self, account_id: str) -> Account:
        """An account by id."""
        answer = await self.call(self.stub.GetAccount,
                                 auth_pb2.GetAccountRequest(account_id=account_id))
        return convert.account_from_proto(answer.account)

    async def rename_account(self, account_id: str, name: str) -> Account:
        """Change the account's display name."""
        answer = await self.call(self.stub.RenameAccount,
                                 auth_pb2.RenameAccountRequest(account_id=account_id, name=name))
        return convert.account_from_proto(answer.account)

    async def change_account_password(self, account_id: str, current_password: str,
                                      new_password: str) -> None:
        """Change the password (``AuthenticationError`` when the current one is wrong)."""
        await self.call(self.stub.ChangeAccountPassword, auth_pb2.ChangeAccountPasswordRequest(
            account_id=account_id, current_password=current_password,
            new_password=new_password))

    # -- sessions ----------------------------------------------------------------------------

    async def create_session(self, account_id: str) -> IssuedSession:
        """A new session of an account that just proved its password."""
        answer = await self.call(self.stub.CreateSession,
                                 auth_pb2.CreateSessionRequest(account_id=account_id))
        return convert.session_from_proto(answer.session)

    async def refresh_session(self, refresh_token: str) -> IssuedSession:
        """The session rotated: the token is spent, a new one issued."""
        answer = await self.call(self.stub.RefreshSession,
                                 auth_pb2.RefreshSessionRequest(refresh_token=refresh_token))
        return convert.session_from_proto(answer.session)

    async def revoke_session(self, refresh_token: str) -> None:
        """End the session of this refresh token."""
        await self.call(self.stub.RevokeSession,
                        auth_pb2.RevokeSessionRequest(refresh_token=refresh_token))

    async def revoke_account_sessions(self, account_id: str, *,
                                      keep_session_id: str = "") -> int:
        """End every session of the account but ``keep_session_id``; how many ended."""
        answer = await self.call(self.stub.RevokeAccountSessions,
                                 auth_pb2.RevokeAccountSessionsRequest(
                                     account_id=account_id, keep_session_id=keep_session_id))
        revoked: int = answer.revoked
        return revoked

    # -- notification preferences ------------------------------------------------------------

    async def get_notification_preferences(self,
                                           account_id: str) -> list[NotificationPreference]:
        """The account's preference for each of its projects (defaults where none is stored)."""
        answer = await self.call(self.stub.GetNotificationPreferences,
                                 auth_pb2.GetNotificationPreferencesRequest(account_id=account_id))
        return [convert.preference_from_proto(p) for p in answer.preferences]

    async def set_notification_preferences(
        self, account_id: str, preferences: list[NotificationPreference],
    ) -> list[NotificationPreference]:
        """Store the preferences given; the account's preferences afterwards."""
        answer = await self.call(
            self.stub.SetNotificationPreferences,
            auth_pb2.SetNotificationPreferencesRequest(
                account_id=account_id,
                preferences=[convert.preference_to_proto(p) for p in preferences]))
        return [convert.preference_from_proto(p) for p in answer.preferences]
