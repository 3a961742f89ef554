-- 01_signatures: the public objects, with the exact argument names,
-- defaults and result types of the spec.
--
-- Later versions may add parameters, but only after the spec's ones and
-- only with defaults, so that every call written against the spec, in
-- positional or named notation, keeps working; likewise mq.message and
-- mq.queue_stats may gain columns only after the spec's ones.
BEGIN;
SELECT plan(47);

SELECT has_schema('mq');

CREATE TEMP TABLE spec (ord integer, fn name, args text, required integer, result text);
INSERT INTO spec VALUES
 (1, 'create_queue',
  'queue_name text, visibility_timeout interval DEFAULT ''00:00:30''::interval, max_attempts integer DEFAULT 5, if_not_exists boolean DEFAULT false',
  1, 'void'),
 (2, 'drop_queue', 'queue_name text', 1, 'boolean'),
 (3, 'purge_queue', 'queue_name text', 1, 'bigint'),
 (4, 'list_queues', '', 0, 'TABLE(queue_name text, created_at timestamp with time zone, settings jsonb)'),
 (5, 'send',
  'queue_name text, payload jsonb, headers jsonb DEFAULT NULL::jsonb, delay interval DEFAULT ''00:00:00''::interval',
  2, 'bigint'),
 (6, 'send_batch',
  'queue_name text, payloads jsonb[], headers jsonb[] DEFAULT NULL::jsonb[], delay interval DEFAULT ''00:00:00''::interval',
  2, 'SETOF bigint'),
 (7, 'poll',
  'queue_name text, max_messages integer DEFAULT 1, visibility_timeout interval DEFAULT NULL::interval',
  1, 'SETOF mq.message'),
 (8, 'ack', 'queue_name text, msg_id bigint', 2, 'boolean'),
 (9, 'ack', 'queue_name text, msg_ids bigint[]', 2, 'bigint'),
 (10, 'extend', 'queue_name text, msg_id bigint, visibility_timeout interval', 3, 'timestamp with time zone'),
 (11, 'pop', 'queue_name text, max_messages integer DEFAULT 1', 1, 'SETOF mq.message');

-- the mq functions whose argument list starts with the spec's
CREATE TEMP VIEW matched AS
SELECT s.ord, s.fn, p.oid, pg_get_function_arguments(p.oid) AS args,
       (p.pronargs - p.pronargdefaults)::integer AS required, pg_get_function_result(p.oid) AS result
FROM spec s
JOIN pg_proc p ON p.pronamespace = 'mq'::regnamespace AND p.proname = s.fn
WHERE pg_get_function_arguments(p.oid) = s.args
   OR (s.args <> '' AND left(pg_get_function_arguments(p.oid), length(s.args) + 2) = s.args || ', ');

-- one function per spec entry, with the spec's leading arguments
SELECT is((SELECT count(*) FROM matched m WHERE m.ord = s.ord), 1::bigint,
          format('mq.%s(%s) exists', s.fn, s.args))
FROM spec s ORDER BY s.ord;
-- no more required arguments than the spec's: extra ones have defaults
SELECT is((SELECT m.required FROM matched m WHERE m.ord = s.ord), s.required,
          format('mq.%s: %s required argument(s)', s.fn, s.required))
FROM spec s ORDER BY s.ord;
-- the result type
SELECT is((SELECT m.result FROM matched m WHERE m.ord = s.ord), s.result,
          format('mq.%s returns %s', s.fn, s.result))
FROM spec s ORDER BY s.ord;

-- exactly one function of each name (two for ack): no ambiguous overloads
SELECT is((SELECT array_agg(proname::text ORDER BY proname)
           FROM pg_proc
           WHERE pronamespace = 'mq'::regnamespace
             AND proname IN (SELECT fn FROM spec)),
          ARRAY['ack', 'ack', 'create_queue', 'drop_queue', 'extend', 'list_queues',
                'poll', 'pop', 'purge_queue', 'send', 'send_batch'],
          'no extra overloads');

-- the mq.message type
SELECT has_composite('mq', 'message', 'mq.message is a composite type');
SELECT is((SELECT array_agg(attname::text || ' ' || format_type(atttypid, atttypmod) ORDER BY attnum)
           FROM pg_attribute
           WHERE attrelid = 'mq.message'::regclass AND attnum BETWEEN 1 AND 6 AND NOT attisdropped),
          ARRAY['msg_id bigint', 'payload jsonb', 'headers jsonb', 'attempt integer',
                'enqueued_at timestamp with time zone', 'visible_at timestamp with time zone'],
          'mq.message columns, in order');

-- the mq.queue_stats view
SELECT has_view('mq', 'queue_stats', 'mq.queue_stats is a view');
SELECT is((SELECT array_agg(attname::text ORDER BY attnum)
           FROM pg_attribute
           WHERE attrelid = 'mq.queue_stats'::regclass AND attnum BETWEEN 1 AND 7 AND NOT attisdropped),
          ARRAY['queue_name', 'ready', 'in_flight', 'delayed', 'total', 'oldest_ready_age',
                'oldest_enqueued_at'],
          'mq.queue_stats columns, in order');
SELECT is((SELECT format_type(atttypid, atttypmod) FROM pg_attribute
           WHERE attrelid = 'mq.queue_stats'::regclass AND attname = 'oldest_ready_age'),
          'interval', 'oldest_ready_age is an interval');
SELECT is((SELECT format_type(atttypid, atttypmod) FROM pg_attribute
           WHERE attrelid = 'mq.queue_stats'::regclass AND attname = 'oldest_enqueued_at'),
          'timestamp with time zone', 'oldest_enqueued_at is a timestamptz');
SELECT ok((SELECT bool_and(format_type(atttypid, atttypmod) IN ('bigint', 'integer', 'numeric'))
           FROM pg_attribute
           WHERE attrelid = 'mq.queue_stats'::regclass
             AND attname IN ('ready', 'in_flight', 'delayed', 'total')),
          'the counts of mq.queue_stats are integral');

-- calls in named notation, and with only the required arguments, resolve
SELECT lives_ok($$SELECT mq.create_queue(queue_name => 'sig_q', if_not_exists => true, max_attempts => 2, visibility_timeout => '1 minute')$$,
                'create_queue in named notation');
SELECT lives_ok($$SELECT mq.create_queue('sig_q2'), mq.drop_queue('sig_q2')$$,
                'create_queue with the name only');
SELECT lives_ok($$SELECT mq.send('sig_q', '{}'), mq.send_batch('sig_q', ARRAY['{}']::jsonb[]),
                         mq.poll('sig_q'), mq.pop('sig_q'), mq.purge_queue('sig_q')$$,
                'send, send_batch, poll, pop with the required arguments only');
SELECT lives_ok($$SELECT mq.ack(queue_name => 'sig_q', msg_ids => ARRAY[1, 2]::bigint[]),
                         mq.ack(queue_name => 'sig_q', msg_id => 1),
                         mq.ack('sig_q', 1), mq.ack('sig_q', ARRAY[1, 2])$$,
                'both ack overloads, positional and named');
SELECT lives_ok($$SELECT mq.extend(queue_name => 'sig_q', msg_id => 1, visibility_timeout => '1 minute')$$,
                'extend in named notation');

SELECT * FROM finish();
ROLLBACK;
