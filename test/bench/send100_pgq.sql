-- send 100/txn, PgQ: 100 insert_event calls in one statement (one
-- transaction).  The event ids are counted server-side.
SELECT count(pgq.insert_event('q', 'ev', :payload)) FROM generate_series(1, 100);
