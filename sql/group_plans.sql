--
-- group_plans: mq.fetch and mq.commit use their intended access paths (the
-- indexes of mq.group_offset, mq.topic_partition and the topic's segments)
-- whatever the statistics say: on a never-analyzed topic, and on one
-- analyzed while empty that then filled up.  pg_stat_xact_user_tables
-- counts the scans of the current transaction (once the counts of earlier
-- ones are reported): no sequential scan of these tables may appear.
--
SELECT mq.create_topic('gp_fresh', 2);
SELECT mq.create_group('gp_fresh', 'g', 'earliest');
SELECT mq.create_topic('gp_stale', 2);
SELECT mq.create_group('gp_stale', 'g', 'earliest');
-- analyzed while empty
ANALYZE mq.topic_record, mq.group_offset, mq.topic_partition, mq.consumer_group, mq.topic;
SELECT count(*) AS published FROM (
    SELECT mq.publish('gp_fresh', jsonb_build_object('n', g), key => 'k' || (g % 7)) FROM generate_series(1, 3000) g
    UNION ALL
    SELECT mq.publish('gp_stale', jsonb_build_object('n', g), key => 'k' || (g % 7)) FROM generate_series(1, 3000) g) s;
DO $$
BEGIN
    FOR i IN 1..200 LOOP
        PERFORM mq.relay();
        EXIT WHEN NOT EXISTS (SELECT 1 FROM mq.outbox WHERE aggregatetype LIKE 'gp\_%');
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
CREATE FUNCTION gp_scans() RETURNS TABLE (relname text, seq_scans bigint) LANGUAGE sql AS $$
    SELECT CASE WHEN s.relname LIKE 'topic_record%' THEN 'topic_record (segments)' ELSE s.relname::text END,
           sum(s.seq_scan)::bigint
      FROM pg_stat_xact_user_tables s
     WHERE s.schemaname = 'mq'
       AND (s.relname IN ('group_offset', 'topic_partition', 'consumer_group', 'topic')
            OR s.relname LIKE 'topic_record%')
     GROUP BY 1 ORDER BY 1
$$;
-- counts of earlier transactions not yet reported would show in the view
SELECT pg_stat_force_next_flush();
BEGIN;
SELECT count(*) AS fetched FROM mq.fetch('gp_fresh', 'g', 10);
SELECT count(*) AS fetched FROM mq.fetch('gp_fresh', 'g', 10, auto_commit => true);
SELECT count(*) AS fetched FROM mq.fetch('gp_fresh', 'g', 10, member => 'm1');
SELECT mq.commit('gp_fresh', 'g', 0, 6);
SELECT mq.commit('gp_fresh', 'g', 0, 7, member => 'm1');
SELECT count(*) AS fetched FROM mq.fetch('gp_stale', 'g', 10);
SELECT count(*) AS fetched FROM mq.fetch('gp_stale', 'g', 10, auto_commit => true);
SELECT mq.commit('gp_stale', 'g', 1, 6);
SELECT * FROM gp_scans();
ROLLBACK;
-- the same again, now that the plans are saved
SELECT pg_stat_force_next_flush();
BEGIN;
SELECT count(*) AS fetched FROM mq.fetch('gp_fresh', 'g', 10, auto_commit => true);
SELECT count(*) AS fetched FROM mq.fetch('gp_stale', 'g', 10, auto_commit => true);
SELECT mq.commit('gp_stale', 'g', 1, 6);
SELECT * FROM gp_scans();
ROLLBACK;
DROP FUNCTION gp_scans();
SELECT mq.drop_topic('gp_fresh');
SELECT mq.drop_topic('gp_stale');
