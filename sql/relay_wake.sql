--
-- relay_wake: the commit of a publishing transaction wakes the relay (the
-- worker's latch), whether it used mq.publish or INSERT INTO mq.outbox;
-- the relay's commit wakes consumers waiting in mq.fetch.  The worker naps
-- for 60 s here, so only a wake-up can deliver within 2 s.
--
ALTER SYSTEM SET mq.naptime = '60s';
SELECT pg_reload_conf();
SELECT pg_sleep(1.5);   -- the worker picks up the new naptime
SELECT mq.create_topic('rw');
SELECT mq.create_group('rw', 'g', 'earliest');
SELECT mq.publish('rw', '{"n": 1}') IS NOT NULL AS published;
SELECT clock_timestamp() AS t0 \gset
SELECT "offset", payload FROM mq.fetch('rw', 'g', wait => '10 seconds');
SELECT clock_timestamp() - :'t0' < interval '2 seconds' AS woken_promptly;
SELECT mq.commit('rw', 'g', 0, 1);
INSERT INTO mq.outbox (aggregatetype, payload) VALUES ('rw', '{"n": 2}');
SELECT clock_timestamp() AS t1 \gset
SELECT "offset", payload FROM mq.fetch('rw', 'g', wait => '10 seconds');
SELECT clock_timestamp() - :'t1' < interval '2 seconds' AS woken_promptly;
-- a rolled-back publish wakes nobody and delivers nothing
SELECT mq.commit('rw', 'g', 0, 2);
BEGIN;
SELECT mq.publish('rw', '{"n": 3}') IS NOT NULL AS published;
ROLLBACK;
SELECT count(*) AS fetched FROM mq.fetch('rw', 'g', wait => '1 second');
SELECT mq.drop_topic('rw');
ALTER SYSTEM RESET mq.naptime;
SELECT pg_reload_conf();
