#!/usr/bin/env bash
# test/faults/worker_settings.sh: hostile database and role settings must
# not stop the worker (it sets what it depends on for itself).
#
# Database mq_f_set gets, with ALTER DATABASE ... SET and ALTER ROLE ... IN
# DATABASE ... SET (the role the worker connects as): repeatable read and
# serializable deferrable read-only transactions, 1 ms statement, lock and
# idle timeouts, exit_on_error, a search_path that puts a schema of
# look-alike functions first, session_replication_role = replica (no
# triggers), synchronous_commit = off, forced parallel query, old-style
# string literals, a role without rights.  A new worker starts with them;
# then 200 records are published to a topic through the outbox and a
# message on its last attempt lets its lease lapse.  Counts: records
# relayed (must be 200, each once), messages dead-lettered by maintenance
# (must be 1), failed passes in mq.worker_status (must be 0), the worker
# pid (must not change), and parallel query in another database.
NAME=worker_settings
source "$(dirname "$0")/common.bash"
DB=mq_f_set
# our own sessions override the hostile settings (client options win)
SAFE='-c default_transaction_isolation=read\ committed -c default_transaction_read_only=off -c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0 -c idle_session_timeout=0 -c search_path=public -c session_replication_role=origin -c default_transaction_deferrable=off -c role=none -c exit_on_error=off -c client_min_messages=warning'
new_db $DB mq
q() { PGOPTIONS="$SAFE" sql $DB "$1"; }

q "SELECT mq.create_topic('set_t', 2)" >/dev/null || die "cannot create topic"
q "SELECT mq.create_queue('set_q', visibility_timeout => '0.3 seconds', max_attempts => 1)" >/dev/null ||
	die "cannot create queue"
q "CREATE ROLE mq_f_nobody NOLOGIN" 2>/dev/null
q "CREATE SCHEMA evil;
   CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS \$\$SELECT '2000-01-01'::timestamptz\$\$;
   CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS \$\$SELECT '2000-01-01'::timestamptz\$\$;
   CREATE FUNCTION evil.nextval(regclass) RETURNS bigint LANGUAGE sql AS \$\$SELECT 1::bigint\$\$;" ||
	die "cannot create schema evil"

settings=(
	"default_transaction_isolation = 'repeatable read'"
	"default_transaction_read_only = on"
	"default_transaction_deferrable = on"
	"statement_timeout = '1ms'"
	"lock_timeout = '1ms'"
	"idle_in_transaction_session_timeout = '1ms'"
	"idle_session_timeout = '1ms'"
	"search_path = evil, pg_catalog, mq"
	"session_replication_role = replica"
	"exit_on_error = on"
	"synchronous_commit = off"
	"force_parallel_mode = on"
	"max_parallel_workers_per_gather = 8"
	"standard_conforming_strings = off"
	"DateStyle = 'SQL, DMY'"
	"IntervalStyle = 'iso_8601'"
	"temp_file_limit = 0"
	"role = mq_f_nobody"
)
set_ok=0
for s in "${settings[@]}"; do
	if PGOPTIONS="$SAFE" "${PSQL[@]}" -d postgres -c "ALTER DATABASE $DB SET $s" 2>/dev/null; then
		set_ok=$((set_ok + 1))
	else
		say "  (cannot set $s on a database here)"
	fi
done
# the role the worker connects as, in this database: serializable
PGOPTIONS="$SAFE" sql postgres "ALTER ROLE CURRENT_USER IN DATABASE $DB SET default_transaction_isolation = 'serializable'" ||
	die "cannot set role setting"
say "  $set_ok database settings and 1 role setting set"

# a new worker, with those settings
old=$(wait_worker $DB 15) || die "no worker in $DB"
q "SELECT pg_terminate_backend($old)" >/dev/null
pid=$(wait_worker $DB 15 "$old") || die "no new worker in $DB within 15 s"

q "SELECT count(mq.publish('set_t', jsonb_build_object('n', g), key => g::text)) FROM generate_series(1, 200) g" >/dev/null ||
	die "cannot publish"
q "SELECT mq.send('set_q', '{\"poison\": false}')" >/dev/null
q "SELECT count(*) FROM mq.poll('set_q', 1)" >/dev/null

relayed=0 dead=0
for _ in $(seq 1 75); do
	relayed=$(q "SELECT count(*) FROM mq.topic_record r JOIN mq.topic t USING (topic_id) WHERE t.topic_name = 'set_t'")
	dead=$(q "SELECT count(*) FROM mq.queue_message m JOIN mq.queue x USING (queue_id) WHERE x.queue_name = 'set_q_dlq'")
	[ "$relayed" -ge 200 ] && [ "$dead" -ge 1 ] && break
	sleep 0.2
done
distinct=$(q "SELECT count(DISTINCT payload->>'n') FROM mq.topic_record r JOIN mq.topic t USING (topic_id) WHERE t.topic_name = 'set_t'")
backlog=$(q "SELECT count(*) FROM mq.outbox")
failed=$(q "SELECT coalesce(sum(failed_passes), -1) FROM mq.worker_status WHERE database = current_database()" 2>/dev/null)
now=$(worker_pid $DB)
say "  relayed $relayed records ($distinct distinct), $backlog left in the outbox, $dead dead-lettered, ${failed:-?} failed passes, worker $pid -> ${now:-none}"
[ "$relayed" -eq 200 ] || bad "$relayed records relayed, not 200"
[ "$distinct" -eq 200 ] || bad "$distinct distinct records, not 200"
[ "$backlog" -eq 0 ] || bad "$backlog rows left in the outbox"
[ "$dead" -eq 1 ] || bad "maintenance dead-lettered $dead messages, not 1"
[ "${failed:-x}" = 0 ] || bad "failed passes: ${failed:-unknown}"
[ "$now" = "$pid" ] || bad "the worker changed ($pid -> ${now:-none})"
parallel_check "with hostile settings in $DB"

PGOPTIONS="$SAFE" "${PSQL[@]}" -d postgres -c "DROP DATABASE $DB WITH (FORCE)" \
	-c "DROP ROLE IF EXISTS mq_f_nobody" 2>/dev/null
finish
