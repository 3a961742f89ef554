-- send 1 per prepared transaction, bare SQL reference: one row, PREPARE, COMMIT PREPARED.
BEGIN;
INSERT INTO bare (vt, read_ct, enqueued_at, payload) VALUES (now(), 0, now(), :payload);
PREPARE TRANSACTION 'bench_:client_id';
COMMIT PREPARED 'bench_:client_id';
