-- test/ops/use.sql: every feature, on a database filled by
-- test/ops/fill.sql whose outbox has drained (a restored copy, an upgraded
-- database); prints "name value" lines, compared with test/ops/use.expected.
SET client_min_messages = warning;
SELECT 'new_queue ' || (mq.create_queue('dr_new') IS NOT NULL);
SELECT 'new_msg_above_old ' || (mq.send('dr_q', '{"new": 1}') > (SELECT max(msg_id) FROM mq.queue_message WHERE payload <> '{"new": 1}'));
SELECT 'polled ' || count(*) FROM mq.poll('dr_q', 10);
SELECT 'acked_old_dead ' || mq.ack('dr_q_dlq', msg_id) FROM mq.poll('dr_q_dlq', 1);
SELECT 'dedup_kept ' || (mq.send('dr_q', '{"n": 1}', dedup_key => 'order-1') = (SELECT msg_id FROM mq.dedup WHERE dedup_key = 'order-1'));
SELECT 'inbox_kept ' || NOT mq.process_once('billing', 'msg-17');
SELECT 'new_topic ' || (mq.create_topic('dr_t2', partitions => 2) IS NOT NULL);
SELECT 'new_group ' || (mq.create_group('dr_t2', 'g', start_at => 'earliest') IS NOT NULL);
SELECT 'new_group_old_topic ' || (mq.create_group('dr_t', 'g3', start_at => 'earliest') IS NOT NULL);
SELECT 'new_exchange ' || (mq.create_exchange('dr_x2', 'fanout') IS NOT NULL);
SELECT 'bind ' || (mq.bind('dr_x2', 'dr_t2') IS NOT NULL);
SELECT 'publish ' || (mq.publish('dr_x2', '{"after": 1}') IS NOT NULL);
SELECT 'publish_old ' || (mq.publish('dr_t', '{"after": 2}', key => 'k1') IS NOT NULL);
SELECT mq.relay() AS moved \gset
SELECT 'relay ' || NOT EXISTS (SELECT 1 FROM mq.outbox);
SELECT 'fetch_new ' || count(*) FROM mq.fetch('dr_t2', 'g', 10);
SELECT 'fetch_old_from_offset ' || min("offset") FILTER (WHERE partition = 0) FROM mq.fetch('dr_t', 'g1', 1000);
SELECT 'commit ' || (mq.commit('dr_t', 'g1', 0, 4) IS NOT NULL);
SELECT 'lag_rows ' || count(*) FROM mq.consumer_lag WHERE topic_name = 'dr_t' AND group_name = 'g1';
-- retention: age the segments of dr_t past the retention; maintain drops
-- the closed ones and opens new segments
UPDATE mq.segment s SET created_at = s.created_at - interval '3 hours'
  FROM mq.topic t WHERE t.topic_id = s.topic_id AND t.topic_name = 'dr_t';
SELECT 'maintain_ok ' || (sum(segments_dropped) IS NOT NULL) FROM mq.maintain();
SELECT 'old_segments_dropped ' || (count(*) <= 2) FROM mq.segment s JOIN mq.topic t USING (topic_id) WHERE t.topic_name = 'dr_t';
SELECT 'new_segment_opened ' || (max(s.seg) > (SELECT max(seg) FROM mq.topic_record)) FROM mq.segment s;
SELECT 'publish_after_rotate ' || (mq.publish('dr_t', '{"after": 3}') IS NOT NULL);
SELECT mq.relay() AS moved \gset
SELECT 'relay2 ' || NOT EXISTS (SELECT 1 FROM mq.outbox);
SELECT 'stats ' || count(*) FROM mq.topic_stats WHERE topic_name = 'dr_t';
SELECT 'queue_stats ' || count(*) FROM mq.queue_stats;
