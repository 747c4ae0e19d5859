-- Logs database: the partitioned logs table, error groups and pre-computed metrics.

CREATE TABLE logs (
    project_id          uuid NOT NULL,
    id                  uuid NOT NULL,
    timestamp           timestamptz NOT NULL,
    ingested_at         timestamptz NOT NULL,
    level               text NOT NULL,
    log_type            text NOT NULL,
    importance          text NOT NULL,
    message             text,
    error_type          text,
    error_message       text,
    stack_trace         text,
    environment         text,
    release             text,
    sdk_version         text,
    platform            text,
    platform_version    text,
    attributes          jsonb,
    trace_id            text,
    span_id             text,
    client_fingerprint  text[],
    error_fingerprint   text,
    fingerprint_version smallint,
    -- The id is the idempotency key: a re-delivered or re-sent log hits this and is skipped.
    PRIMARY KEY (project_id, id, timestamp)
) PARTITION BY RANGE (timestamp);

-- Monthly partitions logs_YYYY_MM are created by ledger.db.partitions (on demand and ahead).
CREATE INDEX logs_timestamp_brin ON logs USING brin (timestamp);
CREATE INDEX logs_project_time ON logs (project_id, timestamp DESC);
CREATE INDEX logs_project_errors ON logs (project_id, timestamp DESC)
    WHERE level IN ('error', 'critical');
CREATE INDEX logs_project_fingerprint ON logs (project_id, error_fingerprint, timestamp DESC)
    WHERE error_fingerprint IS NOT NULL;

CREATE TABLE error_groups (
    id                  uuid PRIMARY KEY,
    project_id          uuid NOT NULL,
    fingerprint         text NOT NULL,
    fingerprint_version smallint NOT NULL,
    -- What contributed to the fingerprint (method, frames, type, normalised message): "why grouped".
    components          jsonb NOT NULL DEFAULT '{}',
    title               text NOT NULL,
    error_type          text,
    level               text NOT NULL,
    log_type            text NOT NULL,
    first_seen          timestamptz NOT NULL,
    last_seen           timestamptz NOT NULL,
    event_count         bigint NOT NULL DEFAULT 0,
    status              text NOT NULL DEFAULT 'unresolved'
                        CHECK (status IN ('unresolved', 'resolved', 'ignored')),
    resolved_in_release text,
    resolved_at         timestamptz,
    last_release        text,
    sample_log_id       uuid,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, fingerprint)
);
CREATE INDEX error_groups_project_last_seen ON error_groups (project_id, last_seen DESC);
CREATE INDEX error_groups_project_count ON error_groups (project_id, event_count DESC);

-- Compares two release strings by their numeric parts (1.10.0 > 1.9.2), then as text.
-- Returns -1, 0 or 1; NULL when either is NULL.
CREATE FUNCTION ledger_release_cmp(a text, b text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN a IS NULL OR b IS NULL THEN NULL
        WHEN na < nb THEN -1
        WHEN na > nb THEN 1
        WHEN a < b THEN -1
        WHEN a > b THEN 1
        ELSE 0
    END
    FROM (SELECT
        ARRAY(SELECT left(m[1], 18)::numeric FROM regexp_matches(a, '(\d+)', 'g') AS m) AS na,
        ARRAY(SELECT left(m[1], 18)::numeric FROM regexp_matches(b, '(\d+)', 'g') AS m) AS nb
    ) AS parts
$$;

CREATE TABLE aggregated_metrics (
    project_id   uuid NOT NULL,
    -- exception | endpoint | log_volume
    metric_type  text NOT NULL,
    bucket_start timestamptz NOT NULL,
    -- error type, "METHOD path" or "level:log_type", by metric_type
    dimension    text NOT NULL,
    count        bigint NOT NULL DEFAULT 0,
    error_count  bigint NOT NULL DEFAULT 0,
    min_ms       double precision,
    avg_ms       double precision,
    max_ms       double precision,
    p50_ms       double precision,
    p95_ms       double precision,
    p99_ms       double precision,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, metric_type, bucket_start, dimension)
);

CREATE TABLE bottleneck_metrics (
    project_id   uuid NOT NULL,
    route        text NOT NULL,
    method       text NOT NULL,
    bucket_start timestamptz NOT NULL,
    count        bigint NOT NULL DEFAULT 0,
    min_ms       double precision,
    max_ms       double precision,
    avg_ms       double precision,
    median_ms    double precision,
    p95_ms       double precision,
    p99_ms       double precision,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, route, method, bucket_start)
);
