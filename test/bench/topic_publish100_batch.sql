-- publish 100/txn, mq.publish_batch: the same 100 keyed records as
-- topic_publish100_mq.sql in one call (one multi-row insert into the
-- outbox).  Payloads and keys are built server-side; the ids are counted
-- server-side.
SELECT count(*)
FROM mq.publish_batch('tp', pg_catalog.array_fill(:payload::jsonb, ARRAY[100]),
                      keys => ARRAY(SELECT format('c%s-%s', :client_id::integer, g)
                                    FROM generate_series(1, 100) g));
