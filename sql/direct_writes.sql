--
-- direct_writes: the write paths that insert rows directly from C
-- (mq.send, mq.send_batch, mq.publish, mq.publish_batch): publish_batch's
-- contract, the relay wake-up, read-only transactions, privileges,
-- savepoints, and send_batch with mixed dedup keys.
--
-- First, with the worker on and napping 60 s, a publish_batch commit must
-- wake the relay.  Then the worker is switched off so that every relay is
-- the mq.relay() we call (see outbox_topics).  Errors are shown as
-- SQLSTATE: message by pg_temp.err.  Ids and uuids are only compared.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE FUNCTION pg_temp.err(cmd text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE cmd;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.wait_workers(want boolean) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..200 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN want = EXISTS (SELECT 1 FROM pg_stat_activity
                                 WHERE backend_type = 'mq worker' AND datname = current_database());
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN (SELECT count(*) FROM pg_stat_activity
            WHERE backend_type = 'mq worker' AND datname = current_database());
END $$;

--
-- the commit of a publish_batch wakes the relay: delivered within 2 s
-- although the worker naps for 60 s
--
ALTER SYSTEM SET mq.naptime = '60s';
SELECT pg_reload_conf();
SELECT pg_temp.wait_workers(true) AS mq_workers;
SELECT pg_sleep(1.5);   -- the worker picks up the new naptime
SELECT mq.create_queue('dw_wake');
SELECT count(*) AS published FROM mq.publish_batch('dw_wake', ARRAY['{"w": 1}', '{"w": 2}']::jsonb[]);
SELECT clock_timestamp() AS t0 \gset
SELECT payload FROM mq.poll('dw_wake', 10, wait => '10 seconds');
SELECT clock_timestamp() - :'t0' < interval '2 seconds' AS woken_promptly;
ALTER SYSTEM SET mq.worker_enabled = off;
SELECT pg_reload_conf();
SELECT pg_temp.wait_workers(false) AS mq_workers;
SELECT mq.relay() >= 0 AS relayed_leftovers;

--
-- publish_batch to a queue: event ids in input order, keys and headers
-- per element (NULL elements: none), one outbox row each, in seq order,
-- stamped like mq.publish
--
SELECT mq.create_queue('dw_q');
BEGIN;
SELECT array_agg(id ORDER BY n) AS eids
FROM mq.publish_batch('dw_q', ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}', '{"n": 4}']::jsonb[],
                      keys => ARRAY['a', NULL, 'b', 'a'],
                      headers => ARRAY['{"h": 1}', NULL, '{"h": 3}', NULL]::jsonb[])
     WITH ORDINALITY AS s(id, n) \gset
SELECT row_number() OVER (ORDER BY seq) AS pos, id = (:'eids'::uuid[])[(payload->>'n')::int] AS id_matches,
       aggregatetype, aggregateid, type, payload, headers, created_at = now() AS created_now
FROM mq.outbox ORDER BY seq;
COMMIT;
SELECT cardinality(:'eids'::uuid[]) AS n_ids,
       (SELECT count(DISTINCT x) FROM unnest(:'eids'::uuid[]) x) AS n_distinct;
-- nothing reaches the queue before the relay; then all four, in order,
-- each carrying its event id
SELECT count(*) AS popped FROM mq.pop('dw_q', 10);
SELECT mq.relay() AS relayed;
SELECT n AS poll_pos, payload, headers - 'mq_event_id' AS headers,
       headers->>'mq_event_id' = (:'eids'::uuid[])[n]::text AS event_id_travels
FROM mq.poll('dw_q', 10) WITH ORDINALITY AS m(msg_id, payload, headers, attempt, enqueued_at,
                                              visible_at, last_error, deaths, n);
-- an empty batch returns nothing and writes nothing
SELECT count(*) AS ids FROM mq.publish_batch('dw_q', ARRAY[]::jsonb[]);
SELECT count(*) AS ids FROM mq.publish_batch('dw_q', '{}', keys => '{}', headers => '{}');
SELECT count(*) AS in_outbox FROM mq.outbox;
-- publish_batch takes the same per-(destination, key) locks as mq.publish
\set key_locks 'SELECT coalesce(array_agg(objid::bigint ORDER BY objid), ''{}'') FROM pg_locks WHERE locktype = ''advisory'' AND classid = 7 AND objsubid = 28017 AND pid = pg_backend_pid()'
BEGIN;
SELECT count(*) AS published FROM mq.publish_batch('dw_q', ARRAY['{}', '{}', '{}', '{}']::jsonb[],
                                                   keys => ARRAY['a', 'b', 'a', NULL]);
SELECT (:key_locks) AS batch_locks \gset
ROLLBACK;
BEGIN;
SELECT mq.publish('dw_q', '{}', key => 'a') IS NOT NULL AND mq.publish('dw_q', '{}', key => 'b') IS NOT NULL AS published;
SELECT cardinality(:'batch_locks'::bigint[]) AS batch_locks, (:key_locks) = :'batch_locks'::bigint[] AS same_locks;
COMMIT;
SELECT cardinality((:key_locks)) AS locks_after_commit;
SELECT count(*) AS in_outbox FROM mq.outbox;
SELECT mq.relay() AS relayed;
SELECT mq.purge_queue('dw_q') AS purged;

--
-- publish_batch to a 4-partition topic: each key lands where mq.publish
-- (and Kafka's formula) puts it, in input order per key and per partition
--
SELECT mq.create_topic('dw_t', 4);
SELECT mq.create_topic('dw_t_ref', 4);
SELECT mq.create_group('dw_t', 'g', 'earliest');
SELECT mq.create_group('dw_t_ref', 'g', 'earliest');
CREATE TEMP TABLE dw_in AS SELECT i, 'key-' || (i % 8) AS k FROM generate_series(1, 24) i;
SELECT array_agg(id ORDER BY n) AS teids
FROM mq.publish_batch('dw_t', (SELECT array_agg(jsonb_build_object('i', i) ORDER BY i) FROM dw_in),
                      (SELECT array_agg(k ORDER BY i) FROM dw_in)) WITH ORDINALITY AS s(id, n) \gset
SELECT count(mq.publish('dw_t_ref', jsonb_build_object('i', i), key => k)) AS published
FROM (SELECT * FROM dw_in ORDER BY i) s;
SELECT mq.relay() AS relayed;
SELECT count(*) AS records,
       bool_and(b.partition = r.partition) AS same_partition_as_publish,
       bool_and(b.partition = (mq.murmur2(convert_to(b.key, 'UTF8')) & 2147483647) % 4) AS kafka_partition,
       bool_and(b.key = r.key) AS same_key,
       bool_and(b.message_id = (:'teids'::uuid[])[(b.payload->>'i')::int]) AS event_id_is_message_id
FROM mq.fetch('dw_t', 'g', 100) b JOIN mq.fetch('dw_t_ref', 'g', 100) r USING (payload);
SELECT partition, count(*) AS records, string_agg(DISTINCT key, ' ') AS keys
FROM mq.fetch('dw_t', 'g', 100) GROUP BY partition ORDER BY partition;
SELECT bool_and(coalesce(i > lag_key, true)) AS key_order,
       bool_and(coalesce(i > lag_part, true)) AS partition_order
FROM (SELECT (payload->>'i')::int AS i,
             lag((payload->>'i')::int) OVER (PARTITION BY partition, key ORDER BY "offset") AS lag_key,
             lag((payload->>'i')::int) OVER (PARTITION BY partition ORDER BY "offset") AS lag_part
      FROM mq.fetch('dw_t', 'g', 100)) s;
-- NULL keys: round-robin over the partitions, as for mq.publish
SELECT mq.create_group('dw_t', 'g_late');
SELECT count(*) AS published FROM mq.publish_batch('dw_t', ARRAY['{}', '{}', '{}', '{}']::jsonb[]);
SELECT mq.relay() AS relayed;
SELECT count(*) AS records, count(DISTINCT partition) AS partitions, count(key) AS with_key
FROM mq.fetch('dw_t', 'g_late', 100);

--
-- errors: nothing is written
--
SELECT mq.create_exchange('dw_x', 'direct');
SELECT mq.bind('dw_x', 'dw_q', 'a');
SELECT pg_temp.err($$SELECT mq.publish_batch(NULL, ARRAY['{}']::jsonb[])$$) AS null_destination;
SELECT pg_temp.err($$SELECT mq.publish_batch('dw_nope', ARRAY['{}']::jsonb[])$$) AS unknown_destination;
SELECT pg_temp.err($$SELECT mq.publish_batch('dw_q', NULL)$$) AS null_payloads;
SELECT pg_temp.err($$SELECT mq.publish_batch('dw_q', ARRAY[ARRAY['{}'::jsonb]])$$) AS two_dims;
SELECT pg_temp.err($$SELECT mq.publish_batch('dw_q', ARRAY['{}', '{}']::jsonb[], keys => ARRAY['a'])$$) AS keys_length;
SELECT pg_temp.err($$SELECT mq.publish_batch('dw_q', ARRAY['{}']::jsonb[], keys => ARRAY[ARRAY['a']])$$) AS keys_two_dims;
SELECT pg_temp.err($$SELECT mq.publish_batch('dw_q', ARRAY['{}']::jsonb[], headers => ARRAY['{}', '{}']::jsonb[])$$) AS headers_length;
-- mandatory: one unroutable key refuses the whole batch
SELECT pg_temp.err($$SELECT mq.publish_batch('dw_x', ARRAY['{"m": 1}', '{"m": 2}']::jsonb[],
                                             keys => ARRAY['a', 'b'], mandatory => true)$$) AS unroutable;
SELECT pg_temp.err($$SELECT mq.publish_batch('dw_x', ARRAY['{"m": 3}']::jsonb[], mandatory => true)$$) AS unroutable_no_key;
SELECT count(*) AS in_outbox FROM mq.outbox;
-- all routable: accepted; without mandatory the unroutable one is dropped
SELECT count(*) AS published FROM mq.publish_batch('dw_x', ARRAY['{"m": 4}', '{"m": 5}']::jsonb[],
                                                   keys => ARRAY['a', 'a'], mandatory => true);
SELECT count(*) AS published FROM mq.publish_batch('dw_x', ARRAY['{"m": 6}', '{"m": 7}']::jsonb[],
                                                   keys => ARRAY['a', 'b']);
SELECT dropped AS dropped_before FROM mq.exchange WHERE exchange_name = 'dw_x' \gset
SELECT mq.relay() AS relayed;
SELECT payload FROM mq.pop('dw_q', 10);
SELECT dropped - :dropped_before AS dropped FROM mq.exchange WHERE exchange_name = 'dw_x';
-- read-only transactions: 25006, for every direct write path
BEGIN READ ONLY;
SELECT pg_temp.err($$SELECT mq.send('dw_q', '{}')$$) AS send;
SELECT pg_temp.err($$SELECT mq.send_batch('dw_q', ARRAY['{}']::jsonb[])$$) AS send_batch;
SELECT pg_temp.err($$SELECT mq.publish('dw_q', '{}')$$) AS publish;
SELECT pg_temp.err($$SELECT mq.publish_batch('dw_q', ARRAY['{}']::jsonb[])$$) AS publish_batch;
-- with dedup keys (the SPI path): the same SQLSTATE
SELECT left(pg_temp.err($$SELECT mq.send('dw_q', '{}', dedup_key => 'r')$$), 5) AS send_dedup;
SELECT left(pg_temp.err($$SELECT mq.send_batch('dw_q', ARRAY['{}', '{}']::jsonb[],
                                               dedup_keys => ARRAY[NULL, 'r'])$$), 5) AS send_batch_dedup;
COMMIT;
BEGIN;
SET TRANSACTION READ ONLY;
SELECT pg_temp.err($$SELECT mq.publish_batch('dw_t', ARRAY['{}']::jsonb[], keys => ARRAY['k'])$$) AS publish_batch;
SELECT pg_temp.err($$SELECT mq.send('dw_q', '{}', headers => '{"h": 1}')$$) AS send;
COMMIT;
SELECT count(*) AS in_outbox FROM mq.outbox;
SELECT total FROM mq.queue_stats WHERE queue_name = 'dw_q';

--
-- privileges: a role needs USAGE on schema mq and the send privilege on
-- the queue (doc/security.md), never privileges on mq's tables
--
CREATE ROLE regress_mq_writer NOLOGIN;
SET ROLE regress_mq_writer;
SELECT pg_temp.err($$SELECT mq.send('dw_q', '{}')$$) AS no_schema_usage;
RESET ROLE;
GRANT USAGE ON SCHEMA mq TO regress_mq_writer;
SET ROLE regress_mq_writer;
SELECT pg_temp.err($$SELECT mq.send('dw_q', '{}')$$) AS send;
SELECT pg_temp.err($$SELECT mq.send_batch('dw_q', ARRAY['{}']::jsonb[])$$) AS send_batch;
SELECT pg_temp.err($$SELECT mq.publish('dw_q', '{}')$$) AS publish;
SELECT pg_temp.err($$SELECT mq.publish_batch('dw_q', ARRAY['{}']::jsonb[])$$) AS publish_batch;
RESET ROLE;
SELECT mq.grant('dw_q', 'regress_mq_writer', '{send}');
SET ROLE regress_mq_writer;
SELECT pg_temp.err($$SELECT mq.send('dw_q', '{"p": "send"}')$$) AS send;
SELECT pg_temp.err($$SELECT mq.send_batch('dw_q', ARRAY['{"p": "send_batch"}']::jsonb[])$$) AS send_batch;
SELECT pg_temp.err($$SELECT mq.publish('dw_q', '{"p": "publish"}')$$) AS publish;
SELECT pg_temp.err($$SELECT mq.publish_batch('dw_q', ARRAY['{"p": "publish_batch"}']::jsonb[])$$) AS publish_batch;
RESET ROLE;
SELECT mq.relay() AS relayed;
SELECT payload FROM mq.pop('dw_q', 10) ORDER BY payload->>'p';
-- a role runs the relay (its C pass: topics only) with manage on '*'
SELECT mq.create_topic('dw_pt', 2);
SELECT mq.publish('dw_pt', '{"p": "relayed by a role"}', key => 'a') IS NOT NULL AS published;
SET ROLE regress_mq_writer;
SELECT pg_temp.err($$SELECT mq.relay()$$) AS relay;
RESET ROLE;
SELECT mq.grant('*', 'regress_mq_writer', '{manage}');
SET ROLE regress_mq_writer;
SELECT mq.relay() AS relayed;
RESET ROLE;
SELECT count(*) AS records FROM mq.topic_record r JOIN mq.topic t USING (topic_id) WHERE t.topic_name = 'dw_pt';
SELECT mq.drop_topic('dw_pt') AS dropped;
SELECT mq.revoke('*', 'regress_mq_writer');
SELECT mq.revoke('dw_q', 'regress_mq_writer');
DROP OWNED BY regress_mq_writer;
DROP ROLE regress_mq_writer;

--
-- savepoints: what a rolled-back savepoint sent or published is never
-- delivered, nor counted; the rest is
--
SELECT mq.create_queue('dw_sp');
BEGIN;
SELECT mq.send('dw_sp', '{"s": "send-before"}') > 0 AS sent;
SELECT count(*) AS published FROM mq.publish_batch('dw_sp', ARRAY['{"s": "batch-before-1"}', '{"s": "batch-before-2"}']::jsonb[]);
SAVEPOINT s1;
SELECT mq.send('dw_sp', '{"s": "send-inside"}') > 0 AS sent;
SELECT count(*) AS sent FROM mq.send_batch('dw_sp', ARRAY['{"s": "send-batch-inside"}']::jsonb[]);
SELECT count(*) AS published FROM mq.publish_batch('dw_sp', ARRAY['{"s": "batch-inside-1"}', '{"s": "batch-inside-2"}']::jsonb[],
                                                   keys => ARRAY['k', 'k']);
ROLLBACK TO SAVEPOINT s1;
SELECT mq.send('dw_sp', '{"s": "send-after"}') > 0 AS sent;
SELECT count(*) AS published FROM mq.publish_batch('dw_sp', ARRAY['{"s": "batch-after"}']::jsonb[], keys => ARRAY['k']);
COMMIT;
SELECT mq.relay() AS relayed;
SELECT payload->>'s' AS delivered FROM mq.poll('dw_sp', 20) ORDER BY 1;
SELECT total, total_sent FROM mq.queue_stats WHERE queue_name = 'dw_sp';

--
-- send_batch with dedup keys mixing NULL and non-NULL: ids in input
-- order; a duplicate key returns the original id and enqueues nothing
--
SELECT mq.create_queue('dw_dd');
SELECT mq.send('dw_dd', '{"d": 0}', dedup_key => 'old') AS old \gset
SELECT array_agg(id ORDER BY n) AS ids
FROM mq.send_batch('dw_dd', ARRAY['{"d": 1}', '{"d": 2}', '{"d": 3}', '{"d": 4}', '{"d": 5}', '{"d": 6}']::jsonb[],
                   headers => ARRAY[NULL, '{"h": 2}', NULL, NULL, NULL, '{"h": 6}']::jsonb[],
                   dedup_keys => ARRAY[NULL, 'x', NULL, 'old', 'x', NULL])
     WITH ORDINALITY AS s(id, n) \gset
SELECT cardinality(:'ids'::bigint[]) AS n_ids,
       (:'ids'::bigint[])[4] = :old AS old_key_old_id,
       (:'ids'::bigint[])[5] = (:'ids'::bigint[])[2] AS dup_in_batch,
       (:'ids'::bigint[])[1] < (:'ids'::bigint[])[2] AND (:'ids'::bigint[])[2] < (:'ids'::bigint[])[3]
         AND (:'ids'::bigint[])[3] < (:'ids'::bigint[])[6] AS new_ids_ascending,
       (:'ids'::bigint[])[1] > :old AS after_old,
       (SELECT count(DISTINCT x) FROM unnest(:'ids'::bigint[]) x) AS n_distinct;
SELECT payload, headers, msg_id = coalesce((:'ids'::bigint[])[nullif((payload->>'d')::int, 0)], :old) AS id_matches
FROM mq.poll('dw_dd', 10) ORDER BY msg_id;
SELECT total_sent FROM mq.queue_stats WHERE queue_name = 'dw_dd';

--
-- mq.publish's rows are buffered and written by the end of the statement:
-- the next statement of the transaction sees them, a statement of more
-- than 1000 publishes writes them all, a cursor's publishes are written at
-- commit, and the publishes of a plpgsql block that fails are dropped with
-- its subtransaction while the block's caller keeps its own
--
SELECT mq.create_queue('dw_buf');
BEGIN;
SELECT count(mq.publish('dw_buf', jsonb_build_object('n', g))) AS published FROM generate_series(1, 3) g;
SELECT count(*) AS visible_next_statement FROM mq.outbox WHERE aggregatetype = 'dw_buf';
SELECT count(*) AS published
FROM (SELECT mq.publish('dw_buf', jsonb_build_object('n', g)) FROM generate_series(4, 2503) g) s;
SELECT count(*) AS visible, count(DISTINCT seq) AS distinct_seq,
       min((payload->>'n')::int) AS lo, max((payload->>'n')::int) AS hi
FROM mq.outbox WHERE aggregatetype = 'dw_buf';
COMMIT;
BEGIN;
DECLARE dw_cur CURSOR FOR SELECT mq.publish('dw_buf', jsonb_build_object('n', g)) FROM generate_series(2504, 2510) g;
MOVE 2 IN dw_cur;
COMMIT;
DO $$
BEGIN
    PERFORM mq.publish('dw_buf', '{"n": 3001}');
    BEGIN
        PERFORM mq.publish('dw_buf', '{"n": 3002}');
        PERFORM mq.publish('dw_buf', jsonb_build_object('n', 3003 / 0));
    EXCEPTION WHEN division_by_zero THEN
        PERFORM mq.publish('dw_buf', '{"n": 3004}');
    END;
    BEGIN
        PERFORM mq.publish('dw_buf', '{"n": 3005}');
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        NULL;
    END;
END $$;
-- large payloads: 30 MB in one statement; the buffer is written each time
-- it holds 8 MB, and every row arrives
BEGIN;
SELECT count(mq.publish('dw_buf', jsonb_build_object('big', repeat('x', 1000000)))) AS published
FROM generate_series(1, 30);
SELECT count(*) AS big_rows, min(length(payload->>'big')) AS min_len
FROM mq.outbox WHERE aggregatetype = 'dw_buf' AND payload ? 'big';
ROLLBACK;
SELECT count(*) AS outbox_rows,
       count(*) FILTER (WHERE (payload->>'n')::int BETWEEN 2504 AND 2510) AS from_cursor,
       array_agg((payload->>'n')::int ORDER BY seq) FILTER (WHERE (payload->>'n')::int > 3000) AS from_do_block
FROM mq.outbox WHERE aggregatetype = 'dw_buf';
SELECT mq.relay() AS relayed;
SELECT count(*) AS ready, bool_and(headers ? 'mq_event_id') AS with_event_ids
FROM mq.poll('dw_buf', 3000);

--
-- the relay's C pass (a batch that goes to topics only) and its SQL pass
-- (mq._relay_sql) place the same records at the same partitions and
-- offsets; a batch that also holds a queue's row goes to the SQL pass
--
SELECT mq.create_topic('dw_rc', 4), mq.create_topic('dw_rs', 4);
SELECT count(*) AS published FROM (
    SELECT mq.publish(t, jsonb_build_object('i', i), key => k)
    FROM unnest(ARRAY['dw_rc', 'dw_rs']) t,
         generate_series(1, 40) i,
         LATERAL (SELECT (ARRAY['a', 'b', 'ключ', 'x.y', ''])[1 + i % 5] || (i % 7)::text AS k) kk
    ORDER BY t, i) s;
-- dw_rc's rows come first in seq order: 40 rows to one topic, the C pass
SELECT mq.relay(40) AS relayed_c;
SELECT mq._relay_sql(40) AS relayed_sql;
SELECT (SELECT count(*) FROM mq.topic_record r JOIN mq.topic t USING (topic_id) WHERE t.topic_name = 'dw_rc') AS c_records,
       (SELECT count(*) FROM mq.topic_record r JOIN mq.topic t USING (topic_id) WHERE t.topic_name = 'dw_rs') AS sql_records;
SELECT count(*) AS differences FROM (
    (SELECT r.partition, r."offset", r.key, r.payload FROM mq.topic_record r JOIN mq.topic t USING (topic_id) WHERE t.topic_name = 'dw_rc'
     EXCEPT
     SELECT r.partition, r."offset", r.key, r.payload FROM mq.topic_record r JOIN mq.topic t USING (topic_id) WHERE t.topic_name = 'dw_rs')
    UNION ALL
    (SELECT r.partition, r."offset", r.key, r.payload FROM mq.topic_record r JOIN mq.topic t USING (topic_id) WHERE t.topic_name = 'dw_rs'
     EXCEPT
     SELECT r.partition, r."offset", r.key, r.payload FROM mq.topic_record r JOIN mq.topic t USING (topic_id) WHERE t.topic_name = 'dw_rc')) d;
SELECT t.topic_name, p.partition, p.next_offset
FROM mq.topic_partition p JOIN mq.topic t USING (topic_id)
WHERE t.topic_name IN ('dw_rc', 'dw_rs') ORDER BY 2, 1;
-- keyless records: seq modulo the partition count, dense offsets
SELECT count(mq.publish('dw_rc', jsonb_build_object('n', i))) AS published FROM generate_series(1, 8) i;
SELECT mq.relay() AS relayed;
SELECT partition, count(*) AS records, max("offset") + 1 = (SELECT next_offset FROM mq.topic_partition p WHERE p.topic_id = r.topic_id AND p.partition = r.partition) AS dense
FROM mq.topic_record r JOIN mq.topic t USING (topic_id)
WHERE t.topic_name = 'dw_rc' AND r.key IS NULL GROUP BY r.topic_id, partition ORDER BY partition;
-- a batch with a queue's row as well goes to the SQL pass, in seq order
SELECT mq.create_queue('dw_rq');
SELECT mq.publish('dw_rc', '{"mixed": 1}', key => 'm') IS NOT NULL AS t1,
       mq.publish('dw_rq', '{"mixed": 2}') IS NOT NULL AS q1,
       mq.publish('dw_rc', '{"mixed": 3}', key => 'm') IS NOT NULL AS t2;
SELECT mq.relay() AS relayed;
SELECT payload FROM mq.topic_record r JOIN mq.topic t USING (topic_id)
WHERE t.topic_name = 'dw_rc' AND r.key = 'm' ORDER BY "offset";
SELECT payload FROM mq.poll('dw_rq');
SELECT mq.drop_topic('dw_rc') AND mq.drop_topic('dw_rs') AND mq.drop_queue('dw_rq') AS dropped;

--
-- clean up
--
SELECT mq.drop_topic('dw_t') AND mq.drop_topic('dw_t_ref') AS topics_dropped;
SELECT mq.drop_exchange('dw_x') AS exchange_dropped;
SELECT mq.drop_queue(q) AS dropped FROM unnest(ARRAY['dw_wake', 'dw_q', 'dw_sp', 'dw_dd', 'dw_buf']) q;
SELECT count(*) AS in_outbox FROM mq.outbox;
ALTER SYSTEM RESET mq.worker_enabled;
ALTER SYSTEM RESET mq.naptime;
SELECT pg_reload_conf();
