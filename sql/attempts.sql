--
-- attempts: a delivery undone by a rollback still counts, and the next
-- delivery shows it at once: poll adds what the message owes to the
-- attempt it returns (not only once the worker has caught up), and the
-- debt leaves shared memory only when that poll commits.  The message is
-- ready after each rollback, so the worker leaves it alone here.
--
SELECT mq.create_queue('att', max_attempts => 10);
SELECT mq.send('att', '{"n": 1}') AS msg_id \gset

-- two locked-mode consumers fail
BEGIN;
SELECT attempt FROM mq.poll('att');
ROLLBACK;
BEGIN;
SELECT attempt FROM mq.poll('att');
ROLLBACK;

-- in a subtransaction: the poll applied the debt, then was rolled back to
-- the savepoint; the debt and the undone delivery both remain
BEGIN;
SAVEPOINT s;
SELECT attempt FROM mq.poll('att');
ROLLBACK TO SAVEPOINT s;
SELECT attempt FROM mq.poll('att');
ROLLBACK;

-- the next delivery is the fifth; it commits (leased), and the table agrees
SELECT attempt FROM mq.poll('att', visibility_timeout => '0 seconds');
SELECT attempt FROM mq.queue_message WHERE msg_id = :msg_id;
-- nothing is owed any more: the pass counts nothing, the next poll says 6
SELECT mq.run_maintenance();
SELECT attempt FROM mq.poll('att', visibility_timeout => '0 seconds');

-- the exhausting debt: max_attempts 2, two failures; the pass marks the
-- message exhausted and dead-letters it
SELECT mq.create_queue('att2', max_attempts => 2);
SELECT mq.send('att2', '{"n": 2}');
BEGIN;
SELECT attempt FROM mq.poll('att2');
ROLLBACK;
BEGIN;
SELECT attempt FROM mq.poll('att2');
ROLLBACK;
-- (the worker, woken by the rollback, may have run the pass first)
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT queue_name, total FROM mq.queue_stats WHERE queue_name LIKE 'att2%' ORDER BY 1;

SELECT mq.drop_queue('att');
SELECT mq.drop_queue('att_dlq');
SELECT mq.drop_queue('att2');
SELECT mq.drop_queue('att2_dlq');
