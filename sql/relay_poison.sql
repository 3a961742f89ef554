--
-- relay_poison: no single outbox row can stop the relay.  A message
-- published into a chain of 1,000 exchanges cannot be routed (stack depth);
-- the relay sets that row aside in mq.outbox_dead with its error, and the
-- messages published before and after it still reach their queue.  The
-- worker may relay first; the outcome is the same.
--
SELECT mq.create_queue('rp_innocent');
SELECT mq.create_exchange('rp_x0', 'fanout');
DO $$
BEGIN
    FOR i IN 1 .. 1000 LOOP
        PERFORM mq.create_exchange('rp_x' || i, 'fanout');
        PERFORM mq.bind('rp_x' || (i - 1), 'rp_x' || i);
    END LOOP;
END;
$$;
SELECT mq.bind('rp_x1000', 'rp_innocent');
BEGIN;
SELECT mq.publish('rp_innocent', '{"n": 1}') IS NOT NULL AS published;
SELECT mq.publish('rp_x0', '{"poison": true}') IS NOT NULL AS published;
SELECT mq.publish('rp_innocent', '{"n": 2}') IS NOT NULL AS published;
COMMIT;
SET client_min_messages = error;   -- the WARNING is the worker's or ours
SELECT mq.relay() >= 0 AS relayed;
RESET client_min_messages;
SELECT payload FROM mq.poll('rp_innocent', 10) ORDER BY payload->>'n';
SELECT aggregatetype, payload, sqlstate FROM mq.outbox_dead;
SELECT count(*) AS left_in_outbox FROM mq.outbox;
-- once its cause is gone, the row goes back and is relayed
SELECT mq.unbind('rp_x0', 'rp_x1');
SELECT mq.bind('rp_x0', 'rp_innocent');
WITH d AS (DELETE FROM mq.outbox_dead RETURNING *)
INSERT INTO mq.outbox (aggregatetype, aggregateid, type, payload, headers)
SELECT aggregatetype, aggregateid, type, payload, headers FROM d;
SELECT mq.relay() >= 0 AS relayed;
SELECT payload FROM mq.poll('rp_innocent', 10, wait => '5 seconds');
-- a publish whose destination is dropped before the relay is set aside
-- too, visible with its reason, never silent
SELECT mq.create_queue('rp_gone');
BEGIN;
SELECT mq.publish('rp_gone', '{"lost": false}') IS NOT NULL AS published;
SELECT mq.drop_queue('rp_gone');
COMMIT;
SELECT mq.relay() >= 0 AS relayed;
SELECT aggregatetype, payload, sqlstate, error FROM mq.outbox_dead;
SELECT count(*) AS left_in_outbox FROM mq.outbox;
DELETE FROM mq.outbox_dead;
DO $$
BEGIN
    FOR i IN 0 .. 1000 LOOP
        PERFORM mq.drop_exchange('rp_x' || i);
    END LOOP;
END;
$$;
SELECT mq.drop_queue('rp_innocent');
