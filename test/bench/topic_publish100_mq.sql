-- publish 100/txn, mq.publish: 100 keyed records to the 4-partition topic
-- 'tp' in one statement (one transaction).  Each client has its own keys
-- (c<client>-1 .. c<client>-100): the outbox serializes writers of one key
-- until commit, so shared keys would serialize the clients.  The ids are
-- counted server-side.
SELECT count(mq.publish('tp', :payload, key => format('c%s-%s', :client_id::integer, g)))
FROM generate_series(1, 100) g;
