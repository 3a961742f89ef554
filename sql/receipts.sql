-- Receipts: poll's visible_at is the receipt of the lease.  With it, ack,
-- extend, nack and reject act only on that lease; once the message was
-- redelivered (here: a lease of 0 seconds lapses at once and the message is
-- polled again) the old receipt changes nothing.  Without it they behave as
-- before.
SELECT mq.create_queue('rc_q', max_attempts => 10);
CREATE TEMP TABLE rc_lease (n int, msg_id bigint, receipt timestamptz);

SELECT mq.send('rc_q', '{"i": 1}') > 0 AS sent;
-- first lease lapses at once; second lease of the same message
INSERT INTO rc_lease SELECT 1, msg_id, visible_at FROM mq.poll('rc_q', 1, '0 seconds');
INSERT INTO rc_lease SELECT 2, msg_id, visible_at FROM mq.poll('rc_q', 1, '1 hour');
SELECT count(DISTINCT msg_id) AS messages, count(DISTINCT receipt) AS receipts FROM rc_lease;

-- the stale receipt: nothing happens
SELECT mq.ack('rc_q', msg_id, receipt) AS acked FROM rc_lease WHERE n = 1;
SELECT mq.extend('rc_q', msg_id, '10 minutes', receipt) AS extended FROM rc_lease WHERE n = 1;
SELECT mq.nack('rc_q', msg_id, receipt => receipt) AS nacked FROM rc_lease WHERE n = 1;
SELECT mq.reject('rc_q', msg_id, 'stale', receipt) AS rejected FROM rc_lease WHERE n = 1;
SELECT mq.ack('rc_q', ARRAY[msg_id], ARRAY[receipt]) AS acked FROM rc_lease WHERE n = 1;
SELECT count(*) AS still_leased FROM mq.queue_message m JOIN rc_lease l USING (msg_id)
 WHERE l.n = 2 AND m.vt = l.receipt;

-- the current receipt works; extend returns the lease's new receipt
UPDATE rc_lease SET receipt = mq.extend('rc_q', msg_id, '2 hours', receipt) WHERE n = 2;
SELECT receipt > clock_timestamp() + interval '90 minutes' AS extended FROM rc_lease WHERE n = 2;
-- the receipt before the extend is stale now, the new one acks
SELECT mq.ack('rc_q', msg_id, receipt - interval '1 hour') AS acked_old FROM rc_lease WHERE n = 2;
SELECT mq.ack('rc_q', msg_id, receipt) AS acked FROM rc_lease WHERE n = 2;

-- nack and reject with the current receipt
TRUNCATE rc_lease;
SELECT mq.send('rc_q', '{"i": 2}') > 0 AS sent;
INSERT INTO rc_lease SELECT 1, msg_id, visible_at FROM mq.poll('rc_q', 1);
SELECT mq.nack('rc_q', msg_id, '0', receipt => receipt) AS nacked FROM rc_lease;
-- nacked: the receipt of the first lease is stale for reject
SELECT mq.reject('rc_q', msg_id, receipt => receipt) AS rejected FROM rc_lease;
TRUNCATE rc_lease;
INSERT INTO rc_lease SELECT 1, msg_id, visible_at FROM mq.poll('rc_q', 1);
SELECT mq.reject('rc_q', msg_id, 'bad', receipt) AS rejected FROM rc_lease;
SELECT count(*) AS dead FROM mq.queue_message m JOIN mq.queue q USING (queue_id)
 WHERE q.queue_name = 'rc_q_dlq';

-- batch ack: only the messages whose receipts are current
TRUNCATE rc_lease;
SELECT count(*) AS sent FROM mq.send_batch('rc_q', ARRAY['{"i": 3}', '{"i": 4}', '{"i": 5}']::jsonb[]);
INSERT INTO rc_lease SELECT 1, msg_id, visible_at FROM mq.poll('rc_q', 3);
SELECT mq.ack('rc_q', array_agg(msg_id ORDER BY msg_id),
              array_agg(CASE WHEN msg_id = (SELECT min(msg_id) FROM rc_lease)
                             THEN receipt - interval '1 second' ELSE receipt END ORDER BY msg_id)) AS acked
  FROM rc_lease;
SELECT mq.ack('rc_q', ARRAY[1, 2]::bigint[], ARRAY[now()]) AS mismatched;
-- a NULL receipt acks that message whatever its lease
SELECT mq.ack('rc_q', ARRAY[min(msg_id)], ARRAY[NULL]::timestamptz[]) AS null_receipt FROM rc_lease;

-- without receipts: as before
TRUNCATE rc_lease;
SELECT mq.send('rc_q', '{"i": 6}') > 0 AS sent;
INSERT INTO rc_lease SELECT 1, msg_id, visible_at FROM mq.poll('rc_q', 1, '0 seconds');
INSERT INTO rc_lease SELECT 2, msg_id, visible_at FROM mq.poll('rc_q', 1);
SELECT mq.extend('rc_q', msg_id, '1 hour') IS NOT NULL AS extended FROM rc_lease WHERE n = 1;
SELECT mq.ack('rc_q', msg_id) AS acked FROM rc_lease WHERE n = 1;
SELECT count(*) AS left_over FROM mq.queue_message m JOIN mq.queue q USING (queue_id)
 WHERE q.queue_name = 'rc_q';

SELECT mq.drop_queue('rc_q');
