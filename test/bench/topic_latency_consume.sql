-- publish-commit -> fetchable latency, the consumer: wait up to 5 s in
-- mq.fetch on topic 'tl', note when it returned, commit what it got, and
-- record per record: fetch return - the publisher's clock_timestamp() "t"
-- (total), and the relay's published_at - "t" (time to be relayed).
WITH f AS MATERIALIZED (
    SELECT r.*, clock_timestamp() AS got
    FROM mq.fetch('tl', 'g', 100, wait => '5 seconds') r),
c AS MATERIALIZED (
    SELECT mq.commit('tl', 'g', f.partition, max(f."offset") + 1)
    FROM f GROUP BY f.partition)
INSERT INTO bench_lat (total_ms, relay_ms)
SELECT extract(epoch FROM f.got - (f.payload->>'t')::timestamptz) * 1000,
       extract(epoch FROM f.published_at - (f.payload->>'t')::timestamptz) * 1000
FROM f
WHERE (SELECT count(*) FROM c) >= 0;
