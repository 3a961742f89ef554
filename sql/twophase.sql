--
-- twophase: PREPARE TRANSACTION carries what a transaction owes the rest of
-- the system at commit (counter moves, wake-ups, relay pokes) and what it
-- owes at rollback (the attempts of the deliveries it held) into the
-- prepared transaction; COMMIT PREPARED and ROLLBACK PREPARED pay it, from
-- any session, as a plain commit or rollback would.
--
SELECT mq.create_queue('tp_q', max_attempts => 3);
SELECT mq.create_queue('tp_other');

-- a prepared send is counted once COMMIT PREPARED runs, not before
BEGIN;
SELECT mq.send('tp_q', '{"n": 1}') > 0 AS sent;
SELECT mq.send_batch('tp_q', ARRAY['{"n": 2}', '{"n": 3}']::jsonb[]) > 0 AS sent;
PREPARE TRANSACTION 'mq_tp_send';
SELECT total_sent, total FROM mq.queue_stats WHERE queue_name = 'tp_q';
COMMIT PREPARED 'mq_tp_send';
SELECT total_sent, total FROM mq.queue_stats WHERE queue_name = 'tp_q';
-- and once only: the pass writes it out, nothing is left over
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT total_sent, total FROM mq.queue_stats WHERE queue_name = 'tp_q';
SELECT count(*) AS effects_left FROM mq.prepared_effect;

-- a rolled-back prepared send is not counted
BEGIN;
SELECT mq.send('tp_other', '{"n": 1}') > 0 AS sent;
PREPARE TRANSACTION 'mq_tp_rollback';
ROLLBACK PREPARED 'mq_tp_rollback';
SELECT total_sent, total FROM mq.queue_stats WHERE queue_name = 'tp_other';

-- subtransactions inside the prepared transaction: what a rolled-back
-- savepoint did is void, what a released one did counts
BEGIN;
SAVEPOINT a;
SELECT mq.send('tp_other', '{"n": 2}') > 0 AS sent;
ROLLBACK TO SAVEPOINT a;
SAVEPOINT b;
SELECT mq.send('tp_other', '{"n": 3}') > 0 AS sent;
RELEASE SAVEPOINT b;
PREPARE TRANSACTION 'mq_tp_subxact';
COMMIT PREPARED 'mq_tp_subxact';
SELECT total_sent, total FROM mq.queue_stats WHERE queue_name = 'tp_other';

-- acks of a prepared transaction count at COMMIT PREPARED
BEGIN;
SELECT count(*) AS acked FROM mq.poll('tp_other') p WHERE mq.ack('tp_other', p.msg_id);
PREPARE TRANSACTION 'mq_tp_ack';
SELECT total_acked FROM mq.queue_stats WHERE queue_name = 'tp_other';
COMMIT PREPARED 'mq_tp_ack';
SELECT total_acked, total FROM mq.queue_stats WHERE queue_name = 'tp_other';

-- a locked-mode consumer prepares, then is rolled back: the delivery it
-- held still counts, and the next delivery shows it at once
SELECT mq.purge_queue('tp_q') >= 0 AS purged;
SELECT mq.send('tp_q', '{"poison": true}') AS poison_id \gset
BEGIN;
SELECT attempt FROM mq.poll('tp_q');
PREPARE TRANSACTION 'mq_tp_poll1';
ROLLBACK PREPARED 'mq_tp_poll1';
BEGIN;
SELECT attempt FROM mq.poll('tp_q');
PREPARE TRANSACTION 'mq_tp_poll2';
-- ... from another session
\c
ROLLBACK PREPARED 'mq_tp_poll2';
-- the third delivery is the last one max_attempts allows
BEGIN;
SELECT attempt FROM mq.poll('tp_q');
PREPARE TRANSACTION 'mq_tp_poll3';
ROLLBACK PREPARED 'mq_tp_poll3';
-- the debt exhausts the message: the pass dead-letters it
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT queue_name, total FROM mq.queue_stats WHERE queue_name LIKE 'tp_q%' ORDER BY 1;
SELECT count(*) AS effects_left FROM mq.prepared_effect;

-- a prepared delivery that commits settles the debt it applied: the next
-- delivery after its lease is the third, not more
SELECT mq.send('tp_q', '{"n": 4}') AS msg4 \gset
BEGIN;
SELECT attempt FROM mq.poll('tp_q');
ROLLBACK;
BEGIN;
SELECT attempt FROM mq.poll('tp_q', visibility_timeout => '0 seconds');
PREPARE TRANSACTION 'mq_tp_settle';
\c
COMMIT PREPARED 'mq_tp_settle';
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT attempt FROM mq.poll('tp_q', visibility_timeout => '1 hour');
SELECT mq.ack('tp_q', :msg4) AS acked;

-- an application role prepares and commits its own transaction: mq does
-- the bookkeeping with its own rights, the role cannot see it
CREATE ROLE regress_mq_tp NOLOGIN;
GRANT USAGE ON SCHEMA mq TO regress_mq_tp;
SELECT mq.grant('tp_other', 'regress_mq_tp', '{send}');
SET ROLE regress_mq_tp;
BEGIN;
SELECT mq.send('tp_other', '{"n": 5}') > 0 AS sent;
PREPARE TRANSACTION 'mq_tp_role';
COMMIT PREPARED 'mq_tp_role';
SELECT count(*) FROM mq.prepared_effect;
RESET ROLE;
SELECT total_sent FROM mq.queue_stats WHERE queue_name = 'tp_other';

-- committed effects nobody applied (COMMIT PREPARED was interrupted after
-- the commit) are applied by the next pass, exactly once
INSERT INTO mq.prepared_effect (gid, effect, epoch, object_id, item, amount)
SELECT 'mq_tp_orphan', 'c', 'mq.queue'::regclass::oid, queue_id, 0, 10
  FROM mq.queue WHERE queue_name = 'tp_other';
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT total_sent FROM mq.queue_stats WHERE queue_name = 'tp_other';
SELECT count(*) AS effects_left FROM mq.prepared_effect;

-- a transaction that prepares without touching mq leaves nothing behind
BEGIN;
CREATE TEMP TABLE IF NOT EXISTS tp_nothing (i int);
ROLLBACK;
BEGIN;
SELECT 1 AS one;
PREPARE TRANSACTION 'mq_tp_nothing';
COMMIT PREPARED 'mq_tp_nothing';
SELECT count(*) AS effects_left FROM mq.prepared_effect;

SELECT mq.revoke('tp_other', 'regress_mq_tp');
REVOKE USAGE ON SCHEMA mq FROM regress_mq_tp;
DROP ROLE regress_mq_tp;
SELECT mq.drop_queue('tp_q');
SELECT mq.drop_queue('tp_q_dlq');
SELECT mq.drop_queue('tp_other');
