-- send 1 per prepared transaction, mq: PREPARE, then COMMIT PREPARED.
BEGIN;
SELECT mq.send('b', :payload);
PREPARE TRANSACTION 'bench_:client_id';
COMMIT PREPARED 'bench_:client_id';
