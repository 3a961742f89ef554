-- 13_upgrade_grants: a 0.1.0 installation whose DBA followed the usual
-- advice (GRANT ALL ON ALL TABLES IN SCHEMA mq): the application works
-- through its table privileges at 0.1.0 with this library; ALTER EXTENSION
-- mq UPDATE takes every table privilege away (views keep SELECT) and from
-- then on, in the same session, only mq grants count.
BEGIN;
SELECT plan(7);
SET LOCAL client_min_messages = warning;
DROP EXTENSION mq;
CREATE EXTENSION mq VERSION '0.1.0';
CREATE ROLE mq_tap_old NOLOGIN;
GRANT USAGE ON SCHEMA mq TO mq_tap_old;
GRANT ALL ON ALL TABLES IN SCHEMA mq TO mq_tap_old;
GRANT ALL ON ALL SEQUENCES IN SCHEMA mq TO mq_tap_old;
SELECT mq.create_queue('up_q');

SET LOCAL ROLE mq_tap_old;
SELECT ok(mq.send('up_q', '{"at": "0.1.0"}') > 0, 'at 0.1.0 the role sends with its table privileges');
RESET ROLE;

ALTER EXTENSION mq UPDATE;
SELECT is((SELECT array_agg(DISTINCT c.relname::text || ':' || a.privilege_type)
             FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
            WHERE c.relnamespace = 'mq'::regnamespace AND a.grantee = 'mq_tap_old'::regrole
              AND (c.relkind <> 'v' OR a.privilege_type <> 'SELECT')),
          NULL, 'the update revoked every privilege on mq''s tables and sequences (views: SELECT only)');
SELECT ok((SELECT bool_and(has_table_privilege('mq_tap_old', c.oid, 'SELECT')) FROM pg_class c
            WHERE c.oid IN ('mq.queue_stats'::regclass, 'mq.consumer_lag'::regclass, 'mq.topic_stats'::regclass)),
          'the views of 0.1.0 stay readable');
SET LOCAL ROLE mq_tap_old;
SELECT throws_ok($$SELECT mq.send('up_q', '{}')$$, '42501', NULL,
                 'after the update this session''s role needs an mq grant');
SELECT is((SELECT count(*) FROM mq.queue_stats), 0::bigint, 'and sees no queue');
RESET ROLE;
SELECT mq.grant('up_q', 'mq_tap_old', '{send}');
SET LOCAL ROLE mq_tap_old;
SELECT ok(mq.send('up_q', '{"at": "0.2.0"}') > 0, 'with send on the queue it sends');
RESET ROLE;
SELECT is((SELECT count(*) FROM mq.queue_message m JOIN mq.queue q USING (queue_id) WHERE q.queue_name = 'up_q'),
          2::bigint, 'both messages are in the queue');

SELECT * FROM finish();
ROLLBACK;
