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

-- (end of section: shared state)

--------------------------------------------------------------------------
-- Background worker: status, settings, preload check
--------------------------------------------------------------------------

-- Refuse to install (or update) mq in a server that did not preload it:
-- nothing would relay, count attempts or dead-letter.
CREATE FUNCTION mq._check_preload()
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_check_preload';
REVOKE ALL ON FUNCTION mq._check_preload() FROM PUBLIC;
SELECT mq._check_preload();

-- The workers as shared memory knows them: one row per database with mq,
-- plus the current database if it has none.
CREATE FUNCTION mq._worker_status(
    OUT dboid oid, OUT pid integer, OUT state text,
    OUT started_at timestamptz, OUT pass_started timestamptz,
    OUT last_pass_started timestamptz, OUT last_pass_duration interval,
    OUT passes bigint, OUT failed_passes bigint,
    OUT consecutive_failures integer, OUT rows_relayed bigint,
    OUT launches bigint, OUT last_error text, OUT last_error_at timestamptz,
    OUT next_retry timestamptz, OUT extension_version text,
    OUT bounds_hit text[])
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_worker_status';
REVOKE ALL ON FUNCTION mq._worker_status() FROM PUBLIC;

-- Health of the background workers; the outbox columns are those of the
-- current database (NULL in the rows of other databases).
CREATE VIEW mq.worker_status AS
SELECT d.datname AS database, s.pid, s.state, s.started_at,
       s.pass_started,
       pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) s.pass_started
           AS pass_running_for,
       s.last_pass_started, s.last_pass_duration, s.passes, s.failed_passes,
       s.consecutive_failures, s.rows_relayed, s.launches,
       s.last_error, s.last_error_at, s.next_retry, s.extension_version,
       CASE WHEN s.dboid OPERATOR(pg_catalog.=) o.dboid THEN o.backlog END
           AS outbox_backlog,
       CASE WHEN s.dboid OPERATOR(pg_catalog.=) o.dboid THEN o.oldest_age END
           AS outbox_oldest_age,
       s.bounds_hit
  FROM mq._worker_status() s
  LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.dboid
  CROSS JOIN (SELECT db.oid AS dboid, x.backlog, x.oldest_age
                FROM pg_catalog.pg_database db,
                     (SELECT pg_catalog.count(*) AS backlog,
                             pg_catalog.clock_timestamp()
                                 OPERATOR(pg_catalog.-)
                                 pg_catalog.min(b.created_at) AS oldest_age
                        FROM mq.outbox b) x
               WHERE db.datname OPERATOR(pg_catalog.=)
                     pg_catalog.current_database()) o;
REVOKE ALL ON mq.worker_status FROM PUBLIC;
GRANT SELECT ON mq.worker_status TO pg_monitor;
GRANT EXECUTE ON FUNCTION mq._worker_status() TO pg_monitor;

-- (end of section: worker)

--------------------------------------------------------------------------
-- Queue integrity: lock protocol, receipts, 2PC, wake-ups, plans
--------------------------------------------------------------------------

-- (end of section: queue integrity)

--------------------------------------------------------------------------
-- Topic and outbox integrity: publish buffer, key order, group fencing
--------------------------------------------------------------------------

-- (end of section: topic integrity)
