--
-- stats_large: mq.queue_stats on a queue past the 100,000 ready messages it
-- counts exactly; beyond that the ready count comes from the counters'
-- depth, which mq.recount() realigns with a fresh count.
--
SELECT mq.create_queue('big');
SELECT count(*) AS sent FROM mq.send_batch('big',
    (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 150000) g));
SELECT count(*) AS leased FROM mq.poll('big', 10);
SELECT mq.send('big', '{"later": true}', delay => '1 hour') > 0 AS delayed_sent;
SELECT ready, in_flight, delayed, total, total_sent FROM mq.queue_stats WHERE queue_name = 'big';
-- the counters drift (say, moves lost in a crash): the view follows them ...
UPDATE mq.queue_counter SET depth_adjust = depth_adjust + 500
 WHERE queue_id = (SELECT queue_id FROM mq.queue WHERE queue_name = 'big');
SELECT ready, total FROM mq.queue_stats WHERE queue_name = 'big';
-- ... never below the exact part it counted ...
UPDATE mq.queue_counter SET depth_adjust = depth_adjust - 100000
 WHERE queue_id = (SELECT queue_id FROM mq.queue WHERE queue_name = 'big');
SELECT ready, total FROM mq.queue_stats WHERE queue_name = 'big';
-- ... and mq.recount() puts them right
SELECT mq.recount();
SELECT ready, in_flight, delayed, total FROM mq.queue_stats WHERE queue_name = 'big';
SELECT count(*) AS ready_rows FROM mq.queue_message m JOIN mq.queue q USING (queue_id)
 WHERE q.queue_name = 'big' AND m.vt <= now();
-- acks and purges move the depth
SELECT mq.ack('big', (SELECT array_agg(msg_id) FROM mq.poll('big', 1000))) AS acked;
SELECT ready, in_flight, total, total_acked FROM mq.queue_stats WHERE queue_name = 'big';
SELECT mq.purge_queue('big') AS purged;
SELECT ready, in_flight, delayed, total, total_purged FROM mq.queue_stats WHERE queue_name = 'big';
SELECT mq.drop_queue('big');
