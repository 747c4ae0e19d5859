-- Grouping per project (issue 11): fingerprint rules and the in-app setting, versioned, and
-- merges of error groups with their history.

-- The current setting. `rules` is the ordered list of rule texts (ledger.core.grouping_rules);
-- `revision` goes up by one on every change.
CREATE TABLE grouping_settings (
    project_id     uuid PRIMARY KEY,
    revision       integer NOT NULL DEFAULT 0,
    rules          jsonb NOT NULL DEFAULT '[]',
    in_app_include text[] NOT NULL DEFAULT '{}',
    in_app_exclude text[] NOT NULL DEFAULT '{}',
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Every revision as it was, with what changed and who changed it.
CREATE TABLE grouping_revisions (
    project_id     uuid NOT NULL,
    revision       integer NOT NULL,
    rules          jsonb NOT NULL,
    in_app_include text[] NOT NULL,
    in_app_exclude text[] NOT NULL,
    change         text NOT NULL,
    changed_by     text,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, revision)
);

-- A merge sends the events of `fingerprint` to the group of `target_fingerprint` (ingest reads
-- the active ones). `moved_count` is what the merge added to the target's count, taken back by
-- the unmerge. Rows are never deleted: unmerged ones are the history.
CREATE TABLE error_group_merges (
    id                 bigserial PRIMARY KEY,
    project_id         uuid NOT NULL,
    fingerprint        text NOT NULL,
    target_fingerprint text NOT NULL,
    source_group_id    uuid NOT NULL,
    target_group_id    uuid NOT NULL,
    moved_count        bigint NOT NULL DEFAULT 0,
    merged_by          text,
    merged_at          timestamptz NOT NULL DEFAULT now(),
    unmerged_by        text,
    unmerged_at        timestamptz
);
CREATE UNIQUE INDEX error_group_merges_active
    ON error_group_merges (project_id, fingerprint) WHERE unmerged_at IS NULL;
CREATE INDEX error_group_merges_target ON error_group_merges (project_id, target_group_id);
CREATE INDEX error_group_merges_source ON error_group_merges (project_id, source_group_id);

-- A merged-away group points at the group that survives; lists leave it out.
ALTER TABLE error_groups ADD COLUMN merged_into uuid;
