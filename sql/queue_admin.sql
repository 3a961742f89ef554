--
-- queue_admin: create_queue, drop_queue, purge_queue, list_queues.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
\set stats 'SELECT ready, in_flight, delayed, total FROM mq.queue_stats WHERE queue_name = '
\set list 'SELECT queue_name, (settings->>''visibility_timeout'')::interval AS visibility_timeout, (settings->>''max_attempts'')::integer AS max_attempts, created_at <= now() AS created_in_past FROM mq.list_queues() WHERE queue_name LIKE ''adm\\_%'' AND queue_name NOT LIKE ''%\\_dlq'' ORDER BY queue_name;'

--
-- create_queue: defaults, positional and named arguments
--
SELECT mq.create_queue('adm_a');
SELECT mq.create_queue('adm_b', '2 minutes', 3);
SELECT mq.create_queue(queue_name => 'adm_c', max_attempts => 10, visibility_timeout => '1 hour');
SELECT mq.create_queue('adm_d', '0', 1);
SELECT mq.create_queue('adm_0_queue_with_digits_9');
:list
-- list_queues: one row per queue, sorted by name; the exact columns
SELECT count(*) AS n, count(DISTINCT queue_name) AS n_distinct FROM mq.list_queues() WHERE queue_name LIKE 'adm\_%' AND queue_name NOT LIKE '%\_dlq';
-- sorted by name
SELECT bool_and(queue_name >= prev) AS sorted FROM (SELECT queue_name, lag(queue_name, 1, '') OVER (ORDER BY ord) AS prev FROM mq.list_queues() WITH ORDINALITY AS l(queue_name, created_at, settings, ord)) s;
SELECT jsonb_typeof(settings) AS settings_type FROM mq.list_queues() WHERE queue_name = 'adm_a';
SELECT * FROM mq.list_queues() WHERE false;
-- a fresh queue has empty stats
:stats 'adm_a';

--
-- if_not_exists: a NOTICE, and the existing queue is left as it was
--
SELECT mq.create_queue('adm_a', if_not_exists => true);
SELECT mq.create_queue('adm_b', '9 hours', 9, true);
SELECT mq.create_queue('adm_e', if_not_exists => true);
:list

--
-- purge_queue: deletes ready, leased and delayed messages, returns the count
--
SELECT count(*) AS sent FROM mq.send_batch('adm_c', ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[]);
SELECT mq.send('adm_c', '{"n": 4}', delay => '1 hour') IS NOT NULL AS sent_delayed;
SELECT count(*) AS polled FROM mq.poll('adm_c');
SELECT mq.send('adm_a', '{"other": true}') IS NOT NULL AS sent_elsewhere;
:stats 'adm_c';
SELECT mq.purge_queue('adm_c') AS purged;
:stats 'adm_c';
SELECT mq.purge_queue('adm_c') AS purged_again;
-- the queue is still there and usable; other queues were not touched
SELECT mq.send('adm_c', '{"n": 5}') IS NOT NULL AS sent;
SELECT payload FROM mq.poll('adm_c', 10);
:stats 'adm_a';
-- a rolled-back purge deletes nothing
BEGIN;
SELECT mq.purge_queue('adm_a') AS purged;
ROLLBACK;
:stats 'adm_a';

--
-- drop_queue: true once, then false; its messages go with it
--
SELECT array_agg(id) AS b_ids FROM mq.send_batch('adm_b', ARRAY['{"b": 1}', '{"b": 2}']::jsonb[]) AS s(id) \gset
SELECT mq.send('adm_b', '{"b": 3}', delay => '1 hour') AS b3 \gset
SELECT count(*) AS polled FROM mq.poll('adm_b');
-- a rolled-back drop keeps queue and messages
BEGIN;
SELECT mq.drop_queue('adm_b') AS dropped;
ROLLBACK;
:stats 'adm_b';
SELECT mq.drop_queue('adm_b') AS dropped;
SELECT mq.drop_queue('adm_b') AS dropped_again;
SELECT mq.drop_queue('adm_never_existed') AS dropped_unknown;
SELECT count(*) AS listed FROM mq.list_queues() WHERE queue_name = 'adm_b';
SELECT count(*) AS in_stats FROM mq.queue_stats WHERE queue_name = 'adm_b';
-- the messages are deleted from storage, not just hidden (internal table)
SELECT count(*) AS stored FROM mq.queue_message WHERE msg_id = ANY (:'b_ids'::bigint[] || :b3::bigint);
-- a dropped queue is unknown
SELECT mq.send('adm_b', '{"b": 4}');
SELECT * FROM mq.poll('adm_b');
-- re-created under the same name, it starts empty
SELECT mq.create_queue('adm_b');
:stats 'adm_b';
SELECT count(*) AS polled FROM mq.poll('adm_b', 10, '0');
SELECT count(*) AS popped FROM mq.pop('adm_b', 10);
:list
-- drop in the same transaction as create
BEGIN;
SELECT mq.create_queue('adm_tmp');
SELECT mq.send('adm_tmp', '{"t": 1}') IS NOT NULL AS sent;
SELECT mq.drop_queue('adm_tmp') AS dropped;
SELECT mq.send('adm_tmp', '{"t": 2}');
ROLLBACK;
SELECT count(*) AS listed FROM mq.list_queues() WHERE queue_name = 'adm_tmp';

-- clean up
SELECT queue_name, mq.drop_queue(queue_name) AS dropped
FROM mq.list_queues() WHERE queue_name LIKE 'adm\_%' AND queue_name NOT LIKE '%\_dlq' ORDER BY queue_name;
SELECT count(*) AS left_over FROM mq.list_queues() WHERE queue_name LIKE 'adm\_%';
