-- The `triage` key scope (DESIGN §4): change an error group's status, merge groups, edit
-- fingerprint rules. New keys still get ingest and read unless created otherwise.
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_scopes_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_known
    CHECK (scopes <@ ARRAY['ingest', 'read', 'triage'] AND cardinality(scopes) > 0);
