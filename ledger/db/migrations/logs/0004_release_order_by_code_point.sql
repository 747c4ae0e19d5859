-- The release order of DESIGN §6, the same under any collation: ledger_release_cmp of 0001 broke
-- ties with the text comparison of its inputs' collation (under a linguistic one "1.0-b" sorts
-- before "1.0-B"), while the alerts evaluator's copy (ledger.core.error_groups.release_cmp)
-- compares code points, so an alert could announce a regression the writer did not make.
-- Ties are now broken by code point (COLLATE "C"), and numeric parts are ASCII digits only
-- (what [[:digit:]] matches depends on the locale). Same signature, so the writer's
-- regression UPDATE picks it up unchanged.
CREATE OR REPLACE FUNCTION ledger_release_cmp(a text, b text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN a IS NULL OR b IS NULL THEN NULL
        WHEN na < nb THEN -1
        WHEN na > nb THEN 1
        WHEN a COLLATE "C" < b COLLATE "C" THEN -1
        WHEN a COLLATE "C" > b COLLATE "C" THEN 1
        ELSE 0
    END
    FROM (SELECT
        ARRAY(SELECT left(m[1], 18)::numeric FROM regexp_matches(a, '([0-9]+)', 'g') AS m) AS na,
        ARRAY(SELECT left(m[1], 18)::numeric FROM regexp_matches(b, '([0-9]+)', 'g') AS m) AS nb
    ) AS parts
$$;
