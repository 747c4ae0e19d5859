-- lz4 instead of pglz for the large values of a log (issue 17). A Sentry error log carries a
-- ~2 KB stack trace and ~6 KB of attributes (the exception chain with its frames), so both are
-- compressed on every COPY; with pglz that cost ~140 µs of backend CPU per row, with lz4 ~95 µs
-- (PostgreSQL 15, bench/RESULTS.md), for ~13 % more bytes stored.
--
-- Only where the server was built with lz4: default_toast_compression lists lz4 among its
-- values exactly then (PostgreSQL ≥ 14 with --with-lz4; the embedded pgserver build has none).
-- Elsewhere this does nothing and pglz stays, so one schema works on every server.
--
-- SET COMPRESSION on a partitioned table does not reach its existing partitions (PostgreSQL 15),
-- so each one is altered too; partitions made later (CREATE TABLE ... PARTITION OF logs in
-- ledger.db.partitions) copy the parent's setting. Only values written from now on use lz4:
-- stored ones stay pglz and are still read, no rewrite and no long lock.
DO $$
DECLARE
    part regclass;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_settings
                   WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        RAISE NOTICE 'lz4 is not available on this server: logs keep pglz compression';
        RETURN;
    END IF;
    FOR part IN
        SELECT 'logs'::regclass
        UNION ALL
        SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'logs'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN stack_trace SET COMPRESSION lz4,'
                       ' ALTER COLUMN attributes SET COMPRESSION lz4,'
                       ' ALTER COLUMN message SET COMPRESSION lz4', part);
    END LOOP;
END
$$;
