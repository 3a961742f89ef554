-- send 1/txn, mq: one message per transaction (autocommit).
SELECT mq.send('b', :payload);
