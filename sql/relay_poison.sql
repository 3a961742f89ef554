--
-- relay_poison: no single outbox row can stop the relay.  No accepted
-- input makes a row fail any more (routes are bounded at mq.bind and
-- walked without recursion, see routing.sql), so the poison here is a
-- damaged catalog: the storage of a topic's current segment was dropped by
-- hand.  The relay sets that row aside in mq.outbox_dead with its error,
-- and the messages published before and after it still reach their queue.
-- The worker may relay first; the outcome is the same.
--
SELECT mq.create_queue('rp_innocent');
SELECT mq.create_topic('rp_broken');
DO $$
BEGIN
    EXECUTE (SELECT format('DROP TABLE mq.topic_record_%s_%s', topic_id, current_seg)
               FROM mq.topic WHERE topic_name = 'rp_broken');
END;
$$;
BEGIN;
SELECT mq.publish('rp_innocent', '{"n": 1}') IS NOT NULL AS published;
SELECT mq.publish('rp_broken', '{"poison": true}') IS NOT NULL AS published;
SELECT mq.publish('rp_innocent', '{"n": 2}') IS NOT NULL AS published;
COMMIT;
SET client_min_messages = error;   -- the WARNING is the worker's or ours
SELECT mq.relay() >= 0 AS relayed;
RESET client_min_messages;
SELECT payload FROM mq.poll('rp_innocent', 10) ORDER BY payload->>'n';
SELECT aggregatetype, payload, sqlstate FROM mq.outbox_dead;
SELECT count(*) AS left_in_outbox FROM mq.outbox;
-- once its cause is gone (a new current segment), the row goes back and
-- is relayed
SELECT mq._new_segment(topic_id) > 0 AS new_segment FROM mq.topic WHERE topic_name = 'rp_broken';
SELECT mq.create_group('rp_broken', 'g', start_at => 'earliest');
WITH d AS (DELETE FROM mq.outbox_dead RETURNING *)
INSERT INTO mq.outbox (aggregatetype, aggregateid, type, payload, headers)
SELECT aggregatetype, aggregateid, type, payload, headers FROM d;
SELECT mq.relay() >= 0 AS relayed;
SELECT payload FROM mq.fetch('rp_broken', 'g', wait => '5 seconds');
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
SELECT mq.drop_topic('rp_broken');
SELECT mq.drop_queue('rp_innocent');
