-- The triage scope (DESIGN §4): a key may be allowed to change an error group's status.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_check
    CHECK (scopes <@ ARRAY['ingest', 'read', 'triage'] AND cardinality(scopes) > 0);
