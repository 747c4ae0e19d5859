-- Alerts (DESIGN §11): channels, rules, the alerts that fired (history), the delivery outbox and
-- every delivery attempt. They live beside error_groups because the evaluator reads both.

CREATE TABLE alert_channels (
    id          uuid PRIMARY KEY,
    project_id  uuid NOT NULL,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('webhook', 'slack', 'email')),
    -- Everything but the secret: url, or SMTP host/port/security/username/from/to.
    config      jsonb NOT NULL,
    -- Webhook signing secret or SMTP password: used to send, never returned.
    secret      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

CREATE TABLE alert_rules (
    id               uuid PRIMARY KEY,
    project_id       uuid NOT NULL,
    name             text NOT NULL,
    kind             text NOT NULL CHECK (kind IN
                     ('new_group', 'regression', 'group_frequency', 'error_rate', 'no_logs')),
    threshold        double precision,
    window_minutes   integer,
    -- {"environment": [...], "level": [...], "log_type": [...], "release": [...]}
    filters          jsonb NOT NULL DEFAULT '{}',
    cooldown_seconds integer NOT NULL,
    channel_ids      uuid[] NOT NULL,
    enabled          boolean NOT NULL DEFAULT true,
    snoozed_until    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);
CREATE INDEX alert_rules_enabled ON alert_rules (project_id) WHERE enabled;

-- Groups snoozed by hand: their alerts are recorded, not sent, until snoozed_until.
CREATE TABLE alert_group_snoozes (
    project_id    uuid NOT NULL,
    fingerprint   text NOT NULL,
    group_id      uuid NOT NULL,
    snoozed_until timestamptz NOT NULL,
    PRIMARY KEY (project_id, fingerprint)
);

-- Fingerprints the evaluator has seen: the first sight of one not already in error_groups is
-- a new group. Written in the same transaction as the alerts, so a replay never re-fires.
CREATE TABLE alert_known_groups (
    project_id  uuid NOT NULL,
    fingerprint text NOT NULL,
    PRIMARY KEY (project_id, fingerprint)
);

-- One row per rule and subject (a fingerprint, or the project): when it last fired.
CREATE TABLE alert_cooldowns (
    rule_id       uuid NOT NULL,
    subject       text NOT NULL,
    last_fired_at timestamptz NOT NULL,
    PRIMARY KEY (rule_id, subject)
);

-- Resolved groups reopened (by a writer's regression rule, or by hand): the evaluator may read
-- a notification after the writer already reopened the group, and would not see it resolved.
CREATE TABLE error_group_regressions (
    project_id   uuid NOT NULL,
    fingerprint  text NOT NULL,
    resolved_at  timestamptz NOT NULL,
    regressed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, fingerprint, resolved_at)
);
CREATE INDEX error_group_regressions_recent ON error_group_regressions (regressed_at);

CREATE FUNCTION ledger_record_regression() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'resolved' AND NEW.status = 'unresolved' AND OLD.resolved_at IS NOT NULL THEN
        INSERT INTO error_group_regressions (project_id, fingerprint, resolved_at)
        VALUES (NEW.project_id, NEW.fingerprint, OLD.resolved_at)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER error_groups_record_regression
AFTER UPDATE OF status ON error_groups
FOR EACH ROW EXECUTE FUNCTION ledger_record_regression();

-- History: every alert that fired, sent or snoozed.
CREATE TABLE alerts (
    id              uuid PRIMARY KEY,
    project_id      uuid NOT NULL,
    rule_id         uuid NOT NULL,
    rule_name       text NOT NULL,
    kind            text NOT NULL,
    subject         text NOT NULL,
    -- Deterministic per (rule, what happened): a replayed evaluation inserts nothing.
    idempotency_key text NOT NULL UNIQUE,
    snoozed         boolean NOT NULL DEFAULT false,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_project_created ON alerts (project_id, created_at DESC);
CREATE INDEX alerts_rule_created ON alerts (rule_id, created_at DESC);

-- The outbox: one delivery per alert and channel, retried with backoff until expires_at.
CREATE TABLE alert_deliveries (
    id              uuid PRIMARY KEY,
    alert_id        uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel_id      uuid NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    last_error      text,
    UNIQUE (alert_id, channel_id)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE alert_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  uuid NOT NULL REFERENCES alert_deliveries (id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    status_code  integer,
    error        text,
    duration_ms  double precision NOT NULL
);
CREATE INDEX alert_attempts_delivery ON alert_attempts (delivery_id, attempted_at);
