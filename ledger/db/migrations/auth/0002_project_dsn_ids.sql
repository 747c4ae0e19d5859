-- A stable numeric id per project for Sentry DSNs (http://<key>@<host>/<number>): Sentry SDKs
-- accept only digits as the DSN's project segment, and a project's UUID is not digits.
-- Existing projects are numbered by the sequence when the column is added.
CREATE SEQUENCE projects_dsn_id_seq AS bigint;
ALTER TABLE projects ADD COLUMN dsn_id bigint NOT NULL DEFAULT nextval('projects_dsn_id_seq');
ALTER SEQUENCE projects_dsn_id_seq OWNED BY projects.dsn_id;
ALTER TABLE projects ADD CONSTRAINT projects_dsn_id_key UNIQUE (dsn_id);
