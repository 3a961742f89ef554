--
-- outbox_topics: the transactional outbox and its relay; topics, consumer
-- groups, fetch / commit / seek; retention; the error cases.
--
-- The background worker relays committed outbox rows on its own; it is
-- switched off for this file so that every relay is the mq.relay() we call
-- and its count is deterministic (switched back on at the end).
-- Errors are shown as their SQLSTATE only (VERBOSITY sqlstate).
--
\set VERBOSITY sqlstate
\set SHOW_CONTEXT never
ALTER SYSTEM SET mq.worker_enabled = off;
SELECT pg_reload_conf();
DO $$
BEGIN
    FOR i IN 1..200 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity
                              WHERE backend_type = 'mq worker' AND datname = current_database());
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT count(*) AS mq_workers FROM pg_stat_activity
WHERE backend_type = 'mq worker' AND datname = current_database();
-- whatever other tests left in the outbox
SELECT mq.relay() >= 0 AS relayed_leftovers;

--
-- publish to a queue: an outbox row in the caller's transaction, relayed
-- by mq.relay(); the event id travels as header "mq_event_id"
--
SELECT mq.create_queue('ot_q');
SELECT mq.publish('ot_q', '{"n": 1}', key => 'k1', headers => '{"trace": "t1"}') AS eid1 \gset
-- the outbox row, with Debezium's columns
SELECT id = :'eid1' AS id_is_event_id, aggregatetype, aggregateid, payload, headers,
       created_at <= now() AS has_created_at
FROM mq.outbox;
-- nothing reaches the queue before the relay
SELECT count(*) AS popped FROM mq.pop('ot_q', 10);
SELECT mq.relay() AS relayed;
SELECT count(*) AS in_outbox FROM mq.outbox;
SELECT mq.relay() AS relayed_again;
SELECT payload, headers - 'mq_event_id' AS headers,
       headers->>'mq_event_id' = :'eid1' AS event_id_travels
FROM mq.pop('ot_q', 10);

--
-- rolled back: nothing relayed; a rolled-back savepoint takes only its own
--
BEGIN;
SELECT mq.publish('ot_q', '{"n": 2}') IS NOT NULL AS published;
SELECT count(*) AS own_outbox_rows FROM mq.outbox;
ROLLBACK;
SELECT count(*) AS in_outbox FROM mq.outbox;
SELECT mq.relay() AS relayed;
SELECT count(*) AS popped FROM mq.pop('ot_q', 10);
BEGIN;
SELECT mq.publish('ot_q', '{"n": 3}') IS NOT NULL AS published;
SAVEPOINT s;
SELECT mq.publish('ot_q', '{"n": 4}') IS NOT NULL AS published;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT mq.relay() AS relayed;
SELECT payload FROM mq.pop('ot_q', 10);

--
-- several publishes in one transaction arrive in publish order
--
BEGIN;
SELECT count(mq.publish('ot_q', jsonb_build_object('n', i))) AS published
FROM generate_series(5, 8) i;
COMMIT;
SELECT mq.relay() AS relayed;
SELECT payload FROM mq.pop('ot_q', 10);

--
-- the direct INSERT into mq.outbox (Debezium's outbox pattern) behaves
-- the same
--
INSERT INTO mq.outbox (aggregatetype, aggregateid, type, payload, headers)
VALUES ('ot_q', 'order-7', 'OrderCreated', '{"n": 9}', '{"h": "x"}')
RETURNING id AS eid2 \gset
INSERT INTO mq.outbox (aggregatetype, payload) VALUES ('ot_q', '{"n": 10}');
BEGIN;
INSERT INTO mq.outbox (aggregatetype, payload) VALUES ('ot_q', '{"n": 11}');
ROLLBACK;
SELECT count(*) AS popped FROM mq.pop('ot_q', 10);
SELECT mq.relay() AS relayed;
SELECT payload, headers - 'mq_event_id' AS headers,
       headers->>'mq_event_id' = :'eid2' AS event_id_travels,
       headers->>'mq_event_id' IS NOT NULL AS has_event_id
FROM mq.pop('ot_q', 10);

--
-- topics: create, list
--
SELECT mq.create_topic('ot_t', 4);
SELECT mq.create_topic('ot_one');
SELECT mq.create_topic('ot_spread', partitions => 4, retention => '1 day');
SELECT topic_name, partitions, retention = interval '7 days' AS retention_7_days,
       retention = interval '1 day' AS retention_1_day, created_at <= now() AS has_created_at
FROM mq.list_topics() WHERE topic_name LIKE 'ot\_%' ORDER BY topic_name;
SELECT partition, start_offset, end_offset, records
FROM mq.topic_stats WHERE topic_name = 'ot_t' ORDER BY partition;

--
-- mq.murmur2 is Kafka's murmur2.  Vectors from Apache Kafka's
-- UtilsTest.testMurmur2() (apache/kafka,
-- clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java):
-- "21" -973932308, "foobar" -790332482, "a-little-bit-long-string"
-- -985981536, "a-little-bit-longer-string" -1486304829,
-- "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8" -58897971,
-- bytes {'a','b','c'} 479470107.
--
SELECT v.s, mq.murmur2(v.b) AS murmur2, v.kafka, mq.murmur2(v.b) = v.kafka AS ok
FROM (VALUES ('21', convert_to('21', 'UTF8'), -973932308),
             ('foobar', convert_to('foobar', 'UTF8'), -790332482),
             ('a-little-bit-long-string', convert_to('a-little-bit-long-string', 'UTF8'), -985981536),
             ('a-little-bit-longer-string', convert_to('a-little-bit-longer-string', 'UTF8'), -1486304829),
             ('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8',
              convert_to('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', 'UTF8'), -58897971),
             ('{a,b,c}', '\x616263'::bytea, 479470107)) v(s, b, kafka);
-- lengths 0 and 1 (the Kafka vectors have none with length % 4 = 1) and a
-- 2-byte UTF-8 key: values from a port of Kafka's Utils.murmur2 that
-- reproduces all the vectors above
SELECT v.s, mq.murmur2(v.b) AS murmur2, mq.murmur2(v.b) = v.expected AS ok
FROM (VALUES ('', ''::bytea, 275646681),
             ('a', convert_to('a', 'UTF8'), -1563381124),
             ('e-acute', convert_to(U&'\00e9', 'UTF8'), 186971271)) v(s, b, expected);
SELECT mq.murmur2(NULL) IS NULL AS null_in_null_out;

--
-- keyed records: partition = (murmur2(key) & 0x7fffffff) % partitions;
-- offsets dense from 0 per partition, in commit order
--
DO $$
BEGIN
    FOR i IN 1..8 LOOP
        PERFORM mq.publish('ot_t', jsonb_build_object('i', i), key => 'user-' || i);
        COMMIT;
    END LOOP;
END $$;
SELECT mq.relay() AS relayed;
SELECT mq.create_group('ot_t', 'g_early', 'earliest');
SELECT mq.create_group('ot_t', 'g_late');
-- expected partitions (Kafka's formula): user-1 0, user-2 0, user-3 3,
-- user-4 3, user-5 2, user-6 1, user-7 0, user-8 1
SELECT partition, "offset", key, payload,
       partition = (mq.murmur2(convert_to(key, 'UTF8')) & 2147483647) % 4 AS kafka_partition,
       headers - 'mq_event_id' AS headers, message_id IS NOT NULL AS has_message_id, published_at <= now() AS has_published_at
FROM mq.fetch('ot_t', 'g_early', 100) ORDER BY partition, "offset";
-- returned in offset order within each partition
SELECT bool_and(in_order) AS offset_order_per_partition, count(*) AS fetched
FROM (SELECT coalesce("offset" > lag("offset") OVER (PARTITION BY partition ORDER BY ord), true) AS in_order
      FROM mq.fetch('ot_t', 'g_early', 100)
           WITH ORDINALITY f(partition, "offset", key, payload, headers, message_id, published_at, ord)) s;
-- dense offsets from 0
SELECT partition, count(*) AS records,
       min("offset") = 0 AND max("offset") = count(*) - 1 AND count(DISTINCT "offset") = count(*) AS dense
FROM mq.fetch('ot_t', 'g_early', 100) GROUP BY partition ORDER BY partition;
-- 'latest': the group starts at the end
SELECT count(*) AS late_fetched FROM mq.fetch('ot_t', 'g_late', 100);
SELECT partition, start_offset, end_offset, records
FROM mq.topic_stats WHERE topic_name = 'ot_t' ORDER BY partition;

--
-- the event id is the record's message_id; headers travel; one key keeps
-- its order within a transaction
--
SELECT mq.publish('ot_t', '{"i": 9}', key => 'user-1', headers => '{"h": "9"}') AS eid3 \gset
BEGIN;
SELECT count(mq.publish('ot_t', jsonb_build_object('i', i), key => 'user-5')) AS published
FROM generate_series(10, 12) i;
COMMIT;
SELECT mq.relay() AS relayed;
SELECT partition, "offset", key, payload, headers - 'mq_event_id' AS headers,
       message_id = :'eid3' AS is_event_id
FROM mq.fetch('ot_t', 'g_late', 100) ORDER BY partition, "offset";

--
-- fetch again without committing: the same records; max_messages caps
--
SELECT count(*) AS fetched, string_agg(partition || ':' || "offset", ' ' ORDER BY partition, "offset") AS records
FROM mq.fetch('ot_t', 'g_early', 100);
SELECT count(*) AS fetched, string_agg(partition || ':' || "offset", ' ' ORDER BY partition, "offset") AS records
FROM mq.fetch('ot_t', 'g_early', 100);
SELECT count(*) AS fetched FROM mq.fetch('ot_t', 'g_early', 3);
SELECT count(*) AS fetched FROM mq.fetch('ot_t', 'g_early', 1);

--
-- commit: the committed offset is the next to read; groups are independent
--
SELECT mq.commit('ot_t', 'g_early', 0, 2);
SELECT partition, "offset", key FROM mq.fetch('ot_t', 'g_early', 100)
WHERE partition = 0 ORDER BY "offset";
SELECT partition, committed_offset, end_offset, lag, last_commit_at IS NOT NULL AS has_commit_time
FROM mq.consumer_lag WHERE topic_name = 'ot_t' AND group_name = 'g_early' ORDER BY partition;
SELECT partition, committed_offset, end_offset, lag
FROM mq.consumer_lag WHERE topic_name = 'ot_t' AND group_name = 'g_late' ORDER BY partition;
-- commit named, with member NULL
SELECT mq.commit(topic_name => 'ot_t', group_name => 'g_early', partition => 3, next_offset => 1, member => NULL);
SELECT partition, "offset", key FROM mq.fetch('ot_t', 'g_early', 100)
WHERE partition = 3 ORDER BY "offset";

--
-- commit inside the business transaction: a rollback keeps the offset
-- and the effects out; a commit keeps both
--
CREATE TABLE ot_effects (key text, payload jsonb);
BEGIN;
INSERT INTO ot_effects SELECT key, payload FROM mq.fetch('ot_t', 'g_early', 100) WHERE partition = 1;
SELECT mq.commit('ot_t', 'g_early', 1, 2);
SELECT committed_offset AS own_committed_offset FROM mq.consumer_lag
WHERE topic_name = 'ot_t' AND group_name = 'g_early' AND partition = 1;
ROLLBACK;
SELECT count(*) AS effects FROM ot_effects;
SELECT partition, committed_offset, lag FROM mq.consumer_lag
WHERE topic_name = 'ot_t' AND group_name = 'g_early' AND partition = 1;
SELECT partition, "offset", key FROM mq.fetch('ot_t', 'g_early', 100) WHERE partition = 1 ORDER BY "offset";
BEGIN;
INSERT INTO ot_effects SELECT key, payload FROM mq.fetch('ot_t', 'g_early', 100) WHERE partition = 1;
SELECT mq.commit('ot_t', 'g_early', 1, 2);
COMMIT;
SELECT key, payload FROM ot_effects ORDER BY key;
SELECT partition, committed_offset, lag FROM mq.consumer_lag
WHERE topic_name = 'ot_t' AND group_name = 'g_early' AND partition = 1;
SELECT count(*) AS fetched FROM mq.fetch('ot_t', 'g_early', 100) WHERE partition = 1;

--
-- seek: to an offset, to 'earliest' / 'latest', to a time; one partition
-- or all
--
SELECT mq.seek('ot_t', 'g_early', partition => 0, to_offset => 1);
SELECT partition, "offset", key FROM mq.fetch('ot_t', 'g_early', 100) WHERE partition = 0 ORDER BY "offset";
SELECT mq.seek('ot_t', 'g_early', to_position => 'latest');
SELECT count(*) AS fetched FROM mq.fetch('ot_t', 'g_early', 100);
SELECT partition, committed_offset, end_offset, lag
FROM mq.consumer_lag WHERE topic_name = 'ot_t' AND group_name = 'g_early' ORDER BY partition;
SELECT mq.seek('ot_t', 'g_early', to_position => 'earliest');
SELECT partition, count(*) AS fetched, min("offset") AS first_offset
FROM mq.fetch('ot_t', 'g_early', 100) GROUP BY partition ORDER BY partition;
SELECT mq.seek('ot_t', 'g_early', 2, to_position => 'latest');
SELECT partition, committed_offset, lag
FROM mq.consumer_lag WHERE topic_name = 'ot_t' AND group_name = 'g_early' ORDER BY partition;
-- to a time: the first record published at or after it
SELECT mq.create_group('ot_one', 'g_one', 'earliest');
SELECT mq.publish('ot_one', '{"batch": "a", "n": 1}') IS NOT NULL AS published;
SELECT mq.publish('ot_one', '{"batch": "a", "n": 2}') IS NOT NULL AS published;
SELECT mq.relay() AS relayed;
SELECT pg_sleep(0.05);
SELECT clock_timestamp() AS t_mid \gset
SELECT pg_sleep(0.05);
SELECT mq.publish('ot_one', '{"batch": "b", "n": 3}') IS NOT NULL AS published;
SELECT mq.publish('ot_one', '{"batch": "b", "n": 4}') IS NOT NULL AS published;
SELECT mq.relay() AS relayed;
SELECT "offset", payload, published_at >= :'t_mid' AS after_t_mid FROM mq.fetch('ot_one', 'g_one', 100) ORDER BY "offset";
SELECT mq.seek('ot_one', 'g_one', to_time => :'t_mid');
SELECT "offset", payload FROM mq.fetch('ot_one', 'g_one', 100) ORDER BY "offset";
SELECT mq.seek('ot_one', 'g_one', partition => 0, to_time => '2000-01-01 00:00:00+00');
SELECT min("offset") AS first_offset, count(*) AS fetched FROM mq.fetch('ot_one', 'g_one', 100);
SELECT mq.seek('ot_one', 'g_one', to_time => now() + interval '1 day');
SELECT count(*) AS fetched FROM mq.fetch('ot_one', 'g_one', 100);
SELECT committed_offset, end_offset, lag FROM mq.consumer_lag WHERE topic_name = 'ot_one' AND group_name = 'g_one';

--
-- long poll: with nothing to read, fetch waits its whole wait
--
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) AS fetched FROM mq.fetch('ot_one', 'g_one', wait => '0.3 seconds');
SELECT clock_timestamp() - :'t0'::timestamptz >= interval '0.3 seconds' AS waited,
       clock_timestamp() - :'t0'::timestamptz < interval '5 seconds' AS not_too_long;

--
-- records without a key spread over the partitions
--
SELECT mq.create_group('ot_spread', 'g_s', 'earliest');
DO $$
BEGIN
    FOR i IN 1..8 LOOP
        PERFORM mq.publish('ot_spread', jsonb_build_object('i', i));
        COMMIT;
    END LOOP;
END $$;
SELECT mq.relay() AS relayed;
SELECT count(*) AS records, count(DISTINCT partition) >= 2 AS spread, bool_and(key IS NULL) AS keyless
FROM mq.fetch('ot_spread', 'g_s', 100);
SELECT bool_and(dense) AS dense, sum(n) AS records
FROM (SELECT min("offset") = 0 AND max("offset") = count(*) - 1 AND count(DISTINCT "offset") = count(*) AS dense,
             count(*) AS n
      FROM mq.fetch('ot_spread', 'g_s', 100) GROUP BY partition) s;
SELECT sum(records) AS records, sum(end_offset) AS end_offsets, min(start_offset) AS start_offset
FROM mq.topic_stats WHERE topic_name = 'ot_spread';

--
-- an exchange destination: one outbox row, delivered to a queue and a
-- topic with the same event id
--
SELECT mq.create_exchange('ot_x', 'fanout');
SELECT mq.bind('ot_x', 'ot_q');
SELECT mq.bind('ot_x', 'ot_one');
SELECT mq.seek('ot_one', 'g_one', to_position => 'latest');
SELECT mq.publish('ot_x', '{"via": "exchange"}', key => 'kx') AS eid4 \gset
SELECT mq.relay() AS relayed;
SELECT payload, headers->>'mq_event_id' = :'eid4' AS event_id_travels FROM mq.pop('ot_q', 10);
SELECT "offset", key, payload, message_id = :'eid4' AS is_event_id FROM mq.fetch('ot_one', 'g_one', 100);
-- the direct INSERT routes through the exchange too
INSERT INTO mq.outbox (aggregatetype, aggregateid, payload) VALUES ('ot_x', 'ky', '{"via": "insert"}')
RETURNING id AS eid5 \gset
SELECT mq.relay() AS relayed;
SELECT payload, headers->>'mq_event_id' = :'eid5' AS event_id_travels FROM mq.pop('ot_q', 10);
SELECT "offset", key, payload, message_id = :'eid5' AS is_event_id FROM mq.fetch('ot_one', 'g_one', 100)
ORDER BY "offset";

--
-- retention drops old records (by dropping segments, not by DELETE):
-- start_offset moves forward, fetch no longer finds them, offsets go on
--
SELECT mq.create_topic('ot_ret', 1, '1 second');
SELECT mq.create_group('ot_ret', 'g_r', 'earliest');
SELECT count(mq.publish('ot_ret', jsonb_build_object('i', i))) AS published FROM generate_series(1, 20) i;
SELECT mq.relay() AS relayed;
SELECT start_offset, end_offset, records FROM mq.topic_stats WHERE topic_name = 'ot_ret';
-- count every row deleted from mq's record storage (the tables with an
-- "offset" column) while retention runs
CREATE TABLE ot_ret_deletes (n bigint);
INSERT INTO ot_ret_deletes VALUES (0);
-- (mq_guard refuses triggers on mq's tables; a superuser may lift it)
ALTER EVENT TRIGGER mq_guard DISABLE;
CREATE FUNCTION ot_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ot_ret_deletes SET n = n + 1;
    RETURN NULL;
END $$;
DO $$
DECLARE
    r regclass;
BEGIN
    FOR r IN SELECT c.oid FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
             WHERE c.relnamespace = 'mq'::regnamespace AND c.relkind IN ('r', 'p')
               AND NOT c.relispartition AND a.attname = 'offset' AND NOT a.attisdropped
    LOOP
        EXECUTE format('CREATE TRIGGER ot_count_delete AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION ot_count_delete()', r);
    END LOOP;
END $$;
ALTER EVENT TRIGGER mq_guard ENABLE;
SELECT count(DISTINCT tgrelid) > 0 AS watching FROM pg_trigger WHERE tgname = 'ot_count_delete';
DO $$
BEGIN
    FOR i IN 1..60 LOOP
        PERFORM pg_sleep(0.25);
        PERFORM mq.maintain();
        COMMIT;
        EXIT WHEN (SELECT start_offset FROM mq.topic_stats WHERE topic_name = 'ot_ret') >= 20;
    END LOOP;
END $$;
SELECT start_offset, end_offset, records FROM mq.topic_stats WHERE topic_name = 'ot_ret';
SELECT count(*) AS fetched FROM mq.fetch('ot_ret', 'g_r', 100);
SELECT n AS rows_deleted FROM ot_ret_deletes;
DO $$
DECLARE
    r regclass;
BEGIN
    FOR r IN SELECT DISTINCT tgrelid FROM pg_trigger WHERE tgname = 'ot_count_delete' AND tgparentid = 0 LOOP
        EXECUTE format('DROP TRIGGER ot_count_delete ON %s', r);
    END LOOP;
END $$;
SELECT mq.publish('ot_ret', '{"i": 21}') IS NOT NULL AS published;
SELECT mq.relay() AS relayed;
SELECT "offset", payload FROM mq.fetch('ot_ret', 'g_r', 100);
SELECT mq.seek('ot_ret', 'g_r', to_position => 'earliest');
SELECT "offset", payload FROM mq.fetch('ot_ret', 'g_r', 100);

--
-- errors
--
-- unknown topic or group: 42704
SELECT mq.create_group('ot_nope', 'g');
SELECT * FROM mq.fetch('ot_nope', 'g');
SELECT mq.commit('ot_nope', 'g', 0, 1);
SELECT mq.seek('ot_nope', 'g', to_position => 'earliest');
SELECT * FROM mq.fetch('ot_t', 'g_nope');
SELECT mq.commit('ot_t', 'g_nope', 0, 1);
SELECT mq.seek('ot_t', 'g_nope', to_position => 'earliest');
-- unknown exchange: 42704
SELECT mq.bind('ot_x_nope', 'ot_q');
SELECT mq.unbind('ot_x_nope', 'ot_q');
-- dropping what does not exist: false
SELECT mq.drop_topic('ot_nope') AS dropped;
SELECT mq.drop_group('ot_t', 'g_nope') AS dropped;
SELECT mq.drop_exchange('ot_x_nope') AS dropped;
-- bad partitions, start_at, exchange type: 22023
SELECT mq.create_topic('ot_bad', 0);
SELECT mq.create_topic('ot_bad', -1);
SELECT mq.create_group('ot_t', 'g_bad', 'middle');
SELECT mq.create_exchange('ot_bad', 'fancy');
-- a queue, a topic and an exchange may not share a name: 42710
SELECT mq.create_topic('ot_t');
SELECT mq.create_topic('ot_q');
SELECT mq.create_topic('ot_q_dlq');
SELECT mq.create_topic('ot_x');
SELECT mq.create_queue('ot_t');
SELECT mq.create_queue('ot_x');
SELECT mq.create_exchange('ot_t', 'direct');
SELECT mq.create_exchange('ot_q', 'fanout');
SELECT mq.create_exchange('ot_x', 'fanout');
SELECT mq.create_group('ot_t', 'g_early');
-- negative offset: 22023
SELECT mq.commit('ot_t', 'g_early', 0, -1);
SELECT mq.seek('ot_t', 'g_early', 0, to_offset => -1);
-- partition out of range: 22023
SELECT mq.commit('ot_t', 'g_early', 4, 0);
SELECT mq.commit('ot_t', 'g_early', -1, 0);
SELECT mq.seek('ot_t', 'g_early', 4, to_offset => 0);
SELECT mq.seek('ot_t', 'g_early', -1, to_position => 'earliest');
-- seek needs exactly one target: 22023
SELECT mq.seek('ot_t', 'g_early');
SELECT mq.seek('ot_t', 'g_early', 0);
SELECT mq.seek('ot_t', 'g_early', to_offset => 0, to_position => 'earliest');
SELECT mq.seek('ot_t', 'g_early', to_offset => 0, to_time => now());
SELECT mq.seek('ot_t', 'g_early', to_time => now(), to_position => 'latest');
SELECT mq.seek('ot_t', 'g_early', to_position => 'middle');
-- bad fetch arguments: 22023, and 22004 for a NULL wait
SELECT * FROM mq.fetch('ot_t', 'g_early', 0);
SELECT * FROM mq.fetch('ot_t', 'g_early', wait => '-1 second');
SELECT * FROM mq.fetch('ot_t', 'g_early', wait => NULL);
-- NULL and invalid names: 22004, 42602
SELECT mq.create_topic(NULL);
SELECT mq.create_topic('a b');
SELECT mq.create_topic('x''; DROP TABLE ot_effects; --');
SELECT mq.create_exchange('a b', 'direct');
-- nothing changed
SELECT topic_name, partitions FROM mq.list_topics() WHERE topic_name LIKE 'ot\_%' ORDER BY topic_name;
SELECT partition, committed_offset FROM mq.consumer_lag
WHERE topic_name = 'ot_t' AND group_name = 'g_early' ORDER BY partition;
SELECT count(*) AS effects FROM ot_effects;

--
-- auto_commit: the fetch commits past what it returns, in the caller's
-- transaction (a rollback undoes it); with a member, on its partitions
--
SELECT mq.create_topic('ot_ac', 2);
SELECT mq.create_group('ot_ac', 'g', 'earliest');
SELECT count(mq.publish('ot_ac', jsonb_build_object('i', i), key => 'k' || i)) AS published
FROM generate_series(1, 10) i;
SELECT mq.relay() AS relayed;
SELECT count(*) AS fetched FROM mq.fetch('ot_ac', 'g', 4, auto_commit => true);
SELECT partition, committed_offset, lag FROM mq.consumer_lag
WHERE topic_name = 'ot_ac' AND group_name = 'g' ORDER BY partition;
-- the next fetch continues after them: no record twice, none skipped
SELECT count(*) AS fetched FROM mq.fetch('ot_ac', 'g', 4, auto_commit => true);
BEGIN;
SELECT count(*) AS fetched_then_rolled_back FROM mq.fetch('ot_ac', 'g', 100, auto_commit => true);
ROLLBACK;
SELECT array_agg((payload->>'i')::int ORDER BY (payload->>'i')::int) AS rest
FROM mq.fetch('ot_ac', 'g', 100, auto_commit => true);
SELECT sum(lag) AS lag_left FROM mq.consumer_lag WHERE topic_name = 'ot_ac' AND group_name = 'g';
SELECT count(*) AS nothing_new FROM mq.fetch('ot_ac', 'g', 100, auto_commit => true);
-- with a member: it commits on the partitions it holds
SELECT count(mq.publish('ot_ac', jsonb_build_object('i', i), key => 'k' || i)) AS published
FROM generate_series(11, 14) i;
SELECT mq.relay() AS relayed;
SELECT count(*) AS member_fetched FROM mq.fetch('ot_ac', 'g', 100, member => 'm1', auto_commit => true);
SELECT sum(lag) AS lag_left FROM mq.consumer_lag WHERE topic_name = 'ot_ac' AND group_name = 'g';
SELECT mq.drop_topic('ot_ac') AS dropped;

--
-- drop: groups, topics, exchanges
--
SELECT mq.drop_group('ot_t', 'g_late') AS dropped;
SELECT mq.drop_group('ot_t', 'g_late') AS dropped_again;
SELECT * FROM mq.fetch('ot_t', 'g_late');
SELECT group_name FROM mq.consumer_lag WHERE topic_name = 'ot_t' GROUP BY group_name ORDER BY group_name;
SELECT mq.drop_exchange('ot_x') AS dropped;
SELECT mq.drop_exchange('ot_x') AS dropped_again;
SELECT mq.drop_topic('ot_spread') AS dropped;
SELECT mq.drop_topic('ot_spread') AS dropped_again;
SELECT * FROM mq.fetch('ot_spread', 'g_s');
SELECT count(*) AS stats_rows FROM mq.topic_stats WHERE topic_name = 'ot_spread';
-- the name is free again, for any kind
SELECT mq.create_queue('ot_spread');
SELECT mq.drop_queue('ot_spread') AS dropped;
SELECT mq.drop_topic('ot_t') AS dropped;
SELECT mq.drop_topic('ot_one') AS dropped;
SELECT mq.drop_topic('ot_ret') AS dropped;
SELECT mq.drop_queue('ot_q') AS dropped;
SELECT count(*) AS topics_left FROM mq.list_topics() WHERE topic_name LIKE 'ot\_%';
SELECT count(*) AS in_outbox FROM mq.outbox;
DROP TABLE ot_effects, ot_ret_deletes;
DROP FUNCTION ot_count_delete();

ALTER SYSTEM RESET mq.worker_enabled;
SELECT pg_reload_conf();
