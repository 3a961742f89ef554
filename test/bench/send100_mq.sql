-- send 100/txn, mq: one send_batch of a 100-element jsonb[] (one parameter,
-- built by run.sh).  The ids are counted server-side so that, like the bare
-- INSERT, nothing but one row goes back to the client.
SELECT count(*) FROM mq.send_batch('b', :payloads);
