--
-- outbox_integrity: what mq.publish's write buffer and its key locks
-- promise, in one session.
--
-- 1. A row published at one level of subtransactions is written under
--    that level's xid: a deeper subtransaction that rolls back does not
--    take it along.  A statement (or plpgsql expression, or cursor) that
--    starts after a publish sees its row, as after an INSERT; one that
--    started before does not.
-- 2. The key locks of a transaction are bounded whatever its number of
--    distinct keys, and live in mq's own lock-tag space (pg_locks shows
--    them as advisory locks with objsubid 28017), apart from user
--    advisory locks.
-- 3. A plain INSERT INTO mq.outbox takes its seq after the key lock (the
--    trigger assigns it); a seq given explicitly is kept.
--
-- Rows are counted in the outbox and in the topic together: the worker
-- may relay them meanwhile, which moves them from one to the other.
\set VERBOSITY sqlstate
\set SHOW_CONTEXT never
SELECT mq.create_topic('oi_t', 2);
CREATE TABLE oi_tbl (v integer NOT NULL);
CREATE FUNCTION oi_count(ev uuid) RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT (SELECT count(*) FROM mq.outbox WHERE id = ev)
         + (SELECT count(*) FROM mq.topic_record WHERE message_id = ev)
$$;

-- the shape of the defect: publish, then an exception block whose first
-- INSERT succeeds and whose second fails
CREATE FUNCTION oi_publish_then_fail() RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    ev uuid;
BEGIN
    ev := mq.publish('oi_t', jsonb_build_object('shape', 'subxact'));
    BEGIN
        INSERT INTO oi_tbl VALUES (1);
        INSERT INTO oi_tbl VALUES (NULL);
    EXCEPTION WHEN not_null_violation THEN
        NULL;
    END;
    RETURN ev;
END $$;
SELECT oi_publish_then_fail() AS ev \gset
SELECT oi_count(:'ev') AS rows_of_event, (SELECT count(*) FROM oi_tbl) AS tbl_rows;

-- the same two levels down, and a row published inside the block that
-- rolls back goes with it
CREATE FUNCTION oi_nested() RETURNS TABLE (kept bigint, dropped bigint) LANGUAGE plpgsql AS $$
DECLARE
    ev1 uuid;
    ev2 uuid;
    ev3 uuid;
BEGIN
    ev1 := mq.publish('oi_t', jsonb_build_object('level', 1));
    BEGIN
        ev2 := mq.publish('oi_t', jsonb_build_object('level', 2));
        BEGIN
            PERFORM count(*) FROM mq.outbox;
            ev3 := mq.publish('oi_t', jsonb_build_object('level', 3));
            PERFORM count(*) FROM mq.outbox;
            RAISE EXCEPTION 'inner' USING ERRCODE = 'P0001';
        EXCEPTION WHEN raise_exception THEN
            NULL;
        END;
        PERFORM count(*) FROM mq.outbox;
        RAISE EXCEPTION 'middle' USING ERRCODE = 'P0001';
    EXCEPTION WHEN raise_exception THEN
        NULL;
    END;
    kept := oi_count(ev1);
    dropped := oi_count(ev2) + oi_count(ev3);
    RETURN NEXT;
END $$;
SELECT * FROM oi_nested();

-- a block that commits keeps its rows and the outer ones
CREATE FUNCTION oi_block_commits() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    ev1 uuid;
    ev2 uuid;
BEGIN
    ev1 := mq.publish('oi_t', jsonb_build_object('outer', true));
    BEGIN
        INSERT INTO oi_tbl VALUES (2);
        ev2 := mq.publish('oi_t', jsonb_build_object('inner', true));
    EXCEPTION WHEN OTHERS THEN
        RAISE;
    END;
    RETURN oi_count(ev1) + oi_count(ev2);
END $$;
SELECT oi_block_commits() AS rows_of_both;

-- a statement after a publish sees its row: an expression, a query
CREATE FUNCTION oi_sees() RETURNS TABLE (by_expression bigint, by_query bigint) LANGUAGE plpgsql AS $$
DECLARE
    ev uuid;
BEGIN
    ev := mq.publish('oi_t', jsonb_build_object('sees', true));
    by_expression := oi_count(ev);
    SELECT count(*) INTO by_query FROM mq.outbox o WHERE o.id = ev;
    by_query := by_query + (SELECT count(*) FROM mq.topic_record r WHERE r.message_id = ev);
    RETURN NEXT;
END $$;
SELECT * FROM oi_sees();

-- cursors: one that publishes, read partly, while the transaction goes on;
-- one opened before the publish does not see its row
BEGIN;
DECLARE before_pub CURSOR FOR SELECT count(*) FROM mq.outbox WHERE payload ? 'cursor';
DECLARE pub CURSOR FOR
    SELECT mq.publish('oi_t', jsonb_build_object('cursor', g)) FROM generate_series(1, 3) g;
FETCH 1 FROM pub \gset
SELECT count(*) AS seen_after_fetch FROM mq.outbox WHERE payload ? 'cursor';
FETCH 1 FROM before_pub;
MOVE 2 IN pub;
SELECT count(*) AS seen_after_fetch FROM mq.outbox WHERE payload ? 'cursor';
CLOSE pub;
SAVEPOINT s1;
SELECT mq.publish('oi_t', jsonb_build_object('cursor', 4)) IS NOT NULL AS published;
ROLLBACK TO SAVEPOINT s1;
SELECT count(*) AS seen_after_rollback_to FROM mq.outbox WHERE payload ? 'cursor';
COMMIT;
SELECT count(*) AS committed FROM (
    SELECT payload FROM mq.outbox WHERE payload ? 'cursor'
    UNION ALL SELECT payload FROM mq.topic_record WHERE payload ? 'cursor') s;

-- 2. key locks: 20,000 distinct keys in one transaction; the locks held
-- stay few (at most 128 keys and 32 stripes: classes 7 and 9), and all of
-- them are in mq's lock-tag space
BEGIN;
SELECT count(mq.publish('oi_t', jsonb_build_object('n', g), key => 'many-' || g)) AS published
FROM generate_series(1, 20000) g;
SELECT count(DISTINCT (classid, objid)) FILTER (WHERE classid IN (7, 9)) <= 128 + 32 AS locks_bounded,
       count(*) FILTER (WHERE objsubid <> 28017) AS outside_mq_space
FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory';
ROLLBACK;
BEGIN;
SELECT count(*) AS published FROM mq.publish_batch('oi_t',
    (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 20000) g),
    (SELECT array_agg('batch-' || g) FROM generate_series(1, 20000) g));
INSERT INTO mq.outbox (aggregatetype, aggregateid, payload)
SELECT 'oi_t', 'insert-' || g, '{}' FROM generate_series(1, 20000) g;
SELECT count(DISTINCT (classid, objid)) FILTER (WHERE classid IN (7, 9)) <= 128 + 32 AS locks_bounded,
       count(*) FILTER (WHERE objsubid <> 28017) AS outside_mq_space
FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory';
ROLLBACK;
-- 3. a plain INSERT gets its seq from the trigger, after the key lock; an
-- explicit seq is kept
BEGIN;
SELECT nextval('mq.outbox_seq') AS before_seq \gset
INSERT INTO mq.outbox (aggregatetype, aggregateid, payload) VALUES ('oi_t', 'k', '{}')
RETURNING seq > :before_seq AS seq_after, seq IS NOT NULL AS has_seq;
INSERT INTO mq.outbox (aggregatetype, aggregateid, payload, seq) VALUES ('oi_t', 'k', '{}', 9000000000000000000)
RETURNING seq AS explicit_seq;
ROLLBACK;

-- relay what this file committed, so that dropping the topic leaves
-- nothing behind for later files (the worker may be off or backing off)
SELECT mq.relay() >= 0 AS relayed;
SELECT count(*) AS left_in_outbox FROM mq.outbox WHERE aggregatetype = 'oi_t';
SELECT mq.drop_topic('oi_t');
DROP FUNCTION oi_count(uuid), oi_publish_then_fail(), oi_nested(), oi_block_commits(), oi_sees();
DROP TABLE oi_tbl;
