-- publish 100/txn, PgQ: 100 insert_event calls in one statement (one
-- transaction), the key in ev_extra1 like mq's.  Ids counted server-side.
SELECT count(pgq.insert_event('q', 'ev', :payload, format('c%s-%s', :client_id::integer, g), NULL, NULL, NULL))
FROM generate_series(1, 100) g;
