--
-- dedup_inbox: producer-side deduplication (send / send_batch with dedup
-- keys) and the consumer-side inbox (process_once).
--
-- A dedup key seen within the queue's dedup_window stands for the message
-- first sent with it: a duplicate send returns that id and enqueues
-- nothing, even after the message was acked.  Output is deterministic:
-- ids are only ever compared.
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
\set stats 'SELECT ready, in_flight, delayed, total, total_sent FROM mq.queue_stats WHERE queue_name = '
SELECT mq.create_queue('dd_q');
SELECT mq.create_queue('dd_q2');

--
-- send with a dedup key
--
SELECT mq.send('dd_q', '{"v": 1}', dedup_key => 'k1') AS k1 \gset
SELECT mq.send('dd_q', '{"v": 2}', dedup_key => 'k1') = :k1 AS dup_same_id;
SELECT mq.send('dd_q', '{"v": 3}', '{"h": 1}', delay => '1 hour', dedup_key => 'k1') = :k1 AS dup_same_id;
:stats 'dd_q';
-- the first payload is the one enqueued
SELECT msg_id = :k1 AS is_k1, payload, headers FROM mq.poll('dd_q', 10);
-- another key, no key, another queue: new messages
SELECT mq.send('dd_q', '{"v": 4}', dedup_key => 'k2') AS k2 \gset
SELECT :k2 <> :k1 AS new_id;
SELECT mq.send('dd_q', '{"v": 5}') AS n1 \gset
SELECT mq.send('dd_q', '{"v": 5}') AS n2 \gset
SELECT :n1 <> :n2 AS no_key_no_dedup;
SELECT mq.send('dd_q2', '{"v": 6}', dedup_key => 'k1') AS other_k1 \gset
SELECT :other_k1 <> :k1 AS keys_are_per_queue;
-- keys are compared exactly
SELECT mq.send('dd_q', '{"v": 7}', dedup_key => 'K1') <> :k1 AS case_sensitive;
SELECT mq.send('dd_q', '{"v": 8}', dedup_key => 'k1 ') <> :k1 AS no_trim;
SELECT mq.send('dd_q', '{"v": 9}', dedup_key => '') AS empty_key \gset
SELECT mq.send('dd_q', '{"v": 10}', dedup_key => '') = :empty_key AS empty_key_dedups;
:stats 'dd_q';
:stats 'dd_q2';

--
-- after the original was acked: still a duplicate, nothing enqueued
--
SELECT mq.ack('dd_q', :k1) AS acked;
SELECT mq.send('dd_q', '{"v": 11}', dedup_key => 'k1') = :k1 AS acked_dup_same_id;
SELECT count(*) AS k1_enqueued FROM mq.queue_message WHERE msg_id = :k1 OR payload = '{"v": 11}';
-- also after it was dead-lettered
SELECT mq.reject('dd_q', :k2) AS rejected;
SELECT mq.send('dd_q', '{"v": 12}', dedup_key => 'k2') = :k2 AS dead_dup_same_id;
SELECT count(*) AS v12_enqueued FROM mq.queue_message WHERE payload = '{"v": 12}';

--
-- within one transaction; and a rolled-back send does not claim its key
--
BEGIN;
SELECT mq.send('dd_q', '{"v": 20}', dedup_key => 'k3') AS k3 \gset
SELECT mq.send('dd_q', '{"v": 21}', dedup_key => 'k3') = :k3 AS same_xact_same_id;
COMMIT;
SELECT count(*) AS k3_enqueued FROM mq.queue_message WHERE payload IN ('{"v": 20}', '{"v": 21}');
BEGIN;
SELECT mq.send('dd_q', '{"v": 30}', dedup_key => 'k4') AS k4_rolled_back \gset
ROLLBACK;
SELECT mq.send('dd_q', '{"v": 31}', dedup_key => 'k4') AS k4 \gset
SELECT :k4 <> :k4_rolled_back AS new_id_after_rollback;
SELECT payload FROM mq.queue_message WHERE msg_id IN (:k4, :k4_rolled_back);
-- a key first used in a rolled-back subtransaction
BEGIN;
SAVEPOINT s;
SELECT mq.send('dd_q', '{"v": 40}', dedup_key => 'k5') AS k5_rolled_back \gset
ROLLBACK TO SAVEPOINT s;
SELECT mq.send('dd_q', '{"v": 41}', dedup_key => 'k5') <> :k5_rolled_back AS new_id_after_savepoint;
COMMIT;
SELECT payload FROM mq.queue_message WHERE payload IN ('{"v": 40}', '{"v": 41}');
-- counted: 10 messages sent so far (the rolled-back ones are not)
:stats 'dd_q';

--
-- send_batch with dedup keys: per element, ids in input order
--
SELECT mq.purge_queue('dd_q') >= 0 AS purged;
SELECT array_agg(id ORDER BY n) AS ids
FROM mq.send_batch('dd_q',
       ARRAY['{"b": 1}', '{"b": 2}', '{"b": 3}', '{"b": 4}', '{"b": 5}', '{"b": 6}']::jsonb[],
       dedup_keys => ARRAY['k1', 'b1', 'b1', NULL, NULL, 'k3'])
     WITH ORDINALITY AS s(id, n) \gset
SELECT cardinality(:'ids'::bigint[]) AS n_ids,
       (:'ids'::bigint[])[1] = :k1 AS old_key_old_id,
       (:'ids'::bigint[])[2] = (:'ids'::bigint[])[3] AS dup_in_batch,
       (:'ids'::bigint[])[4] <> (:'ids'::bigint[])[5] AS null_keys_no_dedup,
       (:'ids'::bigint[])[6] = :k3 AS k3_old_id,
       (SELECT count(DISTINCT x) FROM unnest(:'ids'::bigint[]) x) AS n_distinct;
-- only b1 (first payload), and the two keyless ones, were enqueued
SELECT payload, msg_id = ANY (:'ids'::bigint[]) AS id_returned
FROM mq.poll('dd_q', 10) ORDER BY payload->>'b';
-- the batch's key b1 now dedups single sends, too
SELECT mq.send('dd_q', '{"v": 50}', dedup_key => 'b1') = (:'ids'::bigint[])[2] AS batch_key_dedups;
-- all keys NULL: no dedup at all
SELECT count(DISTINCT id) AS n_distinct
FROM mq.send_batch('dd_q', ARRAY['{"c": 1}', '{"c": 1}']::jsonb[],
                   dedup_keys => ARRAY[NULL, NULL]::text[]) AS id;
-- a whole batch of duplicates enqueues nothing
SELECT total AS before FROM mq.queue_stats WHERE queue_name = 'dd_q' \gset
SELECT array_agg(id ORDER BY n) = ARRAY[:k1, (:'ids'::bigint[])[2]] AS all_dups
FROM mq.send_batch('dd_q', ARRAY['{"d": 1}', '{"d": 2}']::jsonb[],
                   dedup_keys => ARRAY['k1', 'b1']) WITH ORDINALITY AS s(id, n);
SELECT total - :before AS added FROM mq.queue_stats WHERE queue_name = 'dd_q';
-- errors
SELECT pg_temp.err($$SELECT mq.send_batch('dd_q', ARRAY['{"e": 1}', '{"e": 2}']::jsonb[],
                                          dedup_keys => ARRAY['x'])$$) AS length_mismatch;
SELECT pg_temp.err($$SELECT mq.send_batch('dd_q', ARRAY['{"e": 1}']::jsonb[],
                                          dedup_keys => ARRAY[ARRAY['x']])$$) AS two_dims;
SELECT pg_temp.err($$SELECT mq.send('dd_nope', '{"e": 1}', dedup_key => 'x')$$) AS unknown_queue;
SELECT count(*) AS e_enqueued FROM mq.queue_message WHERE payload ? 'e';

--
-- the window: a key older than dedup_window no longer dedups; maintain
-- removes expired keys
--
SELECT mq.create_queue('dd_short', dedup_window => '1 second');
SELECT mq.send('dd_short', '{"w": 1}', dedup_key => 'w') AS w1 \gset
SELECT mq.send('dd_short', '{"w": 2}', dedup_key => 'w') = :w1 AS within_window;
SELECT count(*) AS keys FROM mq.dedup WHERE queue_id = (SELECT queue_id FROM mq.queue WHERE queue_name = 'dd_short');
SELECT pg_sleep(1.1);
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT count(*) AS keys FROM mq.dedup WHERE queue_id = (SELECT queue_id FROM mq.queue WHERE queue_name = 'dd_short');
SELECT mq.send('dd_short', '{"w": 3}', dedup_key => 'w') AS w3 \gset
SELECT :w3 <> :w1 AS new_id_after_window;
SELECT mq.send('dd_short', '{"w": 4}', dedup_key => 'w') = :w3 AS new_key_dedups;
SELECT payload FROM mq.poll('dd_short', 10) ORDER BY payload->>'w';
-- past the window but not yet removed by maintain: also a new id
SELECT mq.send('dd_short', '{"w": 5}', dedup_key => 'w2') AS w5 \gset
SELECT pg_sleep(1.1);
SELECT mq.send('dd_short', '{"w": 6}', dedup_key => 'w2') <> :w5 AS new_id_after_window;
-- the keys of other queues (5 minute window) were not removed
SELECT mq.send('dd_q', '{"v": 60}', dedup_key => 'k1') = :k1 AS k1_still_dedups;
-- alter_queue: a longer window keeps the key
SELECT mq.alter_queue('dd_short', dedup_window => '1 hour');
SELECT settings->>'dedup_window' AS dedup_window FROM mq.list_queues() WHERE queue_name = 'dd_short';
SELECT mq.send('dd_short', '{"w": 7}', dedup_key => 'w3') AS w7 \gset
SELECT pg_sleep(1.1);
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT mq.send('dd_short', '{"w": 8}', dedup_key => 'w3') = :w7 AS longer_window_dedups;
-- and a shorter one (0: no dedup window at all) lets it go
SELECT mq.alter_queue('dd_short', dedup_window => '0');
SELECT mq.send('dd_short', '{"w": 9}', dedup_key => 'w3') <> :w7 AS zero_window_new_id;

--
-- process_once: true the first time, false after; per consumer
--
SELECT mq.process_once('c1', 'm1') AS first;
SELECT mq.process_once('c1', 'm1') AS second;
SELECT mq.process_once('c2', 'm1') AS other_consumer;
SELECT mq.process_once('c1', 'm2') AS other_key;
-- only once the first transaction committed
BEGIN;
SELECT mq.process_once('c1', 'm3') AS in_xact;
SELECT mq.process_once('c1', 'm3') AS in_xact_again;
ROLLBACK;
SELECT mq.process_once('c1', 'm3') AS after_rollback;
SELECT mq.process_once('c1', 'm3') AS after_commit;
BEGIN;
SAVEPOINT s;
SELECT mq.process_once('c1', 'm4') AS in_savepoint;
ROLLBACK TO SAVEPOINT s;
SELECT mq.process_once('c1', 'm4') AS after_savepoint_rollback;
COMMIT;
SELECT mq.process_once('c1', 'm4') AS after_commit;
-- the typical use: a consumer's side effect and the inbox in one transaction
CREATE TEMP TABLE effects (k text);
SELECT mq.send('dd_q2', '{"order": 7}', dedup_key => 'order-7') AS o7 \gset
BEGIN;
INSERT INTO effects
SELECT 'order ' || (payload->>'order') FROM mq.poll('dd_q2', 10)
WHERE payload ? 'order' AND mq.process_once('billing', msg_id::text);
COMMIT;
-- redelivered (the ack was lost): the effect is not repeated
SELECT mq.extend('dd_q2', :o7, '0') IS NOT NULL AS released;
BEGIN;
INSERT INTO effects
SELECT 'order ' || (payload->>'order') FROM mq.poll('dd_q2', 10)
WHERE payload ? 'order' AND mq.process_once('billing', msg_id::text);
COMMIT;
SELECT k, count(*) FROM effects GROUP BY k;
-- errors
SELECT pg_temp.err($$SELECT mq.process_once(NULL, 'm1')$$) AS null_consumer;
SELECT pg_temp.err($$SELECT mq.process_once('c1', NULL)$$) AS null_key;
-- maintain forgets keys older than mq.process_once_retention
SET mq.process_once_retention = '1 second';
SELECT mq.process_once('c_old', 'm1') AS first;
SELECT pg_sleep(1.1);
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT mq.process_once('c_old', 'm1') AS forgotten;
SELECT mq.process_once('c1', 'm1') AS c1_m1_forgotten_too;
RESET mq.process_once_retention;

--
-- counters: duplicates are not counted as sent
--
SELECT queue_name, total_sent FROM mq.queue_stats
WHERE queue_name IN ('dd_q', 'dd_q2', 'dd_short') ORDER BY 1;

--
-- clean up
--
SELECT mq.drop_queue('dd_q');
SELECT mq.drop_queue('dd_q2');
SELECT mq.drop_queue('dd_short');
SELECT count(*) AS keys_left FROM mq.dedup d
WHERE NOT EXISTS (SELECT 1 FROM mq.queue q WHERE q.queue_id = d.queue_id);
DELETE FROM mq.processed WHERE consumer IN ('c1', 'c2', 'billing');
