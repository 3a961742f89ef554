-- PgQ batch read: one consumer takes the next batch (events between two
-- ticks), fetches its events to the client and finishes it.  A consumer has
-- one batch at a time, so this runs with one client.
SELECT coalesce(pgq.next_batch('q', 'c'), 0) AS bid \gset
\if :bid > 0
SELECT ev_id, ev_type, ev_data FROM pgq.get_batch_events(:bid);
SELECT pgq.finish_batch(:bid);
\endif
