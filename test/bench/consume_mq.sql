-- consume, mq: lease up to 10 messages in one transaction, ack them in a
-- second one (leased mode).  The ids travel through a pgbench variable.
SELECT coalesce(array_agg(msg_id), '{}') AS ids FROM mq.poll('b', 10) \gset
SELECT mq.ack('b', :ids::bigint[]);
