#!/usr/bin/env bash
# test/demo.sh: install, build, start a throwaway cluster and show mq's main
# job: a business row and a message written in one transaction, a consumer
# polling and acking, and the backlog view.
source "$(dirname "$0")/lib.sh"
mq_setup
mq_psql -v ON_ERROR_STOP=1 -e <<'SQL'
CREATE EXTENSION mq;
CREATE TABLE orders (id bigint PRIMARY KEY, customer text, total numeric);
SELECT mq.create_queue('order_events', visibility_timeout => '30 seconds');

-- The order and its event commit together, or not at all.
BEGIN;
INSERT INTO orders VALUES (1, 'ada', 42.00);
SELECT mq.send('order_events', '{"order_id": 1, "event": "created"}');
COMMIT;

BEGIN;
INSERT INTO orders VALUES (2, 'bob', 7.50);
SELECT mq.send('order_events', '{"order_id": 2, "event": "created"}');
ROLLBACK;   -- no order 2, and no message for it either

SELECT mq.send('order_events', '{"order_id": 1, "event": "paid"}', delay => '1 hour');
SELECT queue_name, ready, in_flight, delayed, total_sent, total_acked, total_dead FROM mq.queue_stats ORDER BY 1;

-- A consumer leases the ready message ...
SELECT msg_id, payload, attempt FROM mq.poll('order_events', max_messages => 10) \gset
\echo polled message :msg_id, attempt :attempt: :payload
SELECT queue_name, ready, in_flight, delayed, total_sent, total_acked, total_dead FROM mq.queue_stats ORDER BY 1;
-- ... does its work, and acks it.
SELECT mq.ack('order_events', :msg_id);
SELECT queue_name, ready, in_flight, delayed, total_sent, total_acked, total_dead FROM mq.queue_stats ORDER BY 1;

-- A poison message: rejected by its consumer, it lands in the dead-letter queue.
SELECT mq.send('order_events', '{"order_id": 3, "event": "garbled"}') AS bad \gset
SELECT count(*) AS polled FROM mq.poll('order_events', 10);
SELECT mq.reject('order_events', :bad, error => 'cannot parse');
SELECT payload, deaths->0->>'reason' AS reason, last_error FROM mq.poll('order_events_dlq', 10);
SQL
echo "demo: done"
