-- test/ops/fill.sql: mq data of every kind, for the dump/restore and
-- upgrade tests (test/ops/use.sql then uses every feature on top of it;
-- test/ops/use.expected is what it must print).  Only API of 0.1.0.
CREATE EXTENSION mq;
CREATE TABLE orders (id integer PRIMARY KEY, total numeric);
SELECT mq.create_queue('dr_q', visibility_timeout => '1 hour', max_attempts => 3);
SELECT mq.create_queue('dr_other');
BEGIN;
INSERT INTO orders VALUES (1, 10);
SELECT mq.send('dr_q', '{"n": 1}', dedup_key => 'order-1');
COMMIT;
SELECT mq.send('dr_q', '{"n": 2}', headers => '{"h": "x"}');
SELECT mq.send('dr_q', '{"n": 3}', delay => '1 hour');
SELECT mq.send('dr_q', '{"n": 4}');
SELECT mq.send('dr_q', '{"n": 5}');
SELECT msg_id FROM mq.poll('dr_q', 1);                         -- n 1 in flight
SELECT mq.reject('dr_q', msg_id, error => 'bad') FROM mq.poll('dr_q', 1);  -- n 2 dead
SELECT mq.send_batch('dr_other', ARRAY['{"b": 1}', '{"b": 2}']::jsonb[]);
SELECT mq.process_once('billing', 'msg-17');
SELECT mq.process_once('billing', 'msg-18');
-- many inbox keys: a restore loads them (mq.processed) after mq.outbox and
-- before the queues and topics, which leaves a worker time to act on a
-- half-loaded copy
INSERT INTO mq.processed (consumer, message_key) SELECT 'bulk', 'k' || i FROM generate_series(1, 10000) i;

SELECT mq.create_topic('dr_t', partitions => 3, retention => '1 hour');
SELECT mq.create_topic('dr_t1');
SELECT mq.create_group('dr_t', 'g1', start_at => 'earliest');
SELECT mq.create_group('dr_t', 'g2', start_at => 'latest');
SELECT mq.publish_batch('dr_t', array_agg(jsonb_build_object('r', i)), array_agg('k' || (i % 5)))
  FROM generate_series(1, 30) i;
SELECT mq.relay();
SELECT mq._new_segment(t.topic_id) FROM mq.topic t WHERE t.topic_name = 'dr_t';
SELECT mq.publish('dr_t', jsonb_build_object('r', i), key => 'k' || (i % 5)) FROM generate_series(31, 40) i;
SELECT mq.publish('dr_t1', '{"one": 1}');
SELECT mq.relay();
SELECT mq.commit('dr_t', 'g1', 0, 3);
SELECT mq.commit('dr_t', 'g1', 1, 1);

SELECT mq.create_exchange('dr_alt', 'fanout');
SELECT mq.create_exchange('dr_x', 'topic', alternate_exchange => 'dr_alt');
SELECT mq.bind('dr_x', 'dr_q', 'order.*');
SELECT mq.bind('dr_x', 'dr_t', 'order.#');
SELECT mq.bind('dr_alt', 'dr_other');
GRANT SELECT ON mq.queue_stats TO mq_ops_app;
GRANT EXECUTE ON FUNCTION mq.send(text, jsonb, jsonb, interval, text) TO mq_ops_app;
