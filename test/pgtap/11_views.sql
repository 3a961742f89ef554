-- 11_views: the monitoring views and list functions show a role the objects
-- it holds a privilege on; members of pg_monitor see everything; mq.grants
-- shows a role the grants on what it manages and the grants to it.
BEGIN;
SELECT plan(20);
SET LOCAL client_min_messages = warning;

SELECT mq.create_queue('vw_a');
SELECT mq.create_queue('vw_b');
SELECT mq.create_topic('vw_t1');
SELECT mq.create_topic('vw_t2');
SELECT mq.create_group('vw_t1', 'g');
SELECT mq.create_group('vw_t2', 'g');
SELECT mq.create_exchange('vw_x1', 'fanout');
SELECT mq.create_exchange('vw_x2', 'fanout');

CREATE ROLE mq_tap_viewer NOLOGIN;
CREATE ROLE mq_tap_other NOLOGIN;
CREATE ROLE mq_tap_mon NOLOGIN IN ROLE pg_monitor;
GRANT USAGE ON SCHEMA mq TO mq_tap_viewer, mq_tap_other, mq_tap_mon;
SELECT mq.grant('vw_a', 'mq_tap_viewer', '{receive}');
SELECT mq.grant('vw_t1', 'mq_tap_viewer', '{consume}');
SELECT mq.grant('vw_x1', 'mq_tap_viewer', '{publish}');
SELECT mq.grant('vw_b', 'mq_tap_other', '{send,manage}');
SELECT mq.grant('vw_a', 'mq_tap_other', '{send}');

CREATE TEMP TABLE seen (who text, what text, name text);
GRANT INSERT ON seen TO PUBLIC;
CREATE FUNCTION pg_temp.look(who text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('role', who, true);
    INSERT INTO seen SELECT who, 'queue_stats', queue_name FROM mq.queue_stats WHERE queue_name LIKE 'vw\_%';
    INSERT INTO seen SELECT who, 'list_queues', queue_name FROM mq.list_queues() WHERE queue_name LIKE 'vw\_%';
    INSERT INTO seen SELECT who, 'topic_stats', topic_name FROM mq.topic_stats WHERE topic_name LIKE 'vw\_%';
    INSERT INTO seen SELECT who, 'consumer_lag', topic_name FROM mq.consumer_lag WHERE topic_name LIKE 'vw\_%';
    INSERT INTO seen SELECT who, 'list_topics', topic_name FROM mq.list_topics() WHERE topic_name LIKE 'vw\_%';
    INSERT INTO seen SELECT who, 'list_exchanges', exchange_name FROM mq.list_exchanges() WHERE exchange_name LIKE 'vw\_%';
    INSERT INTO seen SELECT who, 'grants', object_name || ':' || role_name FROM mq.grants WHERE object_name LIKE 'vw\_%';
    PERFORM set_config('role', 'none', true);
END;
$$;
SELECT pg_temp.look('mq_tap_viewer');
SELECT pg_temp.look('mq_tap_other');
SELECT pg_temp.look('mq_tap_mon');

CREATE FUNCTION pg_temp.names(who text, what text) RETURNS text[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(DISTINCT name ORDER BY name), '{}') FROM seen s WHERE s.who = $1 AND s.what = $2
$$;

SELECT is(pg_temp.names('mq_tap_viewer', 'queue_stats'), '{vw_a}', 'queue_stats: the viewer sees its queue');
SELECT is(pg_temp.names('mq_tap_viewer', 'list_queues'), '{vw_a}', 'list_queues: likewise');
SELECT is(pg_temp.names('mq_tap_viewer', 'topic_stats'), '{vw_t1}', 'topic_stats: its topic');
SELECT is(pg_temp.names('mq_tap_viewer', 'consumer_lag'), '{vw_t1}', 'consumer_lag: its topic''s groups');
SELECT is(pg_temp.names('mq_tap_viewer', 'list_topics'), '{vw_t1}', 'list_topics: its topic');
SELECT is(pg_temp.names('mq_tap_viewer', 'list_exchanges'), '{vw_x1}', 'list_exchanges: its exchange');
SELECT is(pg_temp.names('mq_tap_viewer', 'grants'), '{vw_a:mq_tap_viewer,vw_t1:mq_tap_viewer,vw_x1:mq_tap_viewer}',
          'grants: only its own (it manages nothing)');

SELECT is(pg_temp.names('mq_tap_other', 'queue_stats'), '{vw_a,vw_b}', 'queue_stats: send counts as a privilege');
SELECT is(pg_temp.names('mq_tap_other', 'topic_stats'), '{}', 'topic_stats: nothing');
SELECT is(pg_temp.names('mq_tap_other', 'list_exchanges'), '{}', 'list_exchanges: nothing');
SELECT is(pg_temp.names('mq_tap_other', 'grants'), '{vw_a:mq_tap_other,vw_b:mq_tap_other}',
          'grants: its own and those on what it manages');

SELECT is(pg_temp.names('mq_tap_mon', 'queue_stats'), '{vw_a,vw_a_dlq,vw_b,vw_b_dlq}', 'pg_monitor sees every queue');
SELECT is(pg_temp.names('mq_tap_mon', 'list_queues'), '{vw_a,vw_a_dlq,vw_b,vw_b_dlq}', 'and lists them');
SELECT is(pg_temp.names('mq_tap_mon', 'topic_stats'), '{vw_t1,vw_t2}', 'every topic');
SELECT is(pg_temp.names('mq_tap_mon', 'consumer_lag'), '{vw_t1,vw_t2}', 'every group');
SELECT is(pg_temp.names('mq_tap_mon', 'list_exchanges'), '{vw_x1,vw_x2}', 'every exchange');
SELECT is(pg_temp.names('mq_tap_mon', 'grants'),
          '{vw_a:mq_tap_other,vw_a:mq_tap_viewer,vw_b:mq_tap_other,vw_t1:mq_tap_viewer,vw_x1:mq_tap_viewer}',
          'every grant');

-- '*' privileges show every object; the owner and superusers see all
SELECT mq.grant('*', 'mq_tap_other', '{consume}');
DELETE FROM seen;
SELECT pg_temp.look('mq_tap_other');
SELECT is(pg_temp.names('mq_tap_other', 'topic_stats'), '{vw_t1,vw_t2}', 'consume on ''*'': every topic');
SELECT is(pg_temp.names('mq_tap_other', 'queue_stats'), '{vw_a,vw_b}',
          'but no more queues: consume does not apply to them');
SELECT is((SELECT count(*) FROM mq.queue_stats WHERE queue_name LIKE 'vw\_%'), 4::bigint, 'a superuser sees all');

SELECT * FROM finish();
ROLLBACK;
