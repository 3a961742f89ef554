-- group fetch + commit, one consumer: fetch up to 500 records of topic 'tf'
-- (all 4 partitions, no member), send them to the client, and commit each
-- returned partition's last offset + 1, all in one statement (one
-- transaction).  The PgQ counterpart is read_pgq.sql (next_batch,
-- get_batch_events, finish_batch).
WITH f AS MATERIALIZED (
    SELECT * FROM mq.fetch('tf', 'g', 500)),
c AS MATERIALIZED (
    SELECT mq.commit('tf', 'g', f.partition, max(f."offset") + 1)
    FROM f GROUP BY f.partition)
SELECT f.partition, f."offset", f.key, f.payload, f.message_id
FROM f
WHERE (SELECT count(*) FROM c) >= 0;
