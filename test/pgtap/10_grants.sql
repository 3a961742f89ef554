-- 10_grants: the grant matrix.  Every public function, called by a role
-- that holds the privilege it needs (on the object, or on '*') and by roles
-- that hold nothing or every other privilege of the object: allowed, or
-- refused with 42501.  Each call runs in a subtransaction that is rolled
-- back, as a fresh role, so the cases do not see each other.
BEGIN;
SELECT * FROM no_plan();
SET LOCAL client_min_messages = warning;

SELECT mq.create_queue('gm_q');
SELECT mq.create_queue('gm_q2');
SELECT mq.create_queue('gm_q3');
SELECT mq.send('gm_q', '{"m": 1}') AS gm_msg \gset
SELECT mq.create_topic('gm_t', partitions => 2);
SELECT mq.create_group('gm_t', 'gm_g');
SELECT mq.create_exchange('gm_x', 'fanout');
SELECT mq.create_exchange('gm_x2', 'fanout');
SELECT mq.bind('gm_x', 'gm_q2');

-- outcome(sql, grants): run sql as a new role that holds grants (pairs of
-- object name and privilege array), in a subtransaction that is undone.
CREATE FUNCTION pg_temp.outcome(sql text, VARIADIC grants text[] DEFAULT '{}')
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    CREATE ROLE mq_tap_r NOLOGIN;
    GRANT USAGE ON SCHEMA mq TO mq_tap_r;
    FOR i IN 1 .. coalesce(array_length(grants, 1), 0) / 2 LOOP
        PERFORM mq.grant(grants[2 * i - 1], 'mq_tap_r', grants[2 * i]::text[]);
    END LOOP;
    PERFORM set_config('role', 'mq_tap_r', true);
    EXECUTE sql;
    RAISE EXCEPTION 'allowed' USING ERRCODE = 'P0099';
EXCEPTION WHEN OTHERS THEN
    RETURN CASE SQLSTATE WHEN 'P0099' THEN 'allowed' WHEN '42501' THEN 'denied'
                ELSE 'error ' || SQLSTATE || ': ' || SQLERRM END;
END;
$$;

-- the cases: a call, the object it needs a privilege on, the privilege
CREATE TEMP TABLE cases (fn text, sql text, obj text, priv text);
INSERT INTO cases VALUES
  ('send',            $$SELECT mq.send('gm_q', '{}')$$,                          'gm_q', 'send'),
  ('send_batch',      $$SELECT mq.send_batch('gm_q', ARRAY['{}']::jsonb[])$$,    'gm_q', 'send'),
  ('publish (queue)', $$SELECT mq.publish('gm_q', '{}')$$,                       'gm_q', 'send'),
  ('publish_batch (queue)', $$SELECT mq.publish_batch('gm_q', ARRAY['{}']::jsonb[])$$, 'gm_q', 'send'),
  ('outbox INSERT (queue)', $$INSERT INTO mq.outbox (aggregatetype, payload) VALUES ('gm_q', '{}')$$, 'gm_q', 'send'),
  ('poll',            $$SELECT mq.poll('gm_q')$$,                                'gm_q', 'receive'),
  ('pop',             $$SELECT mq.pop('gm_q')$$,                                 'gm_q', 'receive'),
  ('ack',             $$SELECT mq.ack('gm_q', 0::bigint)$$,                      'gm_q', 'receive'),
  ('ack (array)',     $$SELECT mq.ack('gm_q', ARRAY[0]::bigint[])$$,             'gm_q', 'receive'),
  ('extend',          $$SELECT mq.extend('gm_q', 0, '1 second')$$,               'gm_q', 'receive'),
  ('nack',            format($$SELECT mq.nack('gm_q', %s)$$, :gm_msg),           'gm_q', 'receive'),
  ('reject',          format($$SELECT mq.reject('gm_q', %s)$$, :gm_msg),         'gm_q', 'receive'),
  ('process_once',    $$SELECT mq.process_once('gm_q', 'k1')$$,                  'gm_q', 'receive'),
  ('alter_queue',     $$SELECT mq.alter_queue('gm_q', max_attempts => 3)$$,      'gm_q', 'manage'),
  ('purge_queue',     $$SELECT mq.purge_queue('gm_q')$$,                         'gm_q', 'manage'),
  ('redrive',         $$SELECT mq.redrive('gm_q')$$,                             'gm_q', 'manage'),
  ('drop_queue',      $$SELECT mq.drop_queue('gm_q3')$$,                         'gm_q3', 'manage'),
  ('grant (queue)',   $$SELECT mq.grant('gm_q', 'PUBLIC', '{send}')$$,           'gm_q', 'manage'),
  ('revoke (queue)',  $$SELECT mq.revoke('gm_q', 'PUBLIC')$$,                    'gm_q', 'manage'),
  ('create_queue',    $$SELECT mq.create_queue('gm_new')$$,                      '*', 'create'),
  ('publish (topic)', $$SELECT mq.publish('gm_t', '{}')$$,                       'gm_t', 'publish'),
  ('publish_batch (topic)', $$SELECT mq.publish_batch('gm_t', ARRAY['{}']::jsonb[])$$, 'gm_t', 'publish'),
  ('outbox INSERT (topic)', $$INSERT INTO mq.outbox (aggregatetype, payload) VALUES ('gm_t', '{}')$$, 'gm_t', 'publish'),
  ('fetch',           $$SELECT mq.fetch('gm_t', 'gm_g')$$,                       'gm_t', 'consume'),
  ('commit',          $$SELECT mq.commit('gm_t', 'gm_g', 0, 0)$$,                'gm_t', 'consume'),
  ('seek',            $$SELECT mq.seek('gm_t', 'gm_g', to_position => 'earliest')$$, 'gm_t', 'consume'),
  ('create_group',    $$SELECT mq.create_group('gm_t', 'gm_g2')$$,               'gm_t', 'consume'),
  ('drop_group',      $$SELECT mq.drop_group('gm_t', 'gm_g')$$,                  'gm_t', 'consume'),
  ('drop_topic',      $$SELECT mq.drop_topic('gm_t')$$,                          'gm_t', 'manage'),
  ('grant (topic)',   $$SELECT mq.grant('gm_t', 'PUBLIC', '{consume}')$$,        'gm_t', 'manage'),
  ('create_topic',    $$SELECT mq.create_topic('gm_new_t')$$,                    '*', 'create'),
  ('publish (exchange)', $$SELECT mq.publish('gm_x', '{}')$$,                    'gm_x', 'publish'),
  ('publish_batch (exchange)', $$SELECT mq.publish_batch('gm_x', ARRAY['{}']::jsonb[])$$, 'gm_x', 'publish'),
  ('outbox INSERT (exchange)', $$INSERT INTO mq.outbox (aggregatetype, payload) VALUES ('gm_x', '{}')$$, 'gm_x', 'publish'),
  ('unbind',          $$SELECT mq.unbind('gm_x', 'gm_q2')$$,                     'gm_x', 'manage'),
  ('drop_exchange',   $$SELECT mq.drop_exchange('gm_x2')$$,                      'gm_x2', 'manage'),
  ('grant (exchange)', $$SELECT mq.grant('gm_x', 'PUBLIC', '{publish}')$$,       'gm_x', 'manage'),
  ('create_exchange', $$SELECT mq.create_exchange('gm_new_x', 'direct')$$,       '*', 'create'),
  ('relay',           $$SELECT mq.relay()$$,                                     '*', 'manage'),
  ('maintain',        $$SELECT mq.maintain()$$,                                  '*', 'manage'),
  ('run_maintenance', $$SELECT mq.run_maintenance()$$,                           '*', 'manage'),
  ('recount',         $$SELECT mq.recount()$$,                                   '*', 'manage'),
  ('grant (*)',       $$SELECT mq.grant('*', 'PUBLIC', '{send}')$$,              '*', 'manage');

-- every privilege of an object's kind but one
CREATE FUNCTION pg_temp.others(obj text, priv text) RETURNS text[] LANGUAGE sql AS $$
    SELECT array_agg(p) FROM unnest(CASE
        WHEN obj = '*' THEN '{send,receive,publish,consume,manage,create}'::text[]
        WHEN obj LIKE 'gm_q%' THEN '{send,receive,manage}'
        WHEN obj LIKE 'gm_t%' THEN '{publish,consume,manage}'
        ELSE '{publish,manage}' END) p WHERE p <> priv
$$;

SELECT is(pg_temp.outcome(sql), 'denied', fn || ': refused to a role without privileges') FROM cases;
SELECT is(pg_temp.outcome(sql, obj, pg_temp.others(obj, priv)::text), 'denied',
          fn || ': refused to a role holding every privilege but ' || priv || ' on ' || obj) FROM cases;
SELECT is(pg_temp.outcome(sql, obj, ARRAY[priv]::text), 'allowed',
          fn || ': allowed with ' || priv || ' on ' || obj) FROM cases;
SELECT is(pg_temp.outcome(sql, '*', ARRAY[priv]::text), 'allowed',
          fn || ': allowed with ' || priv || ' on ''*''') FROM cases WHERE obj <> '*';

-- grants to PUBLIC and to a role one inherits from count
CREATE ROLE mq_tap_holder NOLOGIN;
SELECT mq.grant('gm_q', 'mq_tap_holder', '{receive}');
CREATE FUNCTION pg_temp.as_member(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    CREATE ROLE mq_tap_m NOLOGIN IN ROLE mq_tap_holder;
    GRANT USAGE ON SCHEMA mq TO mq_tap_m;
    PERFORM set_config('role', 'mq_tap_m', true);
    EXECUTE sql;
    RAISE EXCEPTION 'allowed' USING ERRCODE = 'P0099';
EXCEPTION WHEN OTHERS THEN
    RETURN CASE SQLSTATE WHEN 'P0099' THEN 'allowed' WHEN '42501' THEN 'denied'
                ELSE 'error ' || SQLSTATE || ': ' || SQLERRM END;
END;
$$;
SELECT is(pg_temp.as_member($$SELECT mq.poll('gm_q')$$), 'allowed', 'a member of a holder of receive may poll');
SELECT is(pg_temp.as_member($$SELECT mq.send('gm_q', '{}')$$), 'denied', 'but not send');
SELECT is(pg_temp.outcome($$SELECT mq.poll('gm_q')$$, 'gm_q', '{receive}'), 'allowed', 'receive granted to the role');
SAVEPOINT pub;
SELECT mq.grant('gm_q', 'PUBLIC', '{send}');
SELECT is(pg_temp.outcome($$SELECT mq.send('gm_q', '{}')$$), 'allowed', 'send granted to PUBLIC');
SELECT is(pg_temp.outcome($$SELECT mq.poll('gm_q')$$), 'denied', 'PUBLIC''s send is not receive');
ROLLBACK TO SAVEPOINT pub;
SELECT is(pg_temp.outcome($$SELECT mq.send('gm_q', '{}')$$), 'denied', 'revoked with the savepoint');

-- the functions that need no privilege
SELECT is(pg_temp.outcome($$SELECT mq.murmur2('\x00'::bytea)$$), 'allowed', 'murmur2 needs nothing');
SELECT is(pg_temp.outcome($$SELECT mq.has_privilege('gm_q')$$), 'allowed', 'has_privilege needs nothing');
SELECT is(pg_temp.outcome($$SELECT * FROM mq.grants$$), 'allowed', 'mq.grants needs nothing');
SELECT is(pg_temp.outcome($$SELECT * FROM mq.list_queues()$$), 'allowed', 'list_queues needs nothing');
SELECT is(pg_temp.outcome($$SELECT * FROM mq.list_topics()$$), 'allowed', 'list_topics needs nothing');
SELECT is(pg_temp.outcome($$SELECT * FROM mq.list_exchanges()$$), 'allowed', 'list_exchanges needs nothing');
SELECT is(pg_temp.outcome($$SELECT * FROM mq.queue_stats$$), 'allowed', 'queue_stats needs nothing');
SELECT is(pg_temp.outcome($$SELECT * FROM mq.topic_stats$$), 'allowed', 'topic_stats needs nothing');
SELECT is(pg_temp.outcome($$SELECT * FROM mq.consumer_lag$$), 'allowed', 'consumer_lag needs nothing');

-- the privileges an operation needs on a second object
SELECT is(pg_temp.outcome($$SELECT mq.bind('gm_x', 'gm_q')$$, 'gm_x', '{manage}'), 'denied',
          'bind needs send on the destination queue');
SELECT is(pg_temp.outcome($$SELECT mq.bind('gm_x', 'gm_q')$$, 'gm_x', '{manage}', 'gm_q', '{send}'), 'allowed',
          'bind: manage on the exchange and send on the queue');
SELECT is(pg_temp.outcome($$SELECT mq.bind('gm_x', 'gm_t')$$, 'gm_x', '{manage}', 'gm_t', '{consume,manage}'), 'denied',
          'bind needs publish on the destination topic');
SELECT is(pg_temp.outcome($$SELECT mq.bind('gm_x', 'gm_t')$$, 'gm_x', '{manage}', 'gm_t', '{publish}'), 'allowed',
          'bind: publish on the topic');
SELECT is(pg_temp.outcome($$SELECT mq.bind('gm_x', 'gm_x2')$$, 'gm_x', '{manage}'), 'denied',
          'bind needs publish on the destination exchange');
SELECT is(pg_temp.outcome($$SELECT mq.create_queue('gm_new', dead_letter_queue => 'gm_q')$$, '*', '{create}'), 'denied',
          'create_queue with another queue as DLQ needs send on it');
SELECT is(pg_temp.outcome($$SELECT mq.create_queue('gm_new', dead_letter_queue => 'gm_q')$$, '*', '{create}', 'gm_q', '{send}'),
          'allowed', 'create_queue: create and send on the DLQ');
SELECT is(pg_temp.outcome($$SELECT mq.alter_queue('gm_q', dead_letter_queue => 'gm_q2')$$, 'gm_q', '{manage}'), 'denied',
          'alter_queue to another DLQ needs send on it');
SELECT is(pg_temp.outcome($$SELECT mq.create_exchange('gm_new_x', 'direct', alternate_exchange => 'gm_x')$$, '*', '{create}'),
          'denied', 'create_exchange with an alternate exchange needs publish on it');
SELECT is(pg_temp.outcome($$SELECT mq.process_once('gm_t', 'k')$$, 'gm_t', '{consume}'), 'allowed',
          'process_once for a topic''s consumers: consume on the topic');
SELECT is(pg_temp.outcome($$SELECT mq.process_once('billing', 'k')$$, 'gm_q', '{receive}'), 'denied',
          'process_once for a name that is no object needs receive on ''*''');
SELECT is(pg_temp.outcome($$SELECT mq.process_once('billing', 'k')$$, '*', '{receive}'), 'allowed',
          'process_once for a name that is no object with receive on ''*''');
SELECT is(pg_temp.outcome($$SELECT mq.send('gm_nosuch', '{}')$$), 'error 42704: queue "gm_nosuch" does not exist',
          'an unknown queue is reported as such');
SELECT is(pg_temp.outcome($$SELECT mq.purge_queue('gm_nosuch')$$), 'denied',
          'managing an unknown queue needs manage on ''*''');

-- the creator owns what it creates, and may grant it
CREATE FUNCTION pg_temp.creator(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    CREATE ROLE mq_tap_c NOLOGIN;
    CREATE ROLE mq_tap_c2 NOLOGIN;
    GRANT USAGE ON SCHEMA mq TO mq_tap_c, mq_tap_c2;
    GRANT mq_tap_c2 TO mq_tap_c;
    PERFORM mq.grant('*', 'mq_tap_c', '{create}');
    PERFORM set_config('role', 'mq_tap_c', true);
    EXECUTE sql;
    RAISE EXCEPTION 'allowed' USING ERRCODE = 'P0099';
EXCEPTION WHEN OTHERS THEN
    RETURN CASE SQLSTATE WHEN 'P0099' THEN 'allowed' WHEN '42501' THEN 'denied'
                ELSE 'error ' || SQLSTATE || ': ' || SQLERRM END;
END;
$$;
SELECT is(pg_temp.creator($$
    SELECT mq.create_queue('gm_own');
    SELECT mq.send('gm_own', '{}');
    SELECT mq.poll('gm_own');
    SELECT mq.send('gm_own_dlq', '{}');
    SELECT mq.alter_queue('gm_own', max_attempts => 2);
    SELECT mq.grant('gm_own', 'mq_tap_c2', '{send}');
    SELECT mq.create_topic('gm_own_t');
    SELECT mq.create_group('gm_own_t', 'g');
    SELECT mq.publish('gm_own_t', '{}');
    SELECT mq.create_exchange('gm_own_x', 'fanout');
    SELECT mq.bind('gm_own_x', 'gm_own');
    SELECT mq.drop_exchange('gm_own_x');
    SELECT mq.drop_topic('gm_own_t');
    SELECT mq.purge_queue('gm_own');
    SELECT mq.drop_queue('gm_own');$$), 'allowed', 'the creator may use, manage, grant and drop what it created (and its DLQ)');
SELECT is(pg_temp.creator($$SELECT mq.create_queue('gm_own'); SELECT mq.send('gm_q', '{}')$$), 'denied',
          'but nothing else');
SELECT is(pg_temp.creator($$SELECT mq.create_queue('gm_own'); SET LOCAL ROLE mq_tap_c2; SELECT mq.poll('gm_own')$$), 'denied',
          'another role may not use it');

-- refusals name the object and the missing privilege
CREATE FUNCTION pg_temp.message(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    CREATE ROLE mq_tap_r NOLOGIN;
    GRANT USAGE ON SCHEMA mq TO mq_tap_r;
    PERFORM set_config('role', 'mq_tap_r', true);
    EXECUTE sql;
    RAISE EXCEPTION 'allowed' USING ERRCODE = 'P0099';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLERRM;
END;
$$;
SELECT is(pg_temp.message($$SELECT mq.send('gm_q', '{}')$$),
          'permission denied for queue "gm_q": send privilege required', 'send refused: the message');
SELECT is(pg_temp.message($$SELECT mq.fetch('gm_t', 'gm_g')$$),
          'permission denied for topic "gm_t": consume privilege required', 'fetch refused: the message');
SELECT is(pg_temp.message($$SELECT mq.publish('gm_x', '{}')$$),
          'permission denied for exchange "gm_x": publish privilege required', 'publish refused: the message');
SELECT is(pg_temp.message($$SELECT mq.create_queue('gm_new')$$),
          'permission denied: create privilege on ''*'' required', 'create_queue refused: the message');

-- mq.grant and mq.revoke: checks and the catalog
SELECT throws_ok($$SELECT mq.grant('gm_q', 'mq_tap_holder', '{publish}')$$, '0LP01', NULL, 'publish does not apply to a queue');
SELECT throws_ok($$SELECT mq.grant('gm_t', 'mq_tap_holder', '{send}')$$, '0LP01', NULL, 'send does not apply to a topic');
SELECT throws_ok($$SELECT mq.grant('gm_q', 'mq_tap_holder', '{create}')$$, '0LP01', NULL, 'create applies to ''*'' only');
SELECT throws_ok($$SELECT mq.grant('gm_q', 'mq_tap_holder', '{fly}')$$, '22023', NULL, 'unknown privilege');
SELECT throws_ok($$SELECT mq.grant('gm_q', 'mq_tap_holder', '{}')$$, '22023', NULL, 'no privilege');
SELECT throws_ok($$SELECT mq.grant('gm_nosuch', 'mq_tap_holder', '{send}')$$, '42704', NULL, 'unknown object');
SELECT throws_ok($$SELECT mq.grant('gm_q', 'mq_tap_nosuch', '{send}')$$, '42704', NULL, 'unknown role');
SELECT throws_ok($$SELECT mq.grant(NULL, 'mq_tap_holder', '{send}')$$, '22004', NULL, 'NULL object');
SELECT throws_ok($$SELECT mq.grant('gm_q', NULL, '{send}')$$, '22004', NULL, 'NULL role');
SELECT mq.grant('gm_q', 'mq_tap_holder', '{send,manage}');
SELECT mq.grant('*', 'PUBLIC', '{create}');
SELECT results_eq($$SELECT object_name, object_kind, role_name, privileges FROM mq.grants
                    WHERE role_name IN ('mq_tap_holder', 'PUBLIC') ORDER BY 1$$,
                  $$VALUES ('*', '*', 'PUBLIC', '{create}'::text[]),
                           ('gm_q', 'queue', 'mq_tap_holder', '{send,receive,manage}')$$,
                  'mq.grants shows what was granted');
SELECT mq.revoke('gm_q', 'mq_tap_holder', '{send}');
SELECT mq.revoke('*', 'PUBLIC');
SELECT results_eq($$SELECT object_name, privileges FROM mq.grants WHERE role_name IN ('mq_tap_holder', 'PUBLIC')$$,
                  $$VALUES ('gm_q', '{receive,manage}'::text[])$$, 'revoke takes privileges back; NULL takes all');
SELECT mq.revoke('gm_q', 'mq_tap_holder');
SELECT is((SELECT count(*) FROM mq.acl WHERE grantee = 'mq_tap_holder'::regrole), 0::bigint, 'a row without privileges is deleted');
SELECT mq.grant('gm_q3', 'mq_tap_holder', '{send}');
SELECT mq.drop_queue('gm_q3');
SELECT is((SELECT count(*) FROM mq.acl WHERE grantee = 'mq_tap_holder'::regrole), 0::bigint, 'dropping an object drops its grants');

-- every entry point runs as the extension's owner and checks first (a
-- redefinition elsewhere must keep both)
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
            WHERE p.pronamespace = 'mq'::regnamespace AND p.proname !~ '^_' AND NOT p.prosecdef
              AND p.proname NOT IN ('murmur2', 'has_privilege')),
          NULL, 'every public function but murmur2 and has_privilege is SECURITY DEFINER');
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
            WHERE p.pronamespace = 'mq'::regnamespace AND p.proname !~ '^_'
              AND p.prolang IN (SELECT oid FROM pg_language WHERE lanname IN ('sql', 'plpgsql'))
              AND p.prosrc !~ 'mq\._acl_(check|visible)\('),
          NULL, 'every SQL entry point checks a privilege or filters its rows');
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
            WHERE p.pronamespace = 'mq'::regnamespace AND p.proname !~ '^_'
              AND NOT has_function_privilege('public', p.oid, 'EXECUTE')),
          NULL, 'every public function is executable by PUBLIC (mq checks the privileges)');

SELECT * FROM finish();
ROLLBACK;
