-- Plan stability of the queue hot paths: ack, batch ack, extend, nack and
-- poll take their intended access path whatever the statistics say.  Ack,
-- extend and nack find their rows by the primary key (never by scanning
-- the queue through the ready index); poll and its wake-up probe walk the
-- ready index (never a sequential scan).  Checked through the index and
-- table scan counts of the transaction (pg_stat_xact_*), with mq.queue_message
-- looking never analyzed (no statistics, no size estimate) while it holds
-- 50,000 messages of one queue, then with statistics taken when it held
-- one message.
SET client_min_messages = warning;
SELECT mq.create_queue('ps_q', max_attempts => 100);
SELECT mq.create_queue('ps_other');
ALTER TABLE mq.queue_message SET (autovacuum_enabled = false);
CREATE TEMP TABLE ps_ids (msg_id bigint, receipt timestamptz);

-- the scans one call made: seq / ready index / primary key
CREATE FUNCTION pg_temp.ps_scans(call text)
RETURNS TABLE (seq bigint, ready_idx bigint, pkey bigint)
LANGUAGE plpgsql AS $$
DECLARE
    s0 bigint := pg_stat_get_xact_numscans('mq.queue_message'::regclass);
    r0 bigint := pg_stat_get_xact_numscans('mq.queue_message_ready_idx'::regclass);
    p0 bigint := pg_stat_get_xact_numscans('mq.queue_message_pkey'::regclass);
BEGIN
    EXECUTE call;
    RETURN QUERY
    SELECT pg_stat_get_xact_numscans('mq.queue_message'::regclass) - s0,
           pg_stat_get_xact_numscans('mq.queue_message_ready_idx'::regclass) - r0,
           pg_stat_get_xact_numscans('mq.queue_message_pkey'::regclass) - p0;
END $$;

-- never analyzed, 50,000 messages of one queue
SELECT count(*) AS sent FROM mq.send_batch('ps_q', array_fill('{}'::jsonb, ARRAY[50000]));
DELETE FROM pg_statistic WHERE starelid = 'mq.queue_message'::regclass;
UPDATE pg_class SET reltuples = -1, relpages = 0, relallvisible = 0
 WHERE oid IN ('mq.queue_message'::regclass, 'mq.queue_message_pkey'::regclass,
               'mq.queue_message_ready_idx'::regclass);
INSERT INTO ps_ids SELECT msg_id, visible_at FROM mq.poll('ps_q', 20);

BEGIN;
SELECT 'ack' AS call, * FROM pg_temp.ps_scans($$SELECT mq.ack('ps_q', (SELECT min(msg_id) FROM ps_ids))$$);
SELECT 'ack batch' AS call, * FROM pg_temp.ps_scans($$SELECT mq.ack('ps_q', ARRAY(SELECT msg_id FROM ps_ids ORDER BY msg_id OFFSET 1 LIMIT 5))$$);
SELECT 'ack receipts' AS call, * FROM pg_temp.ps_scans($$SELECT mq.ack('ps_q', ARRAY(SELECT msg_id FROM ps_ids ORDER BY msg_id OFFSET 6 LIMIT 5), ARRAY(SELECT receipt FROM ps_ids ORDER BY msg_id OFFSET 6 LIMIT 5))$$);
SELECT 'extend' AS call, * FROM pg_temp.ps_scans($$SELECT mq.extend('ps_q', (SELECT max(msg_id) FROM ps_ids), '1 hour')$$);
SELECT 'nack' AS call, * FROM pg_temp.ps_scans($$SELECT mq.nack('ps_q', (SELECT max(msg_id) FROM ps_ids), '1 hour')$$);
SELECT 'poll' AS call, seq, ready_idx > 0 AS ready_idx FROM pg_temp.ps_scans($$SELECT count(*) FROM mq.poll('ps_q', 10)$$);
COMMIT;

-- statistics taken when the table held one message, then 50,000 more
DELETE FROM mq.queue_message;
SELECT mq.send('ps_other', '{}') > 0 AS sent;
ANALYZE mq.queue_message;
SELECT count(*) AS sent FROM mq.send_batch('ps_q', array_fill('{}'::jsonb, ARRAY[50000]));
TRUNCATE ps_ids;
INSERT INTO ps_ids SELECT msg_id, visible_at FROM mq.poll('ps_q', 20);

BEGIN;
SELECT 'ack' AS call, * FROM pg_temp.ps_scans($$SELECT mq.ack('ps_q', (SELECT min(msg_id) FROM ps_ids))$$);
SELECT 'ack batch' AS call, * FROM pg_temp.ps_scans($$SELECT mq.ack('ps_q', ARRAY(SELECT msg_id FROM ps_ids ORDER BY msg_id OFFSET 1 LIMIT 5))$$);
SELECT 'extend' AS call, * FROM pg_temp.ps_scans($$SELECT mq.extend('ps_q', (SELECT max(msg_id) FROM ps_ids), '1 hour')$$);
SELECT 'nack' AS call, * FROM pg_temp.ps_scans($$SELECT mq.nack('ps_q', (SELECT max(msg_id) FROM ps_ids), '1 hour')$$);
SELECT 'poll' AS call, seq, ready_idx > 0 AS ready_idx FROM pg_temp.ps_scans($$SELECT count(*) FROM mq.poll('ps_q', 10)$$);
COMMIT;

ALTER TABLE mq.queue_message RESET (autovacuum_enabled);
SELECT mq.drop_queue('ps_q');
SELECT mq.drop_queue('ps_other');
ANALYZE mq.queue_message;
