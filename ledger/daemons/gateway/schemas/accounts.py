"""Bodies of the account, project and API-key routes (parsed by FastAPI, listed in OpenAPI)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Body):
    email: str = Field(max_length=320, examples=["ada@example.com"])
    password: str = Field(description="At least 8 characters (bcrypt reads at most 72 bytes).")
    name: str = Field("", max_length=200)


class LoginRequest(_Body):
    email: str = Field(max_length=320)
    password: str


class RefreshRequest(_Body):
    refresh_token: str = Field(max_length=200)


class RenameRequest(_Body):
    name: str = Field(max_length=200)


class PasswordChangeRequest(_Body):
    current_password: str
    new_password: str


class AccountOut(BaseModel):
    id: str
    email: str
    name: str
    created_at: str | None
    updated_at: str | None


class TokenResponse(BaseModel):
    """A session: use ``access_token`` as ``Authorization: Bearer``; refresh before it expires."""

    access_token: str
    token_type: str = Field("bearer", description="Always bearer.")
    expires_in: int = Field(description="Seconds the access token is valid (15 min).")
    access_expires_at: str
    refresh_token: str = Field(description="Single use: each refresh returns a new one.")
    refresh_expires_at: str
    account: AccountOut


class ProjectCreate(_Body):
    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Field(None, pattern="^[a-z0-9-]+$", max_length=64,
                             description="Derived from the name when omitted.")
    environment: str = Field("production", max_length=20)


class ProjectPatch(_Body):
    """Fields left out are unchanged."""

    name: str | None = Field(None, min_length=1, max_length=200)
    environment: str | None = Field(None, max_length=20)
    retention_days: int | None = Field(None, ge=1)
    daily_quota: int | None = Field(None, ge=0)
    rate_limit_minute: int | None = Field(None, ge=0)
    rate_limit_hour: int | None = Field(None, ge=0)


class ProjectOut(BaseModel):
    id: str
    account_id: str
    name: str
    slug: str
    environment: str
    retention_days: int
    daily_quota: int
    rate_limit_minute: int
    rate_limit_hour: int
    created_at: str | None
    updated_at: str | None
    dsn_id: int = Field(description="The project's number in Sentry DSNs.")


class ProjectList(BaseModel):
    projects: list[ProjectOut]


class QuotaOut(BaseModel):
    project_id: str
    daily_quota: int
    used_today: int
    remaining_today: int
    resets_at: str = Field(description="Next midnight UTC.")


class ApiKeyCreate(_Body):
    name: str = Field("", max_length=200)
    scopes: list[str] = Field(default_factory=lambda: ["ingest", "read"],
                              json_schema_extra={"items": {"enum": ["ingest", "read"]}},
                              description="An application should ship an ingest-only key.")
    rate_limit_minute: int | None = Field(None, ge=1)
    rate_limit_hour: int | None = Field(None, ge=1)


class ApiKeyOut(BaseModel):
    id: str
    key_id: str
    project_id: str
    name: str
    key_prefix: str
    scopes: list[str]
    status: str
    rate_limit_minute: int | None
    rate_limit_hour: int | None
    created_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class ApiKeyCreated(BaseModel):
    key_id: str
    full_key: str = Field(description="Shown once: store it now.")
    key_prefix: str
    warning: str
    key: ApiKeyOut
    dsn: str = Field(description="Sentry DSN with this key: `http://<key>@<host>/<dsn_id>`.")


class ApiKeyList(BaseModel):
    api_keys: list[ApiKeyOut]
