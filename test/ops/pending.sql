-- test/ops/pending.sql: committed outbox rows of every kind (after
-- test/ops/fill.sql), written while the relay is held off: to a topic, a
-- queue, an exchange (routed, and unroutable: to its alternate), and a
-- Debezium-style INSERT.
BEGIN;
INSERT INTO orders VALUES (2, 20);
SELECT mq.publish('dr_t', '{"pending": 1}', key => 'k1');
SELECT mq.publish('dr_q', '{"pending": 2}');
SELECT mq.publish('dr_x', '{"pending": 3}', key => 'order.created');
SELECT mq.publish('dr_x', '{"pending": 4}', key => 'nowhere');
INSERT INTO mq.outbox (aggregatetype, aggregateid, type, payload) VALUES ('dr_t1', 'e', 'created', '{"pending": 5}');
COMMIT;
