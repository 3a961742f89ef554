-- mq--0.1.0--0.2.0.sql: upgrade from 0.1.0 to 0.2.0.
--
-- There is no mq--0.2.0.sql: CREATE EXTENSION mq runs mq--0.1.0.sql and
-- then this script, so a new install and an upgraded one end with the same
-- schema by construction (test/ops checks it against the released 0.1.0).
-- mq--0.1.0.sql is released and never changes; every schema change of 0.2.0
-- goes here, in the section of its area.
\echo Use "ALTER EXTENSION mq UPDATE TO '0.2.0'" to load this file. \quit

--------------------------------------------------------------------------
-- Operations: dump/restore, sequences and segments dumped, restore safety
--------------------------------------------------------------------------

-- pg_dump dumps the rows of these tables and the values of these
-- sequences.  Without them a restored copy hands out topic, group,
-- exchange, segment and outbox ids that the restored rows already hold
-- (23505), and retention, which walks mq.segment, never drops a segment.
-- Consumer group members are dumped too: mq.consumer_group.members lists
-- them, and their last_seen lets them lapse after session_timeout as usual.
SELECT pg_catalog.pg_extension_config_dump('mq.topic_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mq.group_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mq.exchange_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mq.segment_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mq.outbox_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mq.segment', '');
SELECT pg_catalog.pg_extension_config_dump('mq.group_member', '');

-- Topic storage indexes belong to each topic, not to mq.topic_record.  The
-- per-topic partitions are created at run time, so they are not members of
-- the extension and pg_dump dumps them with their indexes; an index on
-- mq.topic_record (a member, created by CREATE EXTENSION before the dump's
-- partitions are attached) made ATTACH PARTITION build each partition's
-- index at once, and the dump's own CREATE INDEX then failed with 42P07.
-- With the index on mq.topic_record_<id> (not a member), a restore
-- attaches bare partitions and builds their indexes after the data.
DROP INDEX mq.topic_record_offset_idx;
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT topic_id FROM mq.topic ORDER BY topic_id LOOP
        EXECUTE format('CREATE INDEX ON mq.%I (topic_id, partition, "offset")',
                       'topic_record_' || t.topic_id);
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION mq.create_topic(
    topic_name  text,
    partitions  integer DEFAULT 1,
    retention   interval DEFAULT '7 days')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    tid integer;
BEGIN
    IF topic_name IS NULL OR partitions IS NULL OR retention IS NULL THEN
        RAISE EXCEPTION 'topic_name, partitions and retention must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM mq._check_name(topic_name);
    IF partitions < 1 OR partitions > 1024 THEN
        RAISE EXCEPTION 'partitions must be between 1 and 1024, got %', partitions
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF retention <= interval '0' THEN
        RAISE EXCEPTION 'retention must be positive, got %', retention
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM mq._check_name_free(topic_name);
    tid := nextval('mq.topic_id_seq');
    INSERT INTO mq.topic (topic_id, topic_name, partitions, retention)
    VALUES (tid, topic_name, partitions, retention);
    INSERT INTO mq.topic_partition (topic_id, partition)
    SELECT tid, p FROM generate_series(0, partitions - 1) p;
    -- the topic's storage: a partition of mq.topic_record, split in segments
    EXECUTE format('CREATE TABLE mq.%I PARTITION OF mq.topic_record FOR VALUES IN (%s) PARTITION BY RANGE (seg)',
                   'topic_record_' || tid, tid);
    -- its index is the topic's own (mq.topic_record has none: see above)
    EXECUTE format('CREATE INDEX ON mq.%I (topic_id, partition, "offset")', 'topic_record_' || tid);
    PERFORM mq._new_segment(tid);
    PERFORM mq._invalidate_queue_cache();
END;
$$;

-- A restore loads table data in name order, so mq.outbox comes before the
-- queues, topics and exchanges its rows are addressed to, and every
-- sequence is set only after all table data.  Restored outbox rows
-- therefore carry seq values above what mq.outbox_seq has handed out until
-- the restore has finished; an outbox row never does otherwise (seq is
-- nextval('mq.outbox_seq')).  The relay moves only rows at or below the
-- sequence's last value, so a worker that runs while a restore loads
-- leaves the outbox alone instead of routing rows to destinations that are
-- not loaded yet; the outbox trigger accepts a row with an unknown
-- destination when its seq is above the sequence for the same reason (see
-- doc/operations.md, "Backup and restore").
CREATE OR REPLACE FUNCTION mq._relay_sql(max_rows integer)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET jit = off
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    n       bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        -- after waiting for the previous pass, we must see what it committed
        RAISE EXCEPTION 'mq.relay must run in a READ COMMITTED transaction'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF max_rows IS NULL OR max_rows < 1 THEN
        RAISE EXCEPTION 'max_rows must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(28017, 2);
    WITH b AS MATERIALIZED (
        SELECT o.* FROM mq.outbox o
         WHERE o.seq <= (SELECT COALESCE(pg_sequence_last_value('mq.outbox_seq'), 0))
         ORDER BY o.seq LIMIT max_rows),
    -- each destination is looked up once; only exchanges route per message
    dk AS MATERIALIZED (
        SELECT x.aggregatetype, k.kind, k.id
          FROM (SELECT DISTINCT b.aggregatetype FROM b) x
          CROSS JOIN LATERAL mq._kind_of(x.aggregatetype) k),
    d AS MATERIALIZED (
        SELECT b.*, dk.kind AS dest_kind, dk.id AS dest_id
          FROM b JOIN dk ON dk.aggregatetype = b.aggregatetype
         WHERE dk.kind <> 'x'
        UNION ALL
        SELECT b.*, r.dest_kind, r.dest_id
          FROM b JOIN dk ON dk.aggregatetype = b.aggregatetype
          CROSS JOIN LATERAL mq._route(b.aggregatetype, b.aggregateid, b.headers, true) r
         WHERE dk.kind = 'x'),
    qins AS (
        INSERT INTO mq.queue_message (msg_id, queue_id, vt, enqueued_at, payload, headers)
        SELECT nextval('mq.msg_id_seq'), d.dest_id, clock_timestamp(), clock_timestamp(),
               coalesce(d.payload, 'null'::jsonb),
               coalesce(d.headers, '{}'::jsonb) || jsonb_build_object('mq_event_id', d.id)
          FROM d WHERE d.dest_kind = 'q' ORDER BY d.seq
        RETURNING queue_id),
    qdone AS (
        SELECT mq._count(q.queue_id, 'sent', count(*)), mq._wake(q.queue_id)
          FROM qins q GROUP BY q.queue_id),
    tp AS (
        SELECT d.*, t.current_seg,
               CASE WHEN d.aggregateid IS NULL THEN (d.seq % t.partitions)::integer
                         ELSE (mq.murmur2(convert_to(d.aggregateid, 'UTF8')) & 2147483647) % t.partitions
                    END AS part
          FROM d JOIN mq.topic t ON t.topic_id = d.dest_id
         WHERE d.dest_kind = 't'),
    tn AS (
        SELECT tp.*, p.next_offset + row_number() OVER (PARTITION BY tp.dest_id, tp.part ORDER BY tp.seq) - 1 AS off
          FROM tp JOIN mq.topic_partition p ON p.topic_id = tp.dest_id AND p.partition = tp.part),
    tins AS (
        INSERT INTO mq.topic_record (seg, topic_id, partition, "offset", key, payload, headers, message_id, published_at)
        SELECT tn.current_seg, tn.dest_id, tn.part, tn.off, tn.aggregateid, tn.payload, tn.headers, tn.id, clock_timestamp()
          FROM tn ORDER BY tn.seq
        RETURNING topic_id),
    tupd AS (
        UPDATE mq.topic_partition p SET next_offset = p.next_offset + c.n
          FROM (SELECT tn.dest_id, tn.part, count(*) AS n FROM tn GROUP BY 1, 2) c
         WHERE p.topic_id = c.dest_id AND p.partition = c.part),
    tdone AS (
        SELECT mq._wake(-t.topic_id) FROM tins t GROUP BY t.topic_id),
    del AS (
        DELETE FROM mq.outbox o USING b WHERE o.seq = b.seq RETURNING 1)
    SELECT (SELECT count(*) FROM del) + 0 * (SELECT count(*) FROM qdone) + 0 * (SELECT count(*) FROM tdone)
      INTO n;
    RETURN n;
END;
$$;

-- (end of section: operations)

--------------------------------------------------------------------------
-- Privileges: per-object grants, internal functions, table hardening
--------------------------------------------------------------------------

-- (end of section: privileges)

--------------------------------------------------------------------------
-- Shared state and input bounds: counters, aborted deliveries, routing
--------------------------------------------------------------------------

-- (end of section: shared state)

--------------------------------------------------------------------------
-- Background worker: status, settings, preload check
--------------------------------------------------------------------------

-- (end of section: worker)

--------------------------------------------------------------------------
-- Queue integrity: lock protocol, receipts, 2PC, wake-ups, plans
--------------------------------------------------------------------------

-- (end of section: queue integrity)

--------------------------------------------------------------------------
-- Topic and outbox integrity: publish buffer, key order, group fencing
--------------------------------------------------------------------------

-- seq is drawn by the outbox's BEFORE trigger (mq._outbox_check) after it
-- has taken the key lock, not by a column default before it: per-key relay
-- order is then commit order for a plain INSERT as for mq.publish.  A seq
-- given explicitly (a restore) is kept.
ALTER TABLE mq.outbox ALTER COLUMN seq DROP DEFAULT;

-- (end of section: topic integrity)
