-- test/demo.sql: mq's main job, as a walkthrough (run by test/demo.sh; the
-- ops suite runs it through PgBouncer too).  Needs a database where
-- CREATE EXTENSION mq may run and a server with shared_preload_libraries
-- = 'mq' (the worker relays the outbox).  Ends with checks that raise an
-- error if anything did not happen as shown.
\set ON_ERROR_STOP on
\set QUIET on
\pset footer off
\pset null '-'
SET client_min_messages = warning;

\echo
\echo '== Setting up: the extension, two business tables, a queue, a topic, an exchange'
CREATE EXTENSION mq;
CREATE TABLE orders (id bigint PRIMARY KEY, customer text, total numeric);
CREATE TABLE invoices (order_id bigint PRIMARY KEY, amount numeric);
SELECT mq.create_queue('order_events', visibility_timeout => '30 seconds') \gset
SELECT mq.create_topic('orders', partitions => 3, retention => '7 days') \gset
SELECT mq.create_group('orders', 'billing', start_at => 'earliest') \gset
SELECT mq.create_queue('shipping') \gset
SELECT mq.create_topic('audit') \gset
SELECT mq.create_group('audit', 'auditors', start_at => 'earliest') \gset
SELECT mq.create_exchange('order_fanout', 'fanout') \gset
SELECT mq.bind('order_fanout', 'shipping') \gset
SELECT mq.bind('order_fanout', 'audit') \gset
SELECT queue_name FROM mq.list_queues() ORDER BY 1;
SELECT topic_name, partitions, retention FROM mq.list_topics();

\echo
\echo '== 1. A queue: the order and its message commit together, or not at all'
BEGIN;
INSERT INTO orders VALUES (1, 'ada', 42.00);
SELECT mq.send('order_events', '{"order_id": 1, "event": "created"}') AS msg_id \gset
COMMIT;
\echo committed order 1 with message :msg_id
BEGIN;
INSERT INTO orders VALUES (2, 'bob', 7.50);
SELECT mq.send('order_events', '{"order_id": 2, "event": "created"}') \gset
ROLLBACK;
\echo rolled back order 2: no order, and no message either
SELECT mq.send('order_events', '{"order_id": 1, "event": "reminder"}', delay => '1 hour') \gset
\echo a delayed message waits an hour
SELECT queue_name, ready, in_flight, delayed FROM mq.queue_stats WHERE queue_name = 'order_events';

\echo
\echo '== 2. A consumer leases the ready message, does its work, acks it'
SELECT msg_id, payload, attempt FROM mq.poll('order_events', max_messages => 10) \gset
\echo polled message :msg_id (attempt :attempt): :payload
SELECT mq.ack('order_events', :msg_id) AS acked \gset
\echo acked: :acked
SELECT mq.send('order_events', '{"order_id": 3, "event": "garbled"}') AS bad \gset
SELECT count(*) AS n FROM mq.poll('order_events', 10) \gset
SELECT mq.reject('order_events', :bad, error => 'cannot parse') \gset
\echo a poison message, rejected by its consumer, goes to the dead-letter queue:
SELECT payload, deaths->0->>'reason' AS reason, last_error FROM mq.poll('order_events_dlq', 10);

\echo
\echo '== 3. The outbox: business rows and mq.publish in one transaction'
BEGIN;
INSERT INTO orders VALUES (10, 'ada', 12.00), (11, 'cy', 99.90), (12, 'ada', 5.25);
SELECT count(mq.publish('orders', jsonb_build_object('order_id', o.id, 'total', o.total),
                        key => o.customer)) AS published
  FROM orders o WHERE o.id >= 10 \gset
COMMIT;
\echo published :published events; the worker relays them into topic "orders" (3 partitions, by key)
SELECT count(*) AS ready FROM mq.fetch('orders', 'billing', 100, wait => '5 seconds') \gset
SELECT partition, "offset", key, payload FROM mq.fetch('orders', 'billing', 100) ORDER BY 1, 2;

\echo
\echo '== 4. A consumer group: the invoices and the offsets commit in one transaction'
BEGIN;
INSERT INTO invoices
SELECT (r.payload->>'order_id')::bigint, (r.payload->>'total')::numeric
  FROM mq.fetch('orders', 'billing', 100, auto_commit => true) r;
COMMIT;
SELECT order_id, amount FROM invoices ORDER BY 1;
\echo fetching again returns nothing: the offsets moved with the invoices
SELECT count(*) AS records FROM mq.fetch('orders', 'billing', 100);

\echo
\echo '== 5. An exchange fans one message out to a queue and a topic'
BEGIN;
INSERT INTO orders VALUES (20, 'dee', 3.00);
SELECT mq.publish('order_fanout', '{"order_id": 20, "event": "ship"}') \gset
COMMIT;
SELECT 'queue shipping' AS got, payload FROM mq.poll('shipping', 1, wait => '5 seconds')
UNION ALL
SELECT 'topic audit', payload FROM mq.fetch('audit', 'auditors', 10, wait => '5 seconds', auto_commit => true);

\echo
\echo '== 6. What a DBA watches: backlog, lag, topics, the worker'
SELECT queue_name, ready, in_flight, delayed, total_sent, total_dead FROM mq.queue_stats ORDER BY 1;
SELECT topic_name, group_name, partition, committed_offset, end_offset, lag FROM mq.consumer_lag ORDER BY 1, 2, 3;
SELECT topic_name, partition, start_offset, end_offset, records FROM mq.topic_stats ORDER BY 1, 2;
SELECT database, state, passes, failed_passes, rows_relayed, last_error,
       outbox_backlog, outbox_oldest_age
  FROM mq.worker_status WHERE database = current_database();

-- the walkthrough did what it showed
DO $$
BEGIN
    IF (SELECT count(*) FROM orders) <> 5 OR (SELECT count(*) FROM invoices) <> 3
       OR (SELECT sum(lag) FROM mq.consumer_lag) <> 0
       OR (SELECT total_sent FROM mq.queue_stats WHERE queue_name = 'shipping') <> 1
       OR EXISTS (SELECT 1 FROM mq.outbox) THEN
        RAISE EXCEPTION 'the demo did not end as shown';
    END IF;
END;
$$;
\echo
\echo '== done'
