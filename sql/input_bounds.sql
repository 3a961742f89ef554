--
-- input_bounds: an interval an object keeps is refused at the door when it
-- is out of bounds (22023), and the object is not created or changed; an
-- accepted one never makes a later pass fail.  Then the worker's pass
-- still runs and an innocent queue still flows.
--
\set VERBOSITY terse
SELECT mq.create_queue('ib_q', message_ttl => '10000 years');
SELECT mq.create_queue('ib_q', visibility_timeout => '10000 years');
SELECT mq.create_queue('ib_q', retry_delay => '10000 years', retry_delay_max => '10000 years');
SELECT count(*) FROM mq.queue WHERE queue_name LIKE 'ib\_q%';
SELECT mq.create_queue('ib_q', message_ttl => '100 years');
SELECT mq.alter_queue('ib_q', message_ttl => '10000 years');
SELECT mq.alter_queue('ib_q', retry_delay_max => '200 years');
SELECT message_ttl, retry_delay_max FROM mq.queue WHERE queue_name = 'ib_q';
SELECT mq.create_topic('ib_t', retention => '10000 years');
SELECT count(*) FROM mq.topic WHERE topic_name = 'ib_t';
SELECT mq.create_topic('ib_t', retention => '100 years');
SELECT mq.create_group('ib_t', 'g', session_timeout => '10000 years');
SELECT count(*) FROM mq.consumer_group WHERE group_name = 'g';
-- the pass still runs; the queue flows
SELECT mq.send('ib_q', '{"n": 1}') IS NOT NULL AS sent;
SELECT (mq.run_maintenance() >= 0) AS ran;
SELECT payload FROM mq.poll('ib_q');
SELECT mq.drop_topic('ib_t');
SELECT mq.drop_queue('ib_q');
SELECT mq.drop_queue('ib_q_dlq');
