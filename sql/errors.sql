--
-- errors: every bad input gives a clear error, and nothing is lost.
--
-- Set-up: one queue holding one ready, one in-flight and one delayed
-- message.  After every group of errors, :state must print 1 | 1 | 1 | 3.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
\set state 'SELECT ready, in_flight, delayed, total FROM mq.queue_stats WHERE queue_name = ''err_q'';'
-- a table an injected name would try to drop
CREATE TABLE t (i integer);
INSERT INTO t VALUES (42);
SELECT mq.create_queue('err_q');
SELECT mq.send('err_q', '{"n": 1}') AS id1 \gset
SELECT mq.send('err_q', '{"n": 2}', delay => '1 hour') AS id2 \gset
SELECT msg_id = :id1 AS leased_first FROM mq.poll('err_q', 1, '1 hour');
SELECT mq.send('err_q', '{"n": 3}') AS id3 \gset
:state

--
-- unknown queue: 42704, for every function that takes an existing queue
--
SELECT mq.send('err_nope', '{"n": 1}');
SELECT mq.send_batch('err_nope', ARRAY['{"n": 1}']::jsonb[]);
SELECT * FROM mq.poll('err_nope');
SELECT * FROM mq.pop('err_nope');
SELECT mq.ack('err_nope', :id1);
SELECT mq.ack('err_nope', ARRAY[:id1, :id3]);
SELECT mq.extend('err_nope', :id1, '1 minute');
SELECT mq.purge_queue('err_nope');
-- drop_queue reports a missing queue with false, not an error
SELECT mq.drop_queue('err_nope');
:state

--
-- names crafted for SQL injection, or otherwise invalid: 42602
--
SELECT mq.create_queue('x''; DROP TABLE t; --');
SELECT mq.create_queue('"q"');
SELECT mq.create_queue('a b');
SELECT mq.create_queue('');
SELECT mq.create_queue('err_q''; DELETE FROM mq.queue_message; --');
SELECT mq.send('x''; DROP TABLE t; --', '{"n": 1}');
SELECT mq.send('"q"', '{"n": 1}');
SELECT mq.send('a b', '{"n": 1}');
SELECT mq.send('', '{"n": 1}');
SELECT mq.send_batch('a b', ARRAY['{"n": 1}']::jsonb[]);
SELECT * FROM mq.poll('x''; DROP TABLE t; --');
SELECT * FROM mq.pop('"q"');
SELECT mq.ack('a b', :id1);
SELECT mq.ack('a b', ARRAY[:id1]);
SELECT mq.extend('', :id1, '1 minute');
SELECT mq.purge_queue('err_q''; DELETE FROM mq.queue_message; --');
SELECT mq.drop_queue('x''; DROP TABLE t; --');
-- the table is still there, and no such queue was created
SELECT i FROM t;
SELECT count(*) AS odd_queues FROM mq.list_queues() WHERE queue_name !~ '^[a-z0-9_]+$';
:state

--
-- over-long names (> 63 bytes): 42622; 63 bytes is fine
--
SELECT mq.create_queue(repeat('a', 64));
SELECT mq.send(repeat('a', 64), '{"n": 1}');
SELECT * FROM mq.poll(repeat('a', 64));
SELECT mq.create_queue(repeat('a', 63));
SELECT length(queue_name) FROM mq.list_queues() WHERE queue_name LIKE 'aaa%' AND queue_name NOT LIKE '%\_dlq';
SELECT mq.drop_queue(repeat('a', 63));
:state

--
-- NULL queue name: 22004
--
SELECT mq.create_queue(NULL);
SELECT mq.send(NULL, '{"n": 1}');
SELECT mq.send_batch(NULL, ARRAY['{"n": 1}']::jsonb[]);
SELECT * FROM mq.poll(NULL);
SELECT * FROM mq.pop(NULL);
SELECT mq.ack(NULL, :id1);
SELECT mq.ack(NULL, ARRAY[:id1]);
SELECT mq.extend(NULL, :id1, '1 minute');
SELECT mq.purge_queue(NULL);
SELECT mq.drop_queue(NULL);
:state

--
-- NULL payload: 22004; a batch with one NULL payload stores nothing
--
SELECT mq.send('err_q', NULL);
SELECT mq.send('err_q', NULL, '{"h": 1}');
SELECT mq.send_batch('err_q', ARRAY['{"n": 4}', NULL, '{"n": 6}']::jsonb[]);
SELECT mq.send_batch('err_q', NULL);
:state

--
-- negative delay / visibility timeout: 22023
--
SELECT mq.send('err_q', '{"n": 4}', NULL, '-1 second');
SELECT mq.send('err_q', '{"n": 4}', delay => '-1 day');
SELECT mq.send_batch('err_q', ARRAY['{"n": 4}', '{"n": 5}']::jsonb[], NULL, '-1 second');
SELECT * FROM mq.poll('err_q', 1, '-1 second');
SELECT mq.extend('err_q', :id1, '-1 second');
SELECT mq.create_queue('err_neg', '-1 second');
SELECT mq.create_queue('err_neg', visibility_timeout => NULL);
SELECT mq.create_queue('err_neg', max_attempts => 0);
SELECT count(*) AS err_neg_created FROM mq.list_queues() WHERE queue_name = 'err_neg';
:state

--
-- max_messages < 1: 22023
--
SELECT * FROM mq.poll('err_q', 0);
SELECT * FROM mq.poll('err_q', -1);
SELECT * FROM mq.pop('err_q', 0);
SELECT * FROM mq.pop('err_q', -5);
:state

--
-- send_batch: headers array of another length than payloads
--
SELECT mq.send_batch('err_q', ARRAY['{"n": 4}', '{"n": 5}']::jsonb[], ARRAY['{"h": 1}']::jsonb[]);
SELECT mq.send_batch('err_q', ARRAY['{"n": 4}']::jsonb[], ARRAY['{"h": 1}', '{"h": 2}']::jsonb[]);
:state

--
-- duplicate create_queue: 42710; if_not_exists => NOTICE, settings kept
--
SELECT mq.create_queue('err_q');
SELECT mq.create_queue('err_q', '5 hours', 2);
SELECT mq.create_queue('err_q', '5 hours', 2, if_not_exists => true);
SELECT (settings->>'visibility_timeout')::interval AS visibility_timeout,
       (settings->>'max_attempts')::integer AS max_attempts
FROM mq.list_queues() WHERE queue_name = 'err_q';
:state

--
-- an error inside a transaction takes nothing with it
--
BEGIN;
SELECT msg_id = :id3 AS got_ready FROM mq.poll('err_q', 1, '1 hour');
SELECT * FROM mq.pop('err_q', 0);
ROLLBACK;
:state
-- the messages are the ones we sent, in their states
SELECT msg_id = :id3 AS ready_is_3, payload FROM mq.poll('err_q', 5, '1 hour');
SELECT mq.ack('err_q', ARRAY[:id1, :id2, :id3]) AS acked;
SELECT mq.drop_queue('err_q');
DROP TABLE t;
