-- worker_status: mq.worker_status shows this database's worker and the
-- outbox backlog; it is readable by pg_monitor, not by PUBLIC.
SET client_min_messages = warning;
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN EXISTS (SELECT 1 FROM mq.worker_status
                           WHERE database = current_database()
                             AND pid IS NOT NULL AND passes > 0);
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT count(*) AS rows_here,
       bool_and(pid IS NOT NULL) AS running,
       bool_and(state IN ('idle', 'relay', 'maintenance')) AS state_ok,
       bool_and(passes > 0) AS passed,
       bool_and(launches >= 1) AS launched,
       bool_and(extension_version = '0.2.0') AS version_seen,
       bool_and(outbox_backlog >= 0) AS backlog_counted,
       bool_and(outbox_dead >= 0) AS set_aside_counted,
       bool_and(bounds_hit IS NOT NULL) AS bounds_listed
  FROM mq.worker_status WHERE database = current_database();
-- a row the relay set aside is counted
INSERT INTO mq.outbox_dead (seq, id, aggregatetype, payload, created_at, sqlstate, error)
VALUES (-1, gen_random_uuid(), 'gone', '{}', now(), '42704', 'destination "gone" does not exist');
SELECT outbox_dead >= 1 AND outbox_dead = (SELECT count(*) FROM mq.outbox_dead) AS counted
  FROM mq.worker_status WHERE database = current_database();
DELETE FROM mq.outbox_dead WHERE seq = -1;
-- other databases' rows carry no outbox figures
SELECT count(*) AS other_rows_with_backlog FROM mq.worker_status
 WHERE database IS DISTINCT FROM current_database()
   AND (outbox_backlog IS NOT NULL OR outbox_dead IS NOT NULL);
-- the internal function and the view are closed to PUBLIC, open to pg_monitor
SELECT has_function_privilege('public', 'mq._worker_status()', 'EXECUTE') AS public_exec,
       has_table_privilege('pg_monitor', 'mq.worker_status', 'SELECT') AS monitor_select,
       has_function_privilege('pg_monitor', 'mq._worker_status()', 'EXECUTE') AS monitor_exec,
       has_function_privilege('public', 'mq._check_preload()', 'EXECUTE') AS public_check;
