-- 05_many_queues: thousands of queues can be created, sent to, polled
-- and dropped, each keeping to its own messages.
BEGIN;
SELECT plan(10);
SET LOCAL client_min_messages = warning;

SELECT lives_ok($sql$
    DO $do$
    BEGIN
        FOR i IN 1..2000 LOOP
            PERFORM mq.create_queue(format('many_%s', i));
        END LOOP;
    END $do$$sql$, 'create 2000 queues');
SELECT is((SELECT count(*) FROM mq.list_queues() WHERE queue_name ~ '^many_[0-9]+$'), 2000::bigint,
          'list_queues shows 2000 queues');
SELECT is((SELECT count(DISTINCT s.id)
           FROM generate_series(1, 2000) i,
                LATERAL (SELECT mq.send(format('many_%s', i), jsonb_build_object('i', i)) AS id) s),
          2000::bigint, 'one message sent to each queue');
SELECT is((SELECT count(*) FROM generate_series(1, 2000) i,
                LATERAL mq.send_batch(format('many_%s', i), ARRAY[jsonb_build_object('i', i, 'b', 1), jsonb_build_object('i', i, 'b', 2)])),
          4000::bigint, 'a batch of two sent to each queue');
SELECT results_eq(
    $$SELECT count(*), sum(ready), sum(in_flight), sum(delayed), sum(total), min(total), max(total)
      FROM mq.queue_stats WHERE queue_name ~ '^many_[0-9]+$'$$,
    $$VALUES (2000::bigint, 6000::numeric, 0::numeric, 0::numeric, 6000::numeric, 3::bigint, 3::bigint)$$,
    'queue_stats: three ready messages in each queue');
SELECT is((SELECT count(*) FROM generate_series(1, 2000) i,
                LATERAL mq.poll(format('many_%s', i), 10, '1 hour') p
           WHERE (p.payload->>'i')::integer = i AND p.attempt = 1),
          6000::bigint, 'each queue polls exactly its own three messages');
SELECT is((SELECT count(*) FROM generate_series(1, 2000) i,
                LATERAL mq.pop(format('many_%s', i), 10) p),
          0::bigint, 'all leased: nothing to pop');
SELECT is((SELECT sum(mq.purge_queue(format('many_%s', i))) FROM generate_series(1, 1000) i),
          3000::numeric, 'purge the first 1000 queues');
SELECT is((SELECT count(*) FILTER (WHERE mq.drop_queue(format('many_%s', i))) FROM generate_series(1, 2000) i),
          2000::bigint, 'drop all 2000 queues');
SELECT is((SELECT count(*) FROM mq.list_queues() WHERE queue_name LIKE 'many\_%'), 0::bigint,
          'no queue is left behind');

SELECT * FROM finish();
ROLLBACK;
