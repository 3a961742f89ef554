-- 04_search_path: every function works, and uses nothing of the caller's,
-- under a hostile search_path that shadows the operators, functions and
-- table names the extension could use unqualified.
--
-- The hostile calls run as plain statements (pgTAP itself would use the
-- shadowing operators); their results go to temp tables and psql
-- variables, and are checked once search_path is back to normal.  The
-- shadowing objects do the right thing but log that they were used.
-- The shadowing objects live in schema :sp, evil unless the including file
-- sets it (14_search_path_public runs this file with sp = public).
\if :{?sp}
\else
\set sp evil
\endif
BEGIN;
SELECT plan(33);
SET LOCAL client_min_messages = warning;

-- warm the per-backend caches and cached plans under a normal path
SELECT mq.create_queue('sp_q', visibility_timeout => '20 minutes');
SELECT mq.send('sp_q', '{"warm": 1}');
SELECT count(*) FROM mq.poll('sp_q', 10, '0');
SELECT count(*) FROM mq.pop('sp_q', 10);
SELECT mq.ack('sp_q', 0::bigint), mq.ack('sp_q', ARRAY[0]::bigint[]), mq.extend('sp_q', 0, '0');
SELECT count(*) FROM mq.send_batch('sp_q', ARRAY['{"warm": 2}']::jsonb[]);
SELECT mq.purge_queue('sp_q');
SELECT mq.create_topic('sp_t', partitions => 2);
SELECT mq.create_group('sp_t', 'sp_g', start_at => 'earliest');
SELECT mq.publish('sp_t', '{"warm": 1}', key => 'w');
SELECT mq.relay();
SELECT count(*) FROM mq.fetch('sp_t', 'sp_g', 10, auto_commit => true);

CREATE SCHEMA evil;
CREATE TABLE evil.hits (what text);
CREATE FUNCTION evil.hit(what text) RETURNS void LANGUAGE sql SET search_path = pg_catalog
    AS $$ INSERT INTO evil.hits VALUES (what) $$;

-- tables with the extension's table names
CREATE TABLE :sp.queue (LIKE mq.queue INCLUDING DEFAULTS);
CREATE TABLE :sp.queue_message (LIKE mq.queue_message INCLUDING DEFAULTS);
CREATE TEMP TABLE queue (LIKE mq.queue INCLUDING DEFAULTS);
CREATE TEMP TABLE queue_message (LIKE mq.queue_message INCLUDING DEFAULTS);
CREATE SEQUENCE :sp.msg_id_seq START 900000000;
CREATE SEQUENCE :sp.queue_id_seq START 900000000;

-- functions with pg_catalog's names
CREATE FUNCTION :sp.now() RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('now()'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION :sp.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('clock_timestamp()'); RETURN pg_catalog.clock_timestamp(); END $$;
CREATE FUNCTION :sp.nextval(regclass) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('nextval()'); RETURN pg_catalog.nextval($1); END $$;
CREATE FUNCTION :sp.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('unnest()'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
CREATE FUNCTION :sp.array_length(anyarray, integer) RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('array_length()'); RETURN pg_catalog.array_length($1, $2); END $$;

-- operators with pg_catalog's names
CREATE FUNCTION :sp.int4eq(integer, integer) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('integer = integer'); RETURN pg_catalog.int4eq($1, $2); END $$;
CREATE FUNCTION :sp.int8eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('bigint = bigint'); RETURN pg_catalog.int8eq($1, $2); END $$;
CREATE FUNCTION :sp.texteq(text, text) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('text = text'); RETURN pg_catalog.texteq($1, $2); END $$;
CREATE FUNCTION :sp.tideq(tid, tid) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('tid = tid'); RETURN pg_catalog.tideq($1, $2); END $$;
CREATE FUNCTION :sp.tsle(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('timestamptz <= timestamptz'); RETURN pg_catalog.timestamptz_le($1, $2); END $$;
CREATE FUNCTION :sp.tslt(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('timestamptz < timestamptz'); RETURN pg_catalog.timestamptz_lt($1, $2); END $$;
CREATE FUNCTION :sp.int4pl(integer, integer) RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('integer + integer'); RETURN pg_catalog.int4pl($1, $2); END $$;
CREATE FUNCTION :sp.tspl(timestamptz, interval) RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('timestamptz + interval'); RETURN pg_catalog.timestamptz_pl_interval($1, $2); END $$;
CREATE FUNCTION :sp.int8ge(bigint, bigint) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('bigint >= bigint'); RETURN pg_catalog.int8ge($1, $2); END $$;
CREATE FUNCTION :sp.int8le(bigint, bigint) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('bigint <= bigint'); RETURN pg_catalog.int8le($1, $2); END $$;
CREATE FUNCTION :sp.int8mi(bigint, bigint) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('bigint - bigint'); RETURN pg_catalog.int8mi($1, $2); END $$;
CREATE FUNCTION :sp.int8pl(bigint, bigint) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM evil.hit('bigint + bigint'); RETURN pg_catalog.int8pl($1, $2); END $$;
CREATE OPERATOR :sp.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = :sp.int8ge);
CREATE OPERATOR :sp.<= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = :sp.int8le);
CREATE OPERATOR :sp.- (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = :sp.int8mi);
CREATE OPERATOR :sp.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = :sp.int8pl);
CREATE OPERATOR :sp.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = :sp.int4eq);
CREATE OPERATOR :sp.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = :sp.int8eq);
CREATE OPERATOR :sp.= (LEFTARG = text, RIGHTARG = text, FUNCTION = :sp.texteq);
CREATE OPERATOR :sp.= (LEFTARG = tid, RIGHTARG = tid, FUNCTION = :sp.tideq);
CREATE OPERATOR :sp.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = :sp.tsle);
CREATE OPERATOR :sp.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = :sp.tslt);
CREATE OPERATOR :sp.+ (LEFTARG = integer, RIGHTARG = integer, FUNCTION = :sp.int4pl);
CREATE OPERATOR :sp.+ (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = :sp.tspl);

CREATE TEMP TABLE r (step text, v text);

--------------------------------------------------------------------------
-- hostile phase: no operators in the statements below
--------------------------------------------------------------------------
SET LOCAL search_path = :sp, pg_catalog;

-- a new queue invalidates the cache: lookups go through SPI again
SELECT mq.create_queue('sp_new');
SELECT mq.create_queue('sp_new', if_not_exists => true);
SELECT mq.send('sp_q', '{"h": 1}', '{"x": 1}') AS h1 \gset
SELECT mq.send('sp_q', '{"h": 2}', delay => '0') AS h2 \gset
INSERT INTO pg_temp.r SELECT 'batch', pg_catalog.array_to_string(pg_catalog.array_agg(id), ',')
    FROM mq.send_batch('sp_q', ARRAY['{"h": 3}', '{"h": 4}']::jsonb[], ARRAY['{"y": 3}', NULL]::jsonb[]) AS s(id);
INSERT INTO pg_temp.r SELECT 'send_new', mq.send('sp_new', '{"n": 1}')::text;
CREATE TEMP TABLE polled AS SELECT * FROM mq.poll('sp_q', 3);
CREATE TEMP TABLE polled_new AS SELECT * FROM mq.poll('sp_new', 5, '1 hour');
INSERT INTO pg_temp.r SELECT 'extend', mq.extend('sp_q', :h1, '0')::text;
INSERT INTO pg_temp.r SELECT 'ack', mq.ack('sp_q', :h2)::text;
INSERT INTO pg_temp.r SELECT 'ack_array', mq.ack('sp_q', ARRAY[:h2, :h1]::bigint[])::text;
CREATE TEMP TABLE popped AS SELECT * FROM mq.pop('sp_q', 10);
INSERT INTO pg_temp.r SELECT 'stats', ROW(ready, in_flight, delayed, total)::text
    FROM mq.queue_stats WHERE queue_name OPERATOR(pg_catalog.=) 'sp_new';
INSERT INTO pg_temp.r SELECT 'list', pg_catalog.array_to_string(pg_catalog.array_agg(queue_name), ',') FROM mq.list_queues();
INSERT INTO pg_temp.r SELECT 'purge', mq.purge_queue('sp_new')::text;
DO $$
BEGIN
    PERFORM mq.send('sp_missing', '{}');
    INSERT INTO pg_temp.r VALUES ('unknown', 'no error');
EXCEPTION WHEN OTHERS THEN
    INSERT INTO pg_temp.r VALUES ('unknown', SQLSTATE);
END $$;
DO $$
BEGIN
    PERFORM mq.poll('sp_q', 0);
    INSERT INTO pg_temp.r VALUES ('max_messages', 'no error');
EXCEPTION WHEN OTHERS THEN
    INSERT INTO pg_temp.r VALUES ('max_messages', SQLSTATE);
END $$;
INSERT INTO pg_temp.r SELECT 'publish', pg_catalog.length(mq.publish('sp_t', '{"t": 1}', key => 'k1')::text)::text;
INSERT INTO pg_temp.r SELECT 'publish_batch', pg_catalog.count(*)::text
    FROM mq.publish_batch('sp_t', ARRAY['{"t": 2}', '{"t": 3}']::jsonb[], ARRAY['k2', 'k3']);
INSERT INTO pg_temp.r SELECT 'relay', mq.relay()::text;
CREATE TEMP TABLE fetched AS SELECT * FROM mq.fetch('sp_t', 'sp_g', 10);
SELECT mq.commit('sp_t', 'sp_g', 0, 2);
CREATE TEMP TABLE fetched_auto AS SELECT * FROM mq.fetch('sp_t', 'sp_g', 10, member => 'm1', auto_commit => true);
SELECT mq.seek('sp_t', 'sp_g', to_position => 'earliest');
INSERT INTO pg_temp.r SELECT 'lag', pg_catalog.sum(lag)::text FROM mq.consumer_lag;
INSERT INTO pg_temp.r SELECT 'maintain', pg_catalog.count(*)::text FROM mq.maintain();
INSERT INTO pg_temp.r SELECT 'drop', mq.drop_queue('sp_new')::text;
INSERT INTO pg_temp.r SELECT 'drop_again', mq.drop_queue('sp_new')::text;

-- and once more with pg_catalog searched first, the default
SET LOCAL search_path = :sp;
INSERT INTO pg_temp.r SELECT 'send2', mq.send('sp_q', '{"h": 5}')::text;
CREATE TEMP TABLE polled2 AS SELECT * FROM mq.poll('sp_q', 10, '1 hour');

SET LOCAL search_path TO DEFAULT;
--------------------------------------------------------------------------

SELECT is((SELECT string_agg(DISTINCT what, ', ') FROM evil.hits), NULL,
          'no shadowing function or operator was called');
SELECT is((SELECT count(*) FROM :sp.queue) + (SELECT count(*) FROM :sp.queue_message)
          + (SELECT count(*) FROM pg_temp.queue) + (SELECT count(*) FROM pg_temp.queue_message), 0::bigint,
          'no shadowing table was written');
SELECT is((SELECT last_value FROM :sp.msg_id_seq), 900000000::bigint, 'the shadowing msg_id_seq was not used');
SELECT ok(:h1 < 900000000 AND :h2 > :h1, 'send ids come from mq''s sequence');
SELECT is((SELECT count(*) FROM mq.list_queues() WHERE queue_name = 'sp_new'), 0::bigint, 'sp_new was created and dropped in mq');

SELECT results_eq($$SELECT payload, headers, attempt FROM polled$$,
                  $$VALUES ('{"h": 1}'::jsonb, '{"x": 1}'::jsonb, 1), ('{"h": 2}', NULL, 1), ('{"h": 3}', '{"y": 3}', 1)$$,
                  'poll: oldest first, payloads and headers');
SELECT ok((SELECT bool_and(visible_at >= now() + interval '20 minutes' AND visible_at <= clock_timestamp() + interval '20 minutes') FROM polled),
          'poll: the queue''s lease');
SELECT results_eq($$SELECT payload, attempt FROM polled_new$$, $$VALUES ('{"n": 1}'::jsonb, 1)$$,
                  'poll of the queue created under the hostile path');
SELECT is((SELECT v FROM r WHERE step = 'batch'),
          (SELECT msg_id::text FROM polled WHERE payload = '{"h": 3}')
            || ',' || (SELECT msg_id::text FROM popped),
          'send_batch ids');
SELECT ok((SELECT v::timestamptz <= clock_timestamp() FROM r WHERE step = 'extend'), 'extend(0)');
SELECT is((SELECT v FROM r WHERE step = 'ack'), 'true', 'ack');
SELECT is((SELECT v FROM r WHERE step = 'ack_array'), '1', 'ack (array): h2 was already acked, h1 is deleted');
SELECT results_eq($$SELECT payload, attempt FROM popped$$,
                  $$VALUES ('{"h": 4}'::jsonb, 1)$$,
                  'pop');
SELECT is((SELECT v FROM r WHERE step = 'stats'), '(0,1,0,1)', 'queue_stats');
SELECT ok((SELECT v LIKE '%sp_new%' AND v LIKE '%sp_q%' FROM r WHERE step = 'list'), 'list_queues');
SELECT is((SELECT v FROM r WHERE step = 'purge'), '1', 'purge_queue');
SELECT is((SELECT v FROM r WHERE step = 'unknown'), '42704', 'unknown queue error');
SELECT is((SELECT v FROM r WHERE step = 'max_messages'), '22023', 'max_messages error');
SELECT is((SELECT v FROM r WHERE step = 'drop'), 'true', 'drop_queue');
SELECT is((SELECT v FROM r WHERE step = 'drop_again'), 'false', 'drop_queue again');
SELECT ok((SELECT v::bigint > :h2 FROM r WHERE step = 'send2'), 'send with only the shadowing schema in search_path');
SELECT is((SELECT count(*) FROM polled2), 1::bigint, 'poll with only the shadowing schema in search_path');

-- the functions that run SQL pin their search_path; the C ones qualify everything
SELECT is((SELECT array_agg(proname::text ORDER BY proname) FROM pg_proc
           WHERE pronamespace = 'mq'::regnamespace
             AND prolang IN (SELECT oid FROM pg_language WHERE lanname IN ('sql', 'plpgsql'))
             AND NOT coalesce(proconfig::text[] @> ARRAY['search_path=pg_catalog, pg_temp'], false)),
          NULL, 'every SQL/plpgsql function has SET search_path = pg_catalog, pg_temp');
SELECT is((SELECT array_agg(proname::text ORDER BY proname) FROM pg_proc
           WHERE pronamespace = 'mq'::regnamespace AND prosecdef AND proname LIKE '\_%'
             AND prorettype <> 'trigger'::regtype),
          NULL, 'no internal function but the outbox''s triggers is SECURITY DEFINER');
SELECT is((SELECT v FROM r WHERE step = 'relay'), '3', 'relay under the hostile path');
SELECT is((SELECT count(*) FROM fetched), 3::bigint, 'fetch: the three records past the warm-up');
SELECT is((SELECT count(*) FROM fetched_auto), 2::bigint, 'fetch after commit of partition 0 up to 2 (auto_commit)');
SELECT ok((SELECT v::bigint > 0 FROM r WHERE step = 'lag'), 'seek to earliest: lag again');
SELECT is((SELECT v FROM r WHERE step = 'publish'), '36', 'publish returned an event id');
SELECT is((SELECT v FROM r WHERE step = 'publish_batch'), '2', 'publish_batch');
SELECT is(mq.ack('sp_q', ARRAY(SELECT msg_id FROM polled UNION SELECT msg_id FROM polled2)), 2::bigint,
          'the two messages still leased (h3, h5) can be acked');
SELECT is((SELECT total FROM mq.queue_stats WHERE queue_name = 'sp_q'), 0::bigint, 'sp_q is empty');
SELECT is((SELECT string_agg(DISTINCT what, ', ') FROM evil.hits), NULL, 'still no shadowing object used');

SELECT * FROM finish();
ROLLBACK;
