-- 03_semantics: ordering, attempts, leases, extend, ack, pop, batches,
-- stats -- everything that can be seen inside one transaction.
BEGIN;
SELECT plan(62);
SET LOCAL client_min_messages = warning;

SELECT mq.create_queue('sem_q', visibility_timeout => '45 seconds');
SELECT mq.create_queue('sem_other');

-- ids, in send order
CREATE TEMP TABLE sent (n integer PRIMARY KEY, id bigint);
INSERT INTO sent SELECT n, mq.send('sem_q', jsonb_build_object('n', n)) FROM generate_series(1, 5) n ORDER BY n;
SELECT is((SELECT count(DISTINCT id) FROM sent), 5::bigint, 'send returns a distinct id per message');
SELECT ok((SELECT bool_and(id IS NOT NULL) FROM sent), 'send never returns NULL');

-- oldest first, limited by max_messages
SELECT results_eq(
    $$SELECT msg_id, payload, attempt FROM mq.poll('sem_q', 3)$$,
    $$SELECT id, jsonb_build_object('n', n), 1 FROM sent WHERE n <= 3 ORDER BY n$$,
    'poll(3) returns the three oldest, in order, attempt 1');
SELECT results_eq(
    $$SELECT msg_id FROM mq.poll('sem_q', 1000000)$$,
    $$SELECT id FROM sent WHERE n > 3 ORDER BY n$$,
    'poll(1000000) returns the rest, in order');
SELECT is_empty($$SELECT * FROM mq.poll('sem_q', 10)$$, 'everything is leased: poll returns nothing');
SELECT is_empty($$SELECT * FROM mq.pop('sem_q', 10)$$, 'pop does not take leased messages');
SELECT is_empty($$SELECT * FROM mq.poll('sem_other', 10)$$, 'another queue sees none of them');

-- lease bounds: the queue default, an override, NULL meaning the default
SELECT mq.send('sem_other', '{"lease": 1}');
SELECT mq.send('sem_other', '{"lease": 2}');
SELECT mq.send('sem_other', '{"lease": 3}');
CREATE TEMP TABLE p1 AS SELECT *, clock_timestamp() AS t_after FROM mq.poll('sem_other');
SELECT ok((SELECT visible_at >= now() + interval '30 seconds' AND visible_at <= t_after + interval '30 seconds' FROM p1),
          'default lease: now + the queue''s 30 seconds');
SELECT ok((SELECT enqueued_at >= now() AND enqueued_at <= t_after FROM p1),
          'enqueued_at is the time of send');
CREATE TEMP TABLE p2 AS SELECT *, clock_timestamp() AS t_after FROM mq.poll('sem_other', 1, '90 minutes');
SELECT ok((SELECT visible_at >= now() + interval '90 minutes' AND visible_at <= t_after + interval '90 minutes' FROM p2),
          'overridden lease: now + 90 minutes');
CREATE TEMP TABLE p3 AS SELECT *, clock_timestamp() AS t_after FROM mq.poll('sem_other', 5, NULL);
SELECT ok((SELECT visible_at >= now() + interval '30 seconds' AND visible_at <= t_after + interval '30 seconds' FROM p3),
          'visibility_timeout => NULL means the queue default');
SELECT is((SELECT array_agg(payload->>'lease' ORDER BY msg_id) FROM (SELECT * FROM p1 UNION ALL SELECT * FROM p2 UNION ALL SELECT * FROM p3) s),
          ARRAY['1', '2', '3'], 'the three polls took the messages oldest first');

-- attempt counts every delivery; a zero lease is visible again at once
SELECT mq.create_queue('sem_att', max_attempts => 10);
SELECT mq.send('sem_att', '{"a": 1}') AS a_id \gset
SELECT is((SELECT attempt FROM mq.poll('sem_att', 1, '0')), 1, 'first delivery: attempt 1');
SELECT is((SELECT attempt FROM mq.poll('sem_att', 1, '0')), 2, 'lease of 0 expired: attempt 2');
SELECT is((SELECT attempt FROM mq.poll('sem_att', 1, '1 hour')), 3, 'third delivery: attempt 3');
SELECT is_empty($$SELECT * FROM mq.poll('sem_att')$$, 'leased for an hour: not pollable');
SELECT ok(mq.extend('sem_att', :a_id, '0') <= clock_timestamp(), 'extend(0) returns a time not after now');
SELECT is((SELECT attempt FROM mq.poll('sem_att', 1, '1 hour')), 4, 'after extend(0): attempt 4');
SELECT is((SELECT msg_id FROM mq.pop('sem_att')), NULL::bigint, 'pop skips the leased message');
SELECT ok(mq.extend('sem_att', :a_id, '0') IS NOT NULL, 'released again');
SELECT results_eq($$SELECT msg_id, attempt FROM mq.pop('sem_att')$$,
                  format('VALUES (%s::bigint, 5)', :a_id),
                  'pop counts its delivery too: attempt 5');
SELECT is(mq.ack('sem_att', :a_id), false, 'popped message is gone');

-- a poll or pop rolled back (to a savepoint) leaves the message ready
SELECT mq.create_queue('sem_rb');
SELECT mq.send('sem_rb', '{"rb": 1}') AS rb_id \gset
CREATE FUNCTION pg_temp.then_fail(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE sql INTO n;
    RAISE EXCEPTION 'took %', n USING ERRCODE = 'P0001';
EXCEPTION WHEN raise_exception THEN
    RETURN SQLERRM;
END;
$$;
SELECT is(pg_temp.then_fail($$SELECT count(*) FROM mq.poll('sem_rb', 10, '1 hour')$$), 'took 1', 'poll, then an error');
SELECT is(pg_temp.then_fail($$SELECT count(*) FROM mq.pop('sem_rb', 10)$$), 'took 1', 'pop, then an error');
SELECT is(pg_temp.then_fail($$SELECT count(*) FROM mq.ack('sem_rb', ARRAY[$$ || :rb_id || $$]::bigint[]) a WHERE a = 1$$), 'took 1', 'ack, then an error');
SELECT results_eq($$SELECT msg_id, payload FROM mq.poll('sem_rb', 10, '1 hour')$$,
                  format($f$VALUES (%s::bigint, '{"rb": 1}'::jsonb)$f$, :rb_id),
                  'after the rolled-back poll, pop and ack the message is ready');

-- extend: bounds, gone, unknown, another queue's message
SELECT mq.send('sem_att', '{"e": 1}') AS e_id \gset
SELECT mq.send('sem_other', '{"e": "other"}') AS e_other \gset
SELECT is((SELECT msg_id FROM mq.poll('sem_att', 1, '10 seconds')), :e_id::bigint, 'polled the message to extend');
CREATE TEMP TABLE ext AS SELECT mq.extend('sem_att', :e_id, '2 hours') AS v, clock_timestamp() AS t_after;
SELECT ok((SELECT v >= now() + interval '2 hours' AND v <= t_after + interval '2 hours' FROM ext),
          'extend returns now + the new timeout');
SELECT is(mq.extend('sem_att', :e_id + 1000000, '1 minute'), NULL, 'extend of an unknown id is NULL');
SELECT is(mq.extend('sem_att', :e_other, '1 hour'), NULL, 'extend of another queue''s message is NULL');
SELECT is((SELECT count(*) FROM mq.poll('sem_other', 10, '1 hour') WHERE msg_id = :e_other), 1::bigint,
          '... and leaves that message alone');
SELECT is(mq.ack('sem_att', :e_id), true, 'ack of the extended message');
SELECT is(mq.extend('sem_att', :e_id, '1 minute'), NULL, 'extend of an acked message is NULL');

-- ack
SELECT mq.send('sem_att', '{"k": 1}') AS k1 \gset
SELECT mq.send('sem_att', '{"k": 2}') AS k2 \gset
SELECT mq.send('sem_att', '{"k": 3}') AS k3 \gset
SELECT is(mq.ack('sem_other', :k1), false, 'ack through another queue is false');
SELECT is(mq.ack('sem_other', ARRAY[:k1, :k2]::bigint[]), 0::bigint, 'array ack through another queue counts 0');
SELECT is(mq.ack('sem_att', :k1), true, 'ack of a ready message (never polled) is true');
SELECT is(mq.ack('sem_att', ARRAY[:k2, :k2, :k3, :k1, -1]::bigint[]), 2::bigint, 'array ack counts each deleted message once');
SELECT is(mq.ack('sem_att', ARRAY[]::bigint[]), 0::bigint, 'empty array ack counts 0');
SELECT is_empty($$SELECT * FROM mq.poll('sem_att', 10, '0')$$, 'sem_att is empty');

-- delay
SELECT mq.create_queue('sem_d');
SELECT mq.send('sem_d', '{"d": "later"}', delay => '1 minute') AS d_later \gset
SELECT mq.send('sem_d', '{"d": "now"}') AS d_now \gset
SELECT results_eq($$SELECT msg_id FROM mq.poll('sem_d', 10, '0')$$, ARRAY[:d_now]::bigint[],
                  'a delayed message is not polled');
SELECT results_eq($$SELECT msg_id FROM mq.pop('sem_d', 10)$$, ARRAY[:d_now]::bigint[],
                  'a delayed message is not popped');
SELECT is(mq.extend('sem_d', :d_later, '0') IS NOT NULL, true, 'extend(0) of a delayed message makes it visible');
SELECT results_eq($$SELECT msg_id, attempt FROM mq.poll('sem_d', 10)$$,
                  format('VALUES (%s::bigint, 1)', :d_later), '... and its first delivery is attempt 1');

-- payloads and headers come back exactly
SELECT mq.create_queue('sem_p');
SELECT mq.send('sem_p', 'null'::jsonb);
SELECT mq.send('sem_p', '"text ünïcødé ✓"'::jsonb, '{}'::jsonb);
SELECT mq.send('sem_p', '[1, 2.50, {"a": [true, false, null]}]'::jsonb, '{"k": [1]}'::jsonb);
SELECT mq.send('sem_p', jsonb_build_object('big', repeat('x', 1000000)));
SELECT results_eq(
    $$SELECT payload, headers FROM mq.poll('sem_p', 3)$$,
    $$VALUES ('null'::jsonb, NULL::jsonb), ('"text ünïcødé ✓"', '{}'), ('[1, 2.50, {"a": [true, false, null]}]', '{"k": [1]}')$$,
    'payloads and headers round-trip');
SELECT is((SELECT length(payload->>'big') FROM mq.pop('sem_p')), 1000000, 'a 1 MB payload round-trips');

-- send_batch
SELECT mq.create_queue('sem_b');
CREATE TEMP TABLE b AS
SELECT id, ord FROM mq.send_batch('sem_b',
    ARRAY['{"b": 1}', '{"b": 2}', '{"b": 3}', '{"b": 4}', '{"b": 5}']::jsonb[],
    ARRAY[NULL, '{"h": 2}', NULL, '{"h": 4}', '{"h": 5}']::jsonb[],
    '0') WITH ORDINALITY AS s(id, ord);
SELECT is((SELECT count(DISTINCT id) FROM b), 5::bigint, 'send_batch returns one id per payload');
SELECT results_eq(
    $$SELECT msg_id, payload, headers FROM mq.poll('sem_b', 10)$$,
    $$SELECT id, jsonb_build_object('b', ord), CASE WHEN ord IN (2, 4, 5) THEN jsonb_build_object('h', ord) END FROM b ORDER BY ord$$,
    'send_batch ids are in input order, with the matching headers; poll returns them in that order');
SELECT is((SELECT count(*) FROM mq.send_batch('sem_b', ARRAY(SELECT jsonb_build_object('i', i) FROM generate_series(1, 5000) i))),
          5000::bigint, 'a batch of 5000');
SELECT is((SELECT count(*) FROM mq.send_batch('sem_b', ARRAY['{}']::jsonb[], delay => '1 hour')), 1::bigint, 'a delayed batch');

-- queue_stats and purge_queue
SELECT results_eq(
    $$SELECT ready, in_flight, delayed, total FROM mq.queue_stats WHERE queue_name = 'sem_b'$$,
    $$VALUES (5000::bigint, 5::bigint, 1::bigint, 5006::bigint)$$,
    'queue_stats: 5000 ready, 5 in flight, 1 delayed');
SELECT ok((SELECT oldest_ready_age >= interval '0' AND oldest_enqueued_at <= now() + interval '1 minute'
           FROM mq.queue_stats WHERE queue_name = 'sem_b'), 'queue_stats ages');
SELECT is(mq.purge_queue('sem_b'), 5006::bigint, 'purge_queue counts ready, in-flight and delayed messages');
SELECT results_eq(
    $$SELECT ready, in_flight, delayed, total, oldest_ready_age, oldest_enqueued_at FROM mq.queue_stats WHERE queue_name = 'sem_b'$$,
    $$VALUES (0::bigint, 0::bigint, 0::bigint, 0::bigint, NULL::interval, NULL::timestamptz)$$,
    'queue_stats of an empty queue');
SELECT is(mq.purge_queue('sem_b'), 0::bigint, 'purge of an empty queue is 0');

-- list_queues settings
SELECT is((SELECT jsonb_build_object('visibility_timeout', (settings->>'visibility_timeout')::interval,
                                     'max_attempts', (settings->>'max_attempts')::integer)
           FROM mq.list_queues() WHERE queue_name = 'sem_q'),
          jsonb_build_object('visibility_timeout', interval '45 seconds', 'max_attempts', 5),
          'list_queues settings');
SELECT is((SELECT array_agg(queue_name ORDER BY ord) FROM mq.list_queues() WITH ORDINALITY AS l(queue_name, c, s, ord)
           WHERE queue_name LIKE 'sem\_%' AND queue_name NOT LIKE '%\_dlq'),
          ARRAY['sem_att', 'sem_b', 'sem_d', 'sem_other', 'sem_p', 'sem_q', 'sem_rb'], 'list_queues, sorted by name');

-- drop_queue deletes the messages from storage (internal table)
SELECT is(mq.drop_queue('sem_q'), true, 'drop_queue');
SELECT is((SELECT count(*) FROM mq.queue_message WHERE msg_id IN (SELECT id FROM sent)), 0::bigint,
          'the dropped queue''s messages are deleted');
SELECT is(mq.drop_queue('sem_q'), false, 'drop_queue again is false');
SELECT throws_ok($$SELECT mq.send('sem_q', '{}')$$, '42704', NULL, 'a dropped queue is unknown');
SELECT lives_ok($$SELECT mq.create_queue('sem_q')$$, 'the name can be used again');
SELECT is_empty($$SELECT * FROM mq.poll('sem_q', 10, '0')$$, '... and the new queue is empty');

SELECT * FROM finish();
ROLLBACK;
