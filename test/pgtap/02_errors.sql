-- 02_errors: the SQLSTATE of every bad input, and that nothing is lost.
BEGIN;
SELECT plan(88);
SET LOCAL client_min_messages = warning;

-- one queue holding one ready, one in-flight and one delayed message
CREATE TABLE public.t (i integer);
INSERT INTO public.t VALUES (42);
SELECT mq.create_queue('tap_err');
CREATE TEMP TABLE sent (n integer, id bigint);
INSERT INTO sent SELECT 1, mq.send('tap_err', '{"n": 1}');
SELECT count(*) FROM mq.poll('tap_err', 1, '1 hour');
INSERT INTO sent SELECT 2, mq.send('tap_err', '{"n": 2}');
INSERT INTO sent SELECT 3, mq.send('tap_err', '{"n": 3}', delay => '1 hour');

CREATE FUNCTION pg_temp.st() RETURNS text LANGUAGE sql AS $$
    SELECT format('ready=%s in_flight=%s delayed=%s total=%s', ready, in_flight, delayed, total)
    FROM mq.queue_stats WHERE queue_name = 'tap_err'
$$;
CREATE FUNCTION pg_temp.ids() RETURNS bigint[] LANGUAGE sql AS $$
    SELECT array_agg(id ORDER BY n) FROM sent
$$;

SELECT is(pg_temp.st(), 'ready=1 in_flight=1 delayed=1 total=3', 'set-up: 1 ready, 1 in flight, 1 delayed');

-- unknown queue: 42704
SELECT throws_ok($$SELECT mq.send('tap_nope', '{}')$$, '42704', NULL, 'send: unknown queue');
SELECT throws_ok($$SELECT mq.send_batch('tap_nope', ARRAY['{}']::jsonb[])$$, '42704', NULL, 'send_batch: unknown queue');
SELECT throws_ok($$SELECT * FROM mq.poll('tap_nope')$$, '42704', NULL, 'poll: unknown queue');
SELECT throws_ok($$SELECT * FROM mq.pop('tap_nope')$$, '42704', NULL, 'pop: unknown queue');
SELECT throws_ok($$SELECT mq.ack('tap_nope', 1)$$, '42704', NULL, 'ack: unknown queue');
SELECT throws_ok($$SELECT mq.ack('tap_nope', ARRAY[1]::bigint[])$$, '42704', NULL, 'ack (array): unknown queue');
SELECT throws_ok($$SELECT mq.extend('tap_nope', 1, '1 minute')$$, '42704', NULL, 'extend: unknown queue');
SELECT throws_ok($$SELECT mq.purge_queue('tap_nope')$$, '42704', NULL, 'purge_queue: unknown queue');
SELECT throws_like($$SELECT mq.send('tap_nope', '{}')$$, '%tap_nope%', 'the error names the queue');
SELECT is(mq.drop_queue('tap_nope'), false, 'drop_queue: unknown queue is false');
SELECT is(pg_temp.st(), 'ready=1 in_flight=1 delayed=1 total=3', 'unknown queue errors lost nothing');

-- invalid names, SQL injection attempts: 42602
CREATE TEMP TABLE nq AS SELECT count(*) AS n FROM mq.list_queues();
SELECT throws_ok($$SELECT mq.create_queue('x''; DROP TABLE t; --')$$, '42602', NULL, 'create_queue: injection name');
SELECT throws_ok($$SELECT mq.create_queue('"q"')$$, '42602', NULL, 'create_queue: quoted name');
SELECT throws_ok($$SELECT mq.create_queue('a b')$$, '42602', NULL, 'create_queue: name with a space');
SELECT throws_ok($$SELECT mq.create_queue('')$$, '42602', NULL, 'create_queue: empty name');
SELECT throws_ok($$SELECT mq.create_queue('q;')$$, '42602', NULL, 'create_queue: name with a semicolon');
SELECT throws_ok($$SELECT mq.create_queue(E'q\n')$$, '42602', NULL, 'create_queue: name with a newline');
SELECT throws_ok($$SELECT mq.send('x''; DROP TABLE t; --', '{}')$$, '42602', NULL, 'send: injection name');
SELECT throws_ok($$SELECT mq.send('', '{}')$$, '42602', NULL, 'send: empty name');
SELECT throws_ok($$SELECT mq.send_batch('a b', ARRAY['{}']::jsonb[])$$, '42602', NULL, 'send_batch: invalid name');
SELECT throws_ok($$SELECT * FROM mq.poll('"q"')$$, '42602', NULL, 'poll: invalid name');
SELECT throws_ok($$SELECT * FROM mq.pop('a b')$$, '42602', NULL, 'pop: invalid name');
SELECT throws_ok($$SELECT mq.ack('x''; DROP TABLE t; --', 1)$$, '42602', NULL, 'ack: invalid name');
SELECT throws_ok($$SELECT mq.ack('', ARRAY[1]::bigint[])$$, '42602', NULL, 'ack (array): invalid name');
SELECT throws_ok($$SELECT mq.extend('a b', 1, '1 minute')$$, '42602', NULL, 'extend: invalid name');
SELECT throws_ok($$SELECT mq.purge_queue('x''; DROP TABLE t; --')$$, '42602', NULL, 'purge_queue: invalid name');
SELECT throws_ok($$SELECT mq.drop_queue('x''; DROP TABLE t; --')$$, '42602', NULL, 'drop_queue: invalid name');
SELECT is((SELECT i FROM public.t), 42, 'the injected DROP TABLE did not run');
SELECT is((SELECT count(*) FROM mq.list_queues()), (SELECT n FROM nq), 'no queue was created by the invalid names');
SELECT is(pg_temp.st(), 'ready=1 in_flight=1 delayed=1 total=3', 'invalid name errors lost nothing');

-- over-long names: 42622
SELECT throws_ok($$SELECT mq.create_queue(repeat('a', 64))$$, '42622', NULL, 'create_queue: 64-byte name');
SELECT throws_ok($$SELECT mq.create_queue(repeat('a', 1000))$$, '42622', NULL, 'create_queue: 1000-byte name');
SELECT throws_ok($$SELECT mq.send(repeat('a', 64), '{}')$$, '42622', NULL, 'send: 64-byte name');
SELECT throws_ok($$SELECT * FROM mq.poll(repeat('a', 64))$$, '42622', NULL, 'poll: 64-byte name');
SELECT lives_ok($$SELECT mq.create_queue(repeat('a', 63))$$, 'create_queue: a 63-byte name is fine');
SELECT lives_ok($$SELECT mq.send(repeat('a', 63), '{}')$$, 'send: to a 63-byte name');
SELECT is(pg_temp.st(), 'ready=1 in_flight=1 delayed=1 total=3', 'over-long name errors lost nothing');

-- NULL queue name: 22004
SELECT throws_ok($$SELECT mq.create_queue(NULL)$$, '22004', NULL, 'create_queue: NULL name');
SELECT throws_ok($$SELECT mq.send(NULL, '{}')$$, '22004', NULL, 'send: NULL name');
SELECT throws_ok($$SELECT mq.send_batch(NULL, ARRAY['{}']::jsonb[])$$, '22004', NULL, 'send_batch: NULL name');
SELECT throws_ok($$SELECT * FROM mq.poll(NULL)$$, '22004', NULL, 'poll: NULL name');
SELECT throws_ok($$SELECT * FROM mq.pop(NULL)$$, '22004', NULL, 'pop: NULL name');
SELECT throws_ok($$SELECT mq.ack(NULL, 1)$$, '22004', NULL, 'ack: NULL name');
SELECT throws_ok($$SELECT mq.ack(NULL, ARRAY[1]::bigint[])$$, '22004', NULL, 'ack (array): NULL name');
SELECT throws_ok($$SELECT mq.extend(NULL, 1, '1 minute')$$, '22004', NULL, 'extend: NULL name');
SELECT throws_ok($$SELECT mq.purge_queue(NULL)$$, '22004', NULL, 'purge_queue: NULL name');
SELECT throws_ok($$SELECT mq.drop_queue(NULL)$$, '22004', NULL, 'drop_queue: NULL name');
SELECT is(pg_temp.st(), 'ready=1 in_flight=1 delayed=1 total=3', 'NULL name errors lost nothing');

-- NULL payload: 22004
SELECT throws_ok($$SELECT mq.send('tap_err', NULL)$$, '22004', NULL, 'send: NULL payload');
SELECT throws_ok($$SELECT mq.send('tap_err', NULL, '{"h": 1}', '1 minute')$$, '22004', NULL, 'send: NULL payload with headers');
SELECT throws_ok($$SELECT mq.send_batch('tap_err', ARRAY['{"n": 4}', NULL]::jsonb[])$$, '22004', NULL, 'send_batch: a NULL payload in the array');
SELECT throws_ok($$SELECT mq.send_batch('tap_err', NULL)$$, '22004', NULL, 'send_batch: NULL payloads array');
SELECT is(pg_temp.st(), 'ready=1 in_flight=1 delayed=1 total=3', 'NULL payload errors lost nothing');

-- other NULL arguments (C functions are not STRICT): a clear 22004, no crash
SELECT throws_ok($$SELECT * FROM mq.poll('tap_err', NULL)$$, '22004', NULL, 'poll: NULL max_messages');
SELECT throws_ok($$SELECT * FROM mq.pop('tap_err', NULL)$$, '22004', NULL, 'pop: NULL max_messages');
SELECT throws_ok($$SELECT mq.ack('tap_err', NULL::bigint)$$, '22004', NULL, 'ack: NULL msg_id');
SELECT throws_ok($$SELECT mq.ack('tap_err', NULL::bigint[])$$, '22004', NULL, 'ack: NULL msg_ids');
SELECT throws_ok($$SELECT mq.extend('tap_err', NULL, '1 minute')$$, '22004', NULL, 'extend: NULL msg_id');
SELECT throws_ok($$SELECT mq.extend('tap_err', (SELECT id FROM sent WHERE n = 1), NULL)$$, '22004', NULL, 'extend: NULL visibility_timeout');
SELECT is(pg_temp.st(), 'ready=1 in_flight=1 delayed=1 total=3', 'NULL argument errors lost nothing');

-- negative delay / visibility timeout: 22023
SELECT throws_ok($$SELECT mq.send('tap_err', '{}', NULL, '-1 second')$$, '22023', NULL, 'send: negative delay');
SELECT throws_ok($$SELECT mq.send('tap_err', '{}', delay => '-1 microsecond')$$, '22023', NULL, 'send: delay of -1 microsecond');
SELECT throws_ok($$SELECT mq.send_batch('tap_err', ARRAY['{}']::jsonb[], NULL, '-1 hour')$$, '22023', NULL, 'send_batch: negative delay');
SELECT throws_ok($$SELECT * FROM mq.poll('tap_err', 1, '-1 second')$$, '22023', NULL, 'poll: negative visibility timeout');
SELECT throws_ok($$SELECT mq.extend('tap_err', (SELECT id FROM sent WHERE n = 1), '-1 second')$$, '22023', NULL, 'extend: negative visibility timeout');
SELECT throws_ok($$SELECT mq.create_queue('tap_neg', '-1 second')$$, '22023', NULL, 'create_queue: negative visibility timeout');
SELECT throws_ok($$SELECT mq.create_queue('tap_neg', max_attempts => 0)$$, '22023', NULL, 'create_queue: max_attempts 0');
SELECT is(pg_temp.st(), 'ready=1 in_flight=1 delayed=1 total=3', 'negative interval errors lost nothing');

-- max_messages < 1: 22023
SELECT throws_ok($$SELECT * FROM mq.poll('tap_err', 0)$$, '22023', NULL, 'poll: max_messages 0');
SELECT throws_ok($$SELECT * FROM mq.poll('tap_err', -1)$$, '22023', NULL, 'poll: max_messages -1');
SELECT throws_ok($$SELECT * FROM mq.pop('tap_err', 0)$$, '22023', NULL, 'pop: max_messages 0');
SELECT throws_ok($$SELECT * FROM mq.pop('tap_err', -2147483648)$$, '22023', NULL, 'pop: max_messages INT_MIN');
SELECT is(pg_temp.st(), 'ready=1 in_flight=1 delayed=1 total=3', 'max_messages errors lost nothing');

-- send_batch with a headers array of another length: 22023 or 2202E
CREATE FUNCTION pg_temp.batch_state(payloads jsonb[], headers jsonb[]) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mq.send_batch('tap_err', payloads, headers);
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN CASE WHEN SQLSTATE IN ('22023', '2202E') THEN 'rejected' ELSE SQLSTATE END;
END;
$$;
SELECT is(pg_temp.batch_state(ARRAY['{"n": 4}', '{"n": 5}']::jsonb[], ARRAY['{}']::jsonb[]),
          'rejected', 'send_batch: fewer headers than payloads');
SELECT is(pg_temp.batch_state(ARRAY['{"n": 4}']::jsonb[], ARRAY['{}', '{}']::jsonb[]),
          'rejected', 'send_batch: more headers than payloads');
SELECT is(pg_temp.batch_state(ARRAY['{"n": 4}']::jsonb[], ARRAY[]::jsonb[]),
          'rejected', 'send_batch: empty headers for one payload');
SELECT is(pg_temp.st(), 'ready=1 in_flight=1 delayed=1 total=3', 'send_batch length errors lost nothing');

-- duplicate create_queue: 42710, unless if_not_exists
SELECT throws_ok($$SELECT mq.create_queue('tap_err')$$, '42710', NULL, 'create_queue: duplicate');
SELECT throws_ok($$SELECT mq.create_queue('tap_err', '1 hour', 1)$$, '42710', NULL, 'create_queue: duplicate with other settings');
SELECT lives_ok($$SELECT mq.create_queue('tap_err', if_not_exists => true)$$, 'create_queue: if_not_exists');
SELECT ok((SELECT settings @> jsonb_build_object('visibility_timeout', interval '30 seconds', 'max_attempts', 5)
           FROM mq.list_queues() WHERE queue_name = 'tap_err'),
          'if_not_exists left the settings alone');
SELECT is(pg_temp.st(), 'ready=1 in_flight=1 delayed=1 total=3', 'duplicate queue errors lost nothing');

-- the messages are exactly the ones we started with
SELECT results_eq($$SELECT msg_id, payload FROM mq.poll('tap_err', 10, '1 hour')$$,
                  $$SELECT id, '{"n": 2}'::jsonb FROM sent WHERE n = 2$$, 'only the ready message is pollable');
SELECT is(mq.ack('tap_err', pg_temp.ids()), 3::bigint, 'all three messages are still there to ack');

-- errors inside a transaction roll back only to their savepoint
SELECT lives_ok($$SELECT mq.send('tap_err', '{"n": 9}')$$, 'send after the errors');
SELECT throws_ok($$SELECT mq.send('tap_err', '{"n": 10}', NULL, '-1 second')$$, '22023', NULL, 'a failing send');
SELECT is(pg_temp.st(), 'ready=1 in_flight=0 delayed=0 total=1', 'the earlier send stays, the failed one is absent');

SELECT * FROM finish();
ROLLBACK;
