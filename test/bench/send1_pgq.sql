-- send 1/txn, PgQ: one event per transaction (autocommit).
SELECT pgq.insert_event('q', 'ev', :payload);
