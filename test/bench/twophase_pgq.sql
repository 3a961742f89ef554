-- send 1 per prepared transaction, PgQ: one event, PREPARE, COMMIT PREPARED.
BEGIN;
SELECT pgq.insert_event('q', 'ev', :payload);
PREPARE TRANSACTION 'bench_:client_id';
COMMIT PREPARED 'bench_:client_id';
