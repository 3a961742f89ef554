--
-- modes: leased mode (poll commits, ack later) and locked mode (poll,
-- work and ack in one transaction), seen from a second session too.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
\set stats 'SELECT ready, in_flight, delayed, total FROM mq.queue_stats WHERE queue_name = '
CREATE EXTENSION IF NOT EXISTS dblink;
-- a second session on this database
SELECT dblink_connect('other',
         format('host=%s port=%s dbname=%s user=%s',
                split_part(current_setting('unix_socket_directories'), ',', 1),
                current_setting('port'), current_database(), current_user)) AS connected;
-- never let a blocked poll hang the suite
SELECT dblink_exec('other', $$SET statement_timeout = '10s'$$);
SELECT mq.create_queue('mode_q', max_attempts => 10);

--
-- a message is visible to other sessions only after commit
--
BEGIN;
SELECT mq.send('mode_q', '{"m": 1}') AS m1 \gset
SELECT n AS other_polled FROM dblink('other', $$SELECT count(*) FROM mq.poll('mode_q', 10, '0')$$) AS t(n bigint);
COMMIT;
SELECT id = :m1 AS other_got_it, attempt
FROM dblink('other', $$SELECT msg_id, attempt FROM mq.poll('mode_q', 10, '0')$$) AS t(id bigint, attempt integer);
-- a rolled-back send leaves nothing
BEGIN;
SELECT mq.send('mode_q', '{"m": "rolled back"}') IS NOT NULL AS sent;
SELECT count(*) AS batch FROM mq.send_batch('mode_q', ARRAY['{"m": "rb1"}', '{"m": "rb2"}']::jsonb[]);
ROLLBACK;
:stats 'mode_q';

--
-- leased mode: the lease survives the polling transaction
--
SELECT msg_id = :m1 AS leased, attempt FROM mq.poll('mode_q', 1, '1 hour');
:stats 'mode_q';
SELECT n AS other_polled FROM dblink('other', $$SELECT count(*) FROM mq.poll('mode_q', 10)$$) AS t(n bigint);
-- an ack in a rolled-back transaction leaves the message
BEGIN;
SELECT mq.ack('mode_q', :m1) AS acked;
SELECT mq.ack('mode_q', ARRAY[:m1]) AS acked_again;
ROLLBACK;
:stats 'mode_q';
-- release, so the next test sees it ready
SELECT mq.extend('mode_q', :m1, '0') IS NOT NULL AS released;
:stats 'mode_q';

--
-- locked mode: poll, work and ack in one transaction
--
BEGIN;
SELECT msg_id = :m1 AS locked, attempt FROM mq.poll('mode_q', 1, '1 hour');
-- while we hold it, the other session cannot get it
SELECT n AS other_polled FROM dblink('other', $$SELECT count(*) FROM mq.poll('mode_q', 10)$$) AS t(n bigint);
SELECT n AS other_popped FROM dblink('other', $$SELECT count(*) FROM mq.pop('mode_q', 10)$$) AS t(n bigint);
ROLLBACK;
-- rolled back: ready again at once, no lease left
:stats 'mode_q';
SELECT n AS other_polled FROM dblink('other', $$SELECT count(*) FROM mq.poll('mode_q', 10, '0')$$) AS t(n bigint);
BEGIN;
SELECT msg_id = :m1 AS locked FROM mq.poll('mode_q', 1, '1 hour');
SELECT mq.ack('mode_q', :m1) AS acked;
SELECT count(*) AS polled_after_ack FROM mq.poll('mode_q', 10);
COMMIT;
:stats 'mode_q';
SELECT n AS other_polled FROM dblink('other', $$SELECT count(*) FROM mq.poll('mode_q', 10)$$) AS t(n bigint);

-- locked mode with pop: a rolled-back pop deletes nothing
SELECT mq.send('mode_q', '{"m": 2}') AS m2 \gset
BEGIN;
SELECT msg_id = :m2 AS popped, payload FROM mq.pop('mode_q');
:stats 'mode_q';
ROLLBACK;
:stats 'mode_q';
SELECT msg_id = :m2 AS popped, payload FROM mq.pop('mode_q');
:stats 'mode_q';

--
-- queue administration is transactional and seen by other sessions
--
SELECT mq.send('mode_q', '{"m": 3}') AS m3 \gset
BEGIN;
SELECT mq.drop_queue('mode_q') AS dropped;
SELECT count(*) AS queues FROM mq.list_queues() WHERE queue_name = 'mode_q';
ROLLBACK;
:stats 'mode_q';
BEGIN;
SELECT mq.create_queue('mode_new');
SELECT mq.send('mode_new', '{"m": "new"}') IS NOT NULL AS sent;
SELECT count(*) AS polled_own FROM mq.poll('mode_new', 10, '0');
ROLLBACK;
SELECT count(*) AS mode_new_exists FROM mq.list_queues() WHERE queue_name = 'mode_new';
-- the other session caches the queue; dropping and re-creating it here must
-- not leave it with a stale copy
SELECT id = :m3 AS other_got_m3
FROM dblink('other', $$SELECT msg_id FROM mq.poll('mode_q', 10)$$) AS t(id bigint);
SELECT mq.drop_queue('mode_q') AS dropped;
SELECT mq.create_queue('mode_q');
SELECT mq.send('mode_q', '{"m": "fresh"}') AS m4 \gset
SELECT id = :m4 AS other_got_fresh, payload
FROM dblink('other', $$SELECT msg_id, payload FROM mq.pop('mode_q', 10)$$) AS t(id bigint, payload jsonb);
SELECT mq.drop_queue('mode_q') AS dropped;
SELECT ok AS other_sees_drop
FROM dblink('other', $$SELECT NOT EXISTS (SELECT 1 FROM mq.list_queues() WHERE queue_name = 'mode_q')$$) AS t(ok boolean);

SELECT dblink_disconnect('other');
DROP EXTENSION dblink;
