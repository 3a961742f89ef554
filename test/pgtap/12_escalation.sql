-- 12_escalation: a role that holds every mq privilege tries, as an attacker
-- would, to run its code with someone else's rights or to reach mq's
-- tables: a trigger, rule, policy or foreign key on them, a DBA's
-- GRANT ALL ON ALL TABLES, every internal function, and functions and
-- operators planted in public under a hostile search_path, both for its
-- own calls and for a superuser's.  It gets nothing.
BEGIN;
SELECT * FROM no_plan();
SET LOCAL client_min_messages = warning;

CREATE ROLE mq_tap_evil NOLOGIN;
GRANT USAGE ON SCHEMA mq TO mq_tap_evil;
GRANT CREATE, USAGE ON SCHEMA public TO mq_tap_evil;
SELECT mq.grant('*', 'mq_tap_evil', '{send,receive,publish,consume,manage,create}');
SELECT mq.create_queue('esc_q');
SELECT mq.create_topic('esc_t', partitions => 2);
SELECT mq.create_group('esc_t', 'esc_g', start_at => 'earliest');
SELECT mq.create_exchange('esc_x', 'fanout');
SELECT mq.bind('esc_x', 'esc_q');

-- what the planted code saw; anyone may record
CREATE TABLE public.esc_hits (who text, what text);
GRANT INSERT, SELECT ON public.esc_hits TO PUBLIC;

--------------------------------------------------------------------------
-- mq's tables accept no code and no grants
--------------------------------------------------------------------------
SELECT throws_ok($$GRANT ALL ON ALL TABLES IN SCHEMA mq TO mq_tap_evil$$, '42501', NULL,
                 'GRANT ALL ON ALL TABLES IN SCHEMA mq is refused');
SELECT throws_ok($$GRANT TRIGGER ON mq.queue_message TO mq_tap_evil$$, '42501', NULL,
                 'GRANT TRIGGER on an mq table is refused');
SELECT throws_ok($$GRANT SELECT ON mq.queue_message TO mq_tap_evil$$, '42501', NULL,
                 'GRANT SELECT on an mq table is refused');
SELECT throws_ok($$GRANT UPDATE (payload) ON mq.queue_message TO mq_tap_evil$$, '42501', NULL,
                 'a column grant on an mq table is refused');
SELECT throws_ok($$GRANT USAGE ON SEQUENCE mq.msg_id_seq TO mq_tap_evil$$, '42501', NULL,
                 'a grant on an mq sequence is refused');
SELECT throws_ok($$GRANT INSERT, TRIGGER ON mq.queue_stats TO mq_tap_evil$$, '42501', NULL,
                 'a grant on a view beyond SELECT is refused');
SELECT lives_ok($$GRANT SELECT ON mq.queue_stats TO mq_tap_evil$$, 'SELECT on a view may be granted (its rows are filtered)');
SELECT throws_ok($$ALTER DEFAULT PRIVILEGES IN SCHEMA mq GRANT SELECT ON TABLES TO mq_tap_evil$$, '42501', NULL,
                 'default privileges in schema mq are refused');

SET LOCAL ROLE mq_tap_evil;
CREATE FUNCTION public.esc_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.esc_hits VALUES (current_user, 'trigger');
    ALTER ROLE mq_tap_evil SUPERUSER;
    RETURN NULL;
END $$;
CREATE FUNCTION public.esc_true() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.esc_hits VALUES (current_user, 'policy');
    RETURN true;
END $$;
SELECT throws_ok($$CREATE TRIGGER esc AFTER INSERT ON mq.queue_message
                   FOR EACH ROW EXECUTE FUNCTION public.esc_trigger()$$, '42501', NULL,
                 'the role cannot put a trigger on mq.queue_message');
SELECT throws_ok($$CREATE TABLE public.esc_fk (q integer REFERENCES mq.queue (queue_id) ON DELETE CASCADE)$$,
                 '42501', NULL, 'nor a foreign key into mq.queue');
SELECT throws_ok($$CREATE FUNCTION mq.esc() RETURNS int LANGUAGE sql AS 'SELECT 1'$$, '42501', NULL,
                 'nor a function in schema mq');
SELECT throws_ok($$ALTER TABLE mq.queue ADD CONSTRAINT esc CHECK (public.esc_true())$$, '42501', NULL,
                 'nor a constraint that runs code');
SELECT throws_ok($$TRUNCATE mq.outbox$$, '42501', NULL, 'nor truncate the outbox');
SELECT throws_ok($$INSERT INTO mq.outbox (aggregatetype, payload, seq) VALUES ('esc_q', '{}', 1)$$, '42501', NULL,
                 'nor choose an outbox row''s seq');
SELECT throws_ok($$SELECT * FROM mq.queue_message$$, '42501', NULL, 'nor read mq.queue_message');
SELECT throws_ok($$DELETE FROM mq.queue$$, '42501', NULL, 'nor delete from mq.queue');
RESET ROLE;

-- not even a superuser may attach code to mq's tables
SELECT throws_ok($$CREATE TRIGGER esc AFTER INSERT ON mq.queue_message
                   FOR EACH ROW EXECUTE FUNCTION public.esc_trigger()$$, '42501', NULL,
                 'a trigger on mq.queue_message is refused to a superuser');
SELECT throws_ok($$CREATE TRIGGER esc BEFORE INSERT ON mq.outbox
                   FOR EACH ROW EXECUTE FUNCTION public.esc_trigger()$$, '42501', NULL,
                 'a trigger on mq.outbox is refused');
SELECT throws_ok($$CREATE CONSTRAINT TRIGGER esc AFTER INSERT ON mq.topic_record
                   FOR EACH ROW EXECUTE FUNCTION public.esc_trigger()$$, '42501', NULL,
                 'a constraint trigger on mq.topic_record is refused');
SELECT throws_ok($$CREATE RULE esc AS ON INSERT TO mq.queue DO ALSO SELECT public.esc_true()$$, '42501', NULL,
                 'a rule on mq.queue is refused');
SELECT throws_ok($$CREATE POLICY esc ON mq.queue_message USING (public.esc_true())$$, '42501', NULL,
                 'a policy on mq.queue_message is refused');
SELECT throws_ok($$CREATE TABLE public.esc_fk (q integer REFERENCES mq.queue (queue_id) ON DELETE CASCADE)$$,
                 '42501', NULL, 'a foreign key into mq.queue is refused');
CREATE TABLE public.esc_fk2 (q integer);
SELECT throws_ok($$ALTER TABLE public.esc_fk2 ADD FOREIGN KEY (q) REFERENCES mq.queue (queue_id)$$,
                 '42501', NULL, 'so is one added later');
-- a foreign key made while the guard was lifted does not block other DDL
ALTER EVENT TRIGGER mq_guard DISABLE;
CREATE TABLE public.esc_fk3 (q integer REFERENCES mq.queue (queue_id));
ALTER EVENT TRIGGER mq_guard ENABLE;
SELECT lives_ok($$CREATE TABLE public.esc_ok (q integer PRIMARY KEY);
                  CREATE TABLE public.esc_ok2 (q integer REFERENCES public.esc_ok)$$,
                'DDL elsewhere is not affected');

-- what the role holds on mq's tables: nothing but the outbox's INSERT
SELECT is((SELECT array_agg(c.relname::text || ':' || p ORDER BY 1, 2)
             FROM pg_class c
             CROSS JOIN unnest('{SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER}'::text[]) p
            WHERE c.relnamespace = 'mq'::regnamespace AND c.relkind IN ('r', 'p')
              AND has_table_privilege('mq_tap_evil', c.oid, p)),
          NULL, 'no table privilege on any mq table');
SELECT is((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
            WHERE a.attrelid = 'mq.outbox'::regclass AND a.attnum > 0
              AND has_column_privilege('mq_tap_evil', 'mq.outbox'::regclass, a.attnum, 'INSERT')),
          '{aggregatetype,aggregateid,type,payload,headers}'::text[],
          'INSERT into the outbox''s Debezium columns only');

--------------------------------------------------------------------------
-- internal functions are not executable
--------------------------------------------------------------------------
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
            WHERE p.pronamespace = 'mq'::regnamespace
              AND (p.proname LIKE '\_%' OR p.prorettype IN ('trigger'::regtype, 'event_trigger'::regtype))
              AND has_function_privilege('mq_tap_evil', p.oid, 'EXECUTE')),
          NULL, 'no internal function or trigger function is executable by the role');
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
            WHERE p.pronamespace = 'mq'::regnamespace
              AND (p.proname LIKE '\_%' OR p.prorettype IN ('trigger'::regtype, 'event_trigger'::regtype))
              AND has_function_privilege('public', p.oid, 'EXECUTE')),
          NULL, 'nor by PUBLIC');
CREATE TEMP TABLE esc_calls (fn text, state text);
GRANT INSERT ON esc_calls TO mq_tap_evil;
DO $$
DECLARE
    f record;
    st text;
BEGIN
    -- arguments that the planner cannot fold away, so the call is made
    FOR f IN SELECT p.oid::regproc::text AS name,
                    (SELECT string_agg(format('(SELECT NULL::%s)', t::regtype), ', ' ORDER BY n)
                       FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, n)) AS args
               FROM pg_proc p
              WHERE p.pronamespace = 'mq'::regnamespace AND p.proname LIKE '\_%'
                AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
    LOOP
        BEGIN
            PERFORM set_config('role', 'mq_tap_evil', true);
            EXECUTE format('SELECT %s(%s)', f.name, coalesce(f.args, ''));
            st := 'called';
        EXCEPTION WHEN OTHERS THEN
            st := SQLSTATE;
        END;
        PERFORM set_config('role', 'none', true);
        INSERT INTO esc_calls VALUES (f.name, st);
    END LOOP;
END $$;
RESET ROLE;
SELECT is((SELECT array_agg(fn || ': ' || state ORDER BY fn) FROM esc_calls WHERE state <> '42501'), NULL,
          'calling any internal function is refused with 42501');
SELECT ok((SELECT count(*) FROM esc_calls) > 20, 'all of them were tried');

--------------------------------------------------------------------------
-- planted functions and operators in public, hostile search_path
--------------------------------------------------------------------------
SET LOCAL ROLE mq_tap_evil;
CREATE FUNCTION public.esc_hit(what text) RETURNS void LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$
BEGIN
    INSERT INTO public.esc_hits VALUES (current_user, what);
    BEGIN
        ALTER ROLE mq_tap_evil SUPERUSER;
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
END $$;
CREATE FUNCTION public.esc_int4eq(integer, integer) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM public.esc_hit('integer = integer'); RETURN pg_catalog.int4eq($1, $2); END $$;
CREATE FUNCTION public.esc_int8eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM public.esc_hit('bigint = bigint'); RETURN pg_catalog.int8eq($1, $2); END $$;
CREATE FUNCTION public.esc_int48eq(integer, bigint) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM public.esc_hit('integer = bigint'); RETURN pg_catalog.int48eq($1, $2); END $$;
CREATE FUNCTION public.esc_texteq(text, text) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM public.esc_hit('text = text'); RETURN pg_catalog.texteq($1, $2); END $$;
CREATE FUNCTION public.esc_int8lt(bigint, bigint) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM public.esc_hit('bigint < bigint'); RETURN pg_catalog.int8lt($1, $2); END $$;
CREATE FUNCTION public.esc_int8ge(bigint, bigint) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM public.esc_hit('bigint >= bigint'); RETURN pg_catalog.int8ge($1, $2); END $$;
CREATE FUNCTION public.esc_int4pl(integer, integer) RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM public.esc_hit('integer + integer'); RETURN pg_catalog.int4pl($1, $2); END $$;
CREATE FUNCTION public.esc_int8pl(bigint, bigint) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM public.esc_hit('bigint + bigint'); RETURN pg_catalog.int8pl($1, $2); END $$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM public.esc_hit('now()'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM public.esc_hit('clock_timestamp()'); RETURN pg_catalog.clock_timestamp(); END $$;
CREATE FUNCTION public.nextval(regclass) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM public.esc_hit('nextval()'); RETURN pg_catalog.nextval($1); END $$;
CREATE FUNCTION public.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM public.esc_hit('unnest()'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
CREATE OPERATOR public.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = public.esc_int4eq);
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.esc_int8eq);
CREATE OPERATOR public.= (LEFTARG = integer, RIGHTARG = bigint, FUNCTION = public.esc_int48eq);
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.esc_texteq);
CREATE OPERATOR public.< (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.esc_int8lt);
CREATE OPERATOR public.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.esc_int8ge);
CREATE OPERATOR public.+ (LEFTARG = integer, RIGHTARG = integer, FUNCTION = public.esc_int4pl);
CREATE OPERATOR public.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.esc_int8pl);
RESET ROLE;

CREATE TEMP TABLE esc_r (who text, step text, v text);
GRANT INSERT, SELECT ON esc_r TO mq_tap_evil;

-- the role's own calls, then a superuser's, with public searched first
-- (statements only: no operator may appear in them)
SET LOCAL ROLE mq_tap_evil;
SET LOCAL search_path = public, pg_catalog;
SELECT mq.create_queue('esc_own');
INSERT INTO pg_temp.esc_r SELECT 'evil', 'send', mq.send('esc_q', '{"e": 1}')::text;
INSERT INTO pg_temp.esc_r SELECT 'evil', 'batch', count(*)::text FROM mq.send_batch('esc_q', ARRAY['{}', '{}']::jsonb[]);
INSERT INTO pg_temp.esc_r SELECT 'evil', 'poll', count(*)::text FROM mq.poll('esc_q', 2);
INSERT INTO pg_temp.esc_r SELECT 'evil', 'pop', count(*)::text FROM mq.pop('esc_q', 1);
INSERT INTO pg_temp.esc_r SELECT 'evil', 'publish', mq.publish('esc_t', '{"p": 1}', key => 'k')::text;
INSERT INTO pg_temp.esc_r SELECT 'evil', 'publish_x', mq.publish('esc_x', '{"p": 2}')::text;
INSERT INTO pg_temp.esc_r SELECT 'evil', 'relay', mq.relay()::text;
INSERT INTO pg_temp.esc_r SELECT 'evil', 'fetch', count(*)::text FROM mq.fetch('esc_t', 'esc_g', 10);
SELECT mq.commit('esc_t', 'esc_g', 0, 0);
SELECT mq.seek('esc_t', 'esc_g', to_position => 'earliest');
INSERT INTO pg_temp.esc_r SELECT 'evil', 'fetch_auto', count(*)::text FROM mq.fetch('esc_t', 'esc_g', 10, auto_commit => true);
INSERT INTO pg_temp.esc_r SELECT 'evil', 'process_once', mq.process_once('esc_q', 'k1')::text;
INSERT INTO pg_temp.esc_r SELECT 'evil', 'maintain', count(*)::text FROM mq.maintain();
INSERT INTO pg_temp.esc_r SELECT 'evil', 'stats', count(*)::text FROM mq.queue_stats;
INSERT INTO pg_temp.esc_r SELECT 'evil', 'lag', count(*)::text FROM mq.consumer_lag;
INSERT INTO pg_temp.esc_r SELECT 'evil', 'topic_stats', count(*)::text FROM mq.topic_stats;
INSERT INTO pg_temp.esc_r SELECT 'evil', 'grants', count(*)::text FROM mq.grants;
INSERT INTO pg_temp.esc_r SELECT 'evil', 'purge', mq.purge_queue('esc_own')::text;
INSERT INTO pg_temp.esc_r SELECT 'evil', 'drop', mq.drop_queue('esc_own')::text;
RESET ROLE;
SET LOCAL search_path = public, pg_catalog;
INSERT INTO pg_temp.esc_r SELECT 'super', 'send', mq.send('esc_q', '{"s": 1}')::text;
INSERT INTO pg_temp.esc_r SELECT 'super', 'poll', count(*)::text FROM mq.poll('esc_q', 10);
INSERT INTO pg_temp.esc_r SELECT 'super', 'publish', mq.publish('esc_t', '{"p": 3}', key => 'k')::text;
INSERT INTO pg_temp.esc_r SELECT 'super', 'batch', count(*)::text FROM mq.publish_batch('esc_t', ARRAY['{}', '{}']::jsonb[]);
INSERT INTO pg_temp.esc_r SELECT 'super', 'relay', mq.relay()::text;
INSERT INTO pg_temp.esc_r SELECT 'super', 'fetch', count(*)::text FROM mq.fetch('esc_t', 'esc_g', 10, member => 'm1');
SELECT mq.commit('esc_t', 'esc_g', 1, 0, member => 'm1');
INSERT INTO pg_temp.esc_r SELECT 'super', 'maintain', count(*)::text FROM mq.maintain();
SELECT mq.run_maintenance();
SELECT mq.recount();
INSERT INTO pg_temp.esc_r SELECT 'super', 'stats', count(*)::text FROM mq.queue_stats;
INSERT INTO pg_temp.esc_r SELECT 'super', 'lag', count(*)::text FROM mq.consumer_lag;
SELECT mq.drop_group('esc_t', 'esc_g');
SELECT mq.drop_topic('esc_t');
SELECT mq.drop_exchange('esc_x');
SET LOCAL search_path TO DEFAULT;
--------------------------------------------------------------------------

SELECT is((SELECT string_agg(DISTINCT who || ': ' || what, ', ') FROM public.esc_hits), NULL,
          'no planted function or operator ran, for the role or for the superuser');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'mq_tap_evil'), false, 'the role is not a superuser');
SELECT is((SELECT v FROM esc_r WHERE who = 'evil' AND step = 'batch'), '2', 'the role''s calls worked: send_batch');
SELECT is((SELECT v FROM esc_r WHERE who = 'evil' AND step = 'poll'), '2', 'poll');
SELECT ok((SELECT v::bigint >= 2 FROM esc_r WHERE who = 'evil' AND step = 'relay'), 'relay');
SELECT ok((SELECT v::bigint >= 1 FROM esc_r WHERE who = 'evil' AND step = 'fetch'), 'fetch');
SELECT is((SELECT v FROM esc_r WHERE who = 'evil' AND step = 'drop'), 'true', 'drop_queue of its own queue');
SELECT ok((SELECT v::bigint >= 1 FROM esc_r WHERE who = 'super' AND step = 'fetch'), 'the superuser''s fetch');

SELECT * FROM finish();
ROLLBACK;
