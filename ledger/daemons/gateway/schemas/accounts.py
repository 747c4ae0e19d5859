"""Bodies of the account, project and API-key routes (parsed by FastAPI, listed in OpenAPI)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ledger.core.projects import MAX_INT4, MAX_INT8, MAX_RETENTION_DAYS


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000: refuse it here, naming the field, not as a 500 there.
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000) characters")
    return value


#: A string a request may carry into the auth database.
Text = Annotated[str, AfterValidator(_no_nul)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Body):
    email: Text = Field(max_length=320, examples=["ada@example.com"])
    password: Text = Field(description="At least 8 characters (bcrypt reads at most 72 bytes).")
    name: Text = Field("", max_length=200)


class LoginRequest(_Body):
    email: Text = Field(max_length=320)
    password: Text


class RefreshRequest(_Body):
    refresh_token: Text = Field(max_length=200)


class RenameRequest(_Body):
    name: Text = Field(max_length=200)


class PasswordChangeRequest(_Body):
    current_password: Text
    new_password: Text


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
    name: Text = Field(min_length=1, max_length=200)
    slug: Text | None = Field(None, pattern="^[a-z0-9-]+$", max_length=64,
                             description="Derived from the name when omitted.")
    environment: Text = Field("production", max_length=20)


class ProjectPatch(_Body):
    """Fields left out are unchanged."""

    name: Text | None = Field(None, min_length=1, max_length=200)
    environment: Text | None = Field(None, max_length=20)
    retention_days: int | None = Field(None, ge=1, le=MAX_RETENTION_DAYS)
    daily_quota: int | None = Field(None, ge=0, le=MAX_INT8)
    rate_limit_minute: int | None = Field(None, ge=0, le=MAX_INT4)
    rate_limit_hour: int | None = Field(None, ge=0, le=MAX_INT4)


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
    name: Text = Field("", max_length=200)
    scopes: list[Text] = Field(default_factory=lambda: ["ingest", "read"],
                              json_schema_extra={"items": {"enum": ["ingest", "read", "triage"]}},
                              description="An application should ship an ingest-only key;"
                                          " triage changes error groups' status.")
    rate_limit_minute: int | None = Field(None, ge=1, le=MAX_INT4)
    rate_limit_hour: int | None = Field(None, ge=1, le=MAX_INT4)


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
