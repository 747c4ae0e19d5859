-- Auth database: accounts, sessions, projects, API keys, notification preferences.

CREATE TABLE accounts (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    name          text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Emails compare case-insensitively: Bob@x.io and bob@x.io are one account.
CREATE UNIQUE INDEX accounts_email_key ON accounts (lower(email));

CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- SHA-256 of the token: a leaked table cannot be replayed.
    token_hash  text NOT NULL UNIQUE,
    -- Rotation keeps a family: reuse of a rotated token revokes the whole family.
    family_id   uuid NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_account ON refresh_tokens (account_id);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE projects (
    id                uuid PRIMARY KEY,
    account_id        uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name              text NOT NULL,
    slug              text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9-]+$' AND length(slug) <= 64),
    environment       text NOT NULL DEFAULT 'production',
    retention_days    integer NOT NULL DEFAULT 90 CHECK (retention_days > 0),
    daily_quota       bigint NOT NULL DEFAULT 1000000 CHECK (daily_quota >= 0),
    rate_limit_minute integer NOT NULL DEFAULT 1000 CHECK (rate_limit_minute >= 0),
    rate_limit_hour   integer NOT NULL DEFAULT 50000 CHECK (rate_limit_hour >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_account ON projects (account_id);

CREATE TABLE api_keys (
    id                uuid PRIMARY KEY,
    -- The public part of ledger_<key_id>_<secret>: looked up in O(1) before any bcrypt.
    key_id            text NOT NULL UNIQUE,
    project_id        uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name              text NOT NULL DEFAULT '',
    secret_hash       text NOT NULL,
    key_prefix        text NOT NULL,
    scopes            text[] NOT NULL DEFAULT ARRAY['ingest', 'read'],
    rate_limit_minute integer CHECK (rate_limit_minute >= 0),
    rate_limit_hour   integer CHECK (rate_limit_hour >= 0),
    status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    revoked_at        timestamptz,
    last_used_at      timestamptz,
    CHECK (scopes <@ ARRAY['ingest', 'read'] AND cardinality(scopes) > 0)
);
CREATE INDEX api_keys_project ON api_keys (project_id);

CREATE TABLE notification_preferences (
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    enabled     boolean NOT NULL DEFAULT true,
    levels      text[] NOT NULL DEFAULT ARRAY['error', 'critical'],
    log_types   text[],
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, project_id)
);
