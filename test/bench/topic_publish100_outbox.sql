-- publish 100/txn, the outbox directly (Debezium columns): one multi-row
-- INSERT of 100 keyed records for the 4-partition topic 'tp'.  Same keys as
-- topic_publish100_mq.sql.
INSERT INTO mq.outbox (aggregatetype, aggregateid, payload)
SELECT 'tp', format('c%s-%s', :client_id::integer, g), :payload::jsonb
FROM generate_series(1, 100) g;
