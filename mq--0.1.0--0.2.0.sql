-- mq--0.1.0--0.2.0.sql: upgrade from 0.1.0 to 0.2.0.
--
-- There is no mq--0.2.0.sql: CREATE EXTENSION mq runs mq--0.1.0.sql and
-- then this script, so a new install and an upgraded one end with the same
-- schema by construction (test/ops checks it against the released 0.1.0).
-- mq--0.1.0.sql is released and never changes; every schema change of 0.2.0
-- goes here, in the section of its area.
\echo Use "ALTER EXTENSION mq UPDATE TO '0.2.0'" to load this file. \quit

--------------------------------------------------------------------------
-- Operations: dump/restore, sequences and segments dumped, restore safety
--------------------------------------------------------------------------

-- (end of section: operations)

--------------------------------------------------------------------------
-- Privileges: per-object grants, internal functions, table hardening
--------------------------------------------------------------------------

-- (end of section: privileges)

--------------------------------------------------------------------------
-- Shared state and input bounds: counters, aborted deliveries, routing
--------------------------------------------------------------------------

-- mq's bounded structures in shared memory (server-wide): entries in use,
-- capacity and the setting that sets it, and how many items did not fit
-- since the server started (each such event is also logged as a WARNING).
CREATE FUNCTION mq._shared_state(
    OUT structure text, OUT entries bigint, OUT capacity bigint,
    OUT setting text, OUT overflows bigint)
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_shared_state';
REVOKE ALL ON FUNCTION mq._shared_state() FROM PUBLIC;

CREATE VIEW mq.shared_state AS
SELECT * FROM mq._shared_state();

-- (end of section: shared state)

--------------------------------------------------------------------------
-- Background worker: status, settings, preload check
--------------------------------------------------------------------------

-- (end of section: worker)

--------------------------------------------------------------------------
-- Queue integrity: lock protocol, receipts, 2PC, wake-ups, plans
--------------------------------------------------------------------------

-- (end of section: queue integrity)

--------------------------------------------------------------------------
-- Topic and outbox integrity: publish buffer, key order, group fencing
--------------------------------------------------------------------------

-- (end of section: topic integrity)
