#!/usr/bin/env bash
# test/faults/worker_many_dbs.sh: workers run only where mq is installed,
# probing holds no long-lived worker slot, and the registry of databases
# with mq does not fill up as databases come and go.
#
# 1. 12 databases without mq, and the server restarted with just enough
#    worker slots (the two launchers, one per database with mq, one probe,
#    two for a parallel query): while the launcher probes them (one at a
#    time), for 4 s, sample the mq processes in them (at most 1 at any time,
#    none at the end) and run parallel queries (each must get workers); no
#    "could not start" in the log.
# 2. 70 databases copied from a template that has mq, each registered with
#    the launcher (as CREATE EXTENSION does), then dropped; then a new
#    database with mq must get its worker within 15 s, and mq.worker_status
#    must list only databases that exist.
# Parallel query elsewhere must still get its workers.
NAME=worker_many_dbs
source "$(dirname "$0")/common.bash"
cs0=$(log_count 'could not start')

for i in $(seq 1 12); do
	sql postgres "DROP DATABASE IF EXISTS mq_f_n$i" >/dev/null 2>&1
	sql postgres "CREATE DATABASE mq_f_n$i" || die "cannot create mq_f_n$i"
done
# restart: every database is probed
restart() {
	"${MQ_RUNAS[@]}" "$MQ_PGBIN/pg_ctl" -D "$MQ_PGDATA" -l "$MQ_CLUSTER_DIR/server.log" \
		-m fast -w -t 60 restart >/dev/null || die "cannot restart the server"
}
PGOPTIONS='-c client_min_messages=warning' sql postgres \
	"CREATE TABLE IF NOT EXISTS mq_fault_par AS SELECT g FROM generate_series(1, 100000) g" >/dev/null
# just enough slots: PostgreSQL's logical replication launcher, mq's
# launcher, one per database with mq, one probe and the 2 workers of a
# parallel query
nmq=$(sql postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mq worker'")
slots=$((nmq + 5))
sql postgres "ALTER SYSTEM SET max_worker_processes = $slots" >/dev/null
restart
most=0 par_fail=0
for _ in $(seq 1 30); do
	n=$(sql postgres "SELECT count(*) FROM pg_stat_activity
	                  WHERE backend_type = 'mq worker' AND datname LIKE 'mq\_f\_n%'")
	[ "$n" -gt "$most" ] && most=$n
	w=$("${PSQL[@]}" -At -d postgres -c "SET max_parallel_workers_per_gather = 2" \
		-c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" \
		-c "SET min_parallel_table_scan_size = 0" \
		-c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT count(*) FROM mq_fault_par" |
		sed -n 's/.*Workers Launched: \([0-9]*\).*/\1/p' | head -1)
	[ "${w:-0}" -gt 0 ] || par_fail=$((par_fail + 1))
	sleep 0.1
done
left=$(sql postgres "SELECT count(*) FROM pg_stat_activity
                     WHERE backend_type = 'mq worker' AND datname LIKE 'mq\_f\_n%'")
cs=$(($(log_count 'could not start') - cs0))
say "  1. 12 databases without mq, $nmq with mq, max_worker_processes = $slots, after a restart: at most $most mq processes in them at once, $left at the end, $cs 'could not start', $par_fail of 30 parallel queries without workers"
[ "$most" -le 1 ] || bad "$most mq processes at once in databases without mq"
[ "$left" -eq 0 ] || bad "$left mq processes left in databases without mq"
[ "$cs" -eq 0 ] || bad "$cs 'could not start' messages"
[ "$par_fail" -eq 0 ] || bad "$par_fail parallel queries got no workers"
sql postgres "ALTER SYSTEM RESET max_worker_processes" >/dev/null
restart
parallel_check "with 12 databases without mq"
for i in $(seq 1 12); do sql postgres "DROP DATABASE mq_f_n$i" >/dev/null; done

# 2. 70 databases with mq come and go
new_db mq_f_tmpl mq
sql postgres "ALTER DATABASE mq_f_tmpl IS_TEMPLATE true" || die "cannot make a template"
start=$SECONDS
{
	for i in $(seq 1 70); do
		echo "\\c postgres"
		echo "CREATE DATABASE mq_f_m$i TEMPLATE mq_f_tmpl;"
		echo "\\c mq_f_m$i"
		echo "SELECT mq._launch_worker();"
		echo "\\c postgres"
		echo "DROP DATABASE mq_f_m$i WITH (FORCE);"
	done
} | "${PSQL[@]}" -d postgres >/dev/null 2>"$MQ_CLUSTER_DIR/many_dbs.err" ||
	bad "the create/drop loop failed: $(head -3 "$MQ_CLUSTER_DIR/many_dbs.err")"
say "  2. 70 databases with mq created and dropped in $((SECONDS - start)) s"
new_db mq_f_last mq
start=$SECONDS
p=$(wait_worker mq_f_last 15) || bad "no worker in a new database with mq within 15 s"
say "  the new database's worker: ${p:-none} after $((SECONDS - start)) s"
stale=$(sql mq_f_last "SELECT count(*) FROM mq.worker_status WHERE database IS NULL")
rows=$(sql mq_f_last "SELECT count(*) FROM mq.worker_status")
say "  mq.worker_status: $rows rows, $stale of dropped databases"
[ "${stale:-1}" -eq 0 ] || bad "$stale rows of dropped databases in mq.worker_status"
parallel_check "after 70 databases"
sql postgres "DROP DATABASE mq_f_last WITH (FORCE)" >/dev/null
sql postgres "ALTER DATABASE mq_f_tmpl IS_TEMPLATE false" >/dev/null
sql postgres "DROP DATABASE mq_f_tmpl" >/dev/null
finish
