--
-- send_poll_ack: producing and consuming (leased mode: every statement
-- commits on its own).
--
\set VERBOSITY default
\set SHOW_CONTEXT never
\set stats 'SELECT ready, in_flight, delayed, total, oldest_ready_age >= interval ''0'' AS has_ready_age FROM mq.queue_stats WHERE queue_name = '
SELECT mq.create_queue('spa_q');

--
-- send / poll / ack
--
SELECT mq.send('spa_q', '{"order": 1}') AS id1 \gset
SELECT mq.send('spa_q', '{"order": 2}', '{"trace": "abc"}') AS id2 \gset
SELECT :id2 > :id1 AS ids_increase;
:stats 'spa_q';
-- oldest first, attempt 1, lease = now + the queue's 30 seconds
SELECT msg_id = :id1 AS is_first, payload, headers, attempt,
       enqueued_at <= now() AS enqueued_in_past,
       visible_at >= now() + interval '30 seconds'
         AND visible_at <= clock_timestamp() + interval '30 seconds' AS lease_30s
FROM mq.poll('spa_q');
SELECT msg_id = :id2 AS is_second, payload, headers, attempt
FROM mq.poll('spa_q', 5);
-- both are leased: nothing to poll
SELECT count(*) AS polled FROM mq.poll('spa_q', 5);
:stats 'spa_q';
SELECT mq.ack('spa_q', :id1) AS acked;
SELECT mq.ack('spa_q', :id1) AS acked_twice;
SELECT mq.ack('spa_q', :id2 + 1000000) AS acked_unknown;
SELECT mq.ack('spa_q', ARRAY[:id2, :id2 + 1000000, :id1]) AS acked_count;
SELECT mq.ack('spa_q', ARRAY[]::bigint[]) AS acked_none;
:stats 'spa_q';

--
-- send_batch: ids in input order, headers per message
--
SELECT array_agg(id ORDER BY ord) AS ids
FROM mq.send_batch('spa_q',
       ARRAY['{"i": 1}', '{"i": 2}', '{"i": 3}', '{"i": 4}']::jsonb[],
       ARRAY['{"h": "a"}', NULL, '{"h": "c"}', '{"h": "d"}']::jsonb[])
     WITH ORDINALITY AS s(id, ord) \gset
SELECT cardinality(:'ids'::bigint[]) AS n_ids,
       (SELECT count(DISTINCT x) FROM unnest(:'ids'::bigint[]) x) AS n_distinct;
-- poll returns them oldest first, i.e. in input order; id k is payload k
SELECT p.ordinality AS pos, p.payload, p.headers, p.attempt,
       p.msg_id = (:'ids'::bigint[])[p.ordinality] AS id_matches
FROM mq.poll('spa_q', 10) WITH ORDINALITY AS p
ORDER BY p.ordinality;
SELECT mq.ack('spa_q', :'ids'::bigint[]) AS acked_count;
-- a batch without headers, one with a delay
SELECT count(*) AS sent FROM mq.send_batch('spa_q', ARRAY['{"j": 1}', '{"j": 2}']::jsonb[]);
SELECT count(*) AS sent FROM mq.send_batch('spa_q', ARRAY['{"k": 1}']::jsonb[], delay => '1 hour');
SELECT count(*) AS sent FROM mq.send_batch('spa_q', ARRAY[]::jsonb[]);
:stats 'spa_q';
SELECT payload, headers FROM mq.poll('spa_q', 10);
SELECT mq.purge_queue('spa_q') AS purged;

--
-- delay hides a message until it has passed; a lease hides it until it
-- expires, and the next delivery counts attempt 2
--
SELECT mq.send('spa_q', '{"late": 1}', delay => '1 hour') AS late \gset
SELECT mq.send('spa_q', '{"soon": 1}', delay => '2 seconds') AS soon \gset
SELECT mq.send('spa_q', '{"lease": 1}') AS lease \gset
:stats 'spa_q';
SELECT msg_id = :lease AS only_ready, attempt,
       visible_at >= now() + interval '2 seconds'
         AND visible_at <= clock_timestamp() + interval '2 seconds' AS lease_2s
FROM mq.poll('spa_q', 10, '2 seconds');
SELECT count(*) AS polled FROM mq.poll('spa_q', 10);
:stats 'spa_q';
SELECT pg_sleep(2.2);
-- now "soon" (sent first) and "lease" are visible; "late" is not
SELECT payload, attempt FROM mq.poll('spa_q', 10, '1 hour');
:stats 'spa_q';
SELECT mq.purge_queue('spa_q') AS purged;

--
-- visibility timeout: queue default, override per poll
--
SELECT mq.create_queue('spa_vt', visibility_timeout => '5 minutes');
SELECT count(*) AS sent FROM mq.send_batch('spa_vt', ARRAY['{"a": 1}', '{"a": 2}', '{"a": 3}']::jsonb[]);
SELECT payload,
       visible_at >= now() + interval '5 minutes'
         AND visible_at <= clock_timestamp() + interval '5 minutes' AS lease_5min
FROM mq.poll('spa_vt');
SELECT payload,
       visible_at >= now() + interval '2 hours'
         AND visible_at <= clock_timestamp() + interval '2 hours' AS lease_2h
FROM mq.poll('spa_vt', 1, '2 hours');
-- a zero lease leaves the message visible at once
SELECT payload, attempt, visible_at <= clock_timestamp() AS visible_now
FROM mq.poll('spa_vt', 1, '0');
SELECT payload, attempt FROM mq.poll('spa_vt', 1, '1 hour');
:stats 'spa_vt';

--
-- extend: a new lease from now; '0' releases; NULL once the message is gone
--
SELECT mq.send('spa_vt', '{"e": 1}') AS eid \gset
SELECT attempt FROM mq.poll('spa_vt', 1, '10 seconds');
SELECT mq.extend('spa_vt', :eid, '3 hours') >= now() + interval '3 hours'
   AND mq.extend('spa_vt', :eid, '3 hours') <= clock_timestamp() + interval '3 hours' AS extended_3h;
SELECT count(*) AS polled FROM mq.poll('spa_vt', 10);
SELECT mq.extend('spa_vt', :eid, '0') <= clock_timestamp() AS released;
-- released: polled again at once, second delivery
SELECT msg_id = :eid AS same_msg, attempt FROM mq.poll('spa_vt', 1, '1 hour');
SELECT mq.extend('spa_vt', :eid, '0') IS NOT NULL AS released;
SELECT msg_id = :eid AS same_msg, attempt FROM mq.poll('spa_vt', 1, '1 hour');
SELECT mq.ack('spa_vt', :eid) AS acked;
SELECT mq.extend('spa_vt', :eid, '1 minute') IS NULL AS gone_is_null;
SELECT mq.extend('spa_vt', :eid + 1000000, '1 minute') IS NULL AS unknown_is_null;
:stats 'spa_vt';

--
-- pop: read and delete
--
SELECT mq.purge_queue('spa_vt') AS purged;
SELECT count(*) AS sent FROM mq.send_batch('spa_vt', ARRAY['{"p": 1}', '{"p": 2}', '{"p": 3}']::jsonb[]);
SELECT mq.send('spa_vt', '{"p": 4}', '{"x": true}') AS p4 \gset
SELECT payload, headers, attempt, enqueued_at <= now() AS enqueued_in_past FROM mq.pop('spa_vt', 2);
:stats 'spa_vt';
SELECT payload FROM mq.pop('spa_vt');
SELECT msg_id = :p4 AS is_p4, payload, headers FROM mq.pop('spa_vt', 10);
SELECT count(*) AS popped FROM mq.pop('spa_vt', 10);
SELECT mq.ack('spa_vt', :p4) AS ack_popped;
:stats 'spa_vt';

--
-- queue_stats counts ready / in_flight / delayed per queue
--
SELECT mq.create_queue('spa_st');
SELECT count(*) AS sent FROM mq.send_batch('spa_st', ARRAY['{"s": 1}', '{"s": 2}', '{"s": 3}', '{"s": 4}']::jsonb[]);
SELECT count(*) AS sent FROM mq.send_batch('spa_st', ARRAY['{"s": 5}', '{"s": 6}']::jsonb[], delay => '1 day');
SELECT count(*) AS polled FROM mq.poll('spa_st', 3, '1 hour');
SELECT queue_name, ready, in_flight, delayed, total,
       oldest_ready_age >= interval '0' AS has_ready_age,
       oldest_enqueued_at <= now() AS has_oldest
FROM mq.queue_stats WHERE queue_name LIKE 'spa\_%' AND queue_name NOT LIKE '%\_dlq' ORDER BY queue_name;

--
-- named notation everywhere
--
SELECT mq.create_queue(queue_name => 'spa_named', visibility_timeout => '1 minute',
                       max_attempts => 3, if_not_exists => false);
SELECT mq.send(queue_name => 'spa_named', payload => '{"n": 1}',
               headers => '{"h": 1}', delay => '0') AS n1 \gset
SELECT count(*) AS sent
FROM mq.send_batch(queue_name => 'spa_named', payloads => ARRAY['{"n": 2}', '{"n": 3}']::jsonb[],
                   headers => ARRAY['{"h": 2}', '{"h": 3}']::jsonb[], delay => '0');
SELECT payload, headers, attempt,
       visible_at >= now() + interval '7 minutes'
         AND visible_at <= clock_timestamp() + interval '7 minutes' AS lease_7min
FROM mq.poll(queue_name => 'spa_named', max_messages => 2, visibility_timeout => '7 minutes');
SELECT mq.extend(queue_name => 'spa_named', msg_id => :n1, visibility_timeout => '0') IS NOT NULL AS extended;
SELECT mq.ack(queue_name => 'spa_named', msg_id => :n1) AS acked;
SELECT payload FROM mq.pop(queue_name => 'spa_named', max_messages => 5);
SELECT mq.ack(queue_name => 'spa_named', msg_ids => ARRAY[:n1]) AS acked_count;
SELECT mq.purge_queue(queue_name => 'spa_named') AS purged;
SELECT mq.drop_queue(queue_name => 'spa_named') AS dropped;

SELECT mq.drop_queue('spa_q'), mq.drop_queue('spa_vt'), mq.drop_queue('spa_st');
