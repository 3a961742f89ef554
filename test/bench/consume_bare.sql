-- consume, bare SQL reference (ANCHORS): lease up to 10 rows with SKIP LOCKED
-- and a visibility UPDATE in one transaction, delete them in a second one.
WITH c AS (
    SELECT id FROM bare WHERE vt <= now() ORDER BY id LIMIT 10
    FOR UPDATE SKIP LOCKED),
u AS (
    UPDATE bare SET vt = now() + interval '30 seconds', read_ct = read_ct + 1
    FROM c WHERE bare.id = c.id
    RETURNING bare.id)
SELECT coalesce(array_agg(id), '{}') AS ids FROM u \gset
DELETE FROM bare WHERE id = ANY (:ids::bigint[]);
