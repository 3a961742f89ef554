#!/usr/bin/env bash
# test/faults/worker_many_dbs.sh: workers run only where mq is installed,
# probing holds no long-lived worker slot, and the registry of databases
# with mq does not fill up as databases come and go.
#
# 1. 12 databases without mq: while the launcher probes them (one at a
#    time), sample the mq processes in them every 0.1 s for 12 s: at most 1
#    at any time, none at the end, no "could not start" in the log.
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
most=0
for _ in $(seq 1 120); do
	n=$(sql postgres "SELECT count(*) FROM pg_stat_activity
	                  WHERE backend_type = 'mq worker' AND datname LIKE 'mq\_f\_n%'")
	[ "$n" -gt "$most" ] && most=$n
	sleep 0.1
done
left=$(sql postgres "SELECT count(*) FROM pg_stat_activity
                     WHERE backend_type = 'mq worker' AND datname LIKE 'mq\_f\_n%'")
cs=$(($(log_count 'could not start') - cs0))
say "  1. 12 databases without mq: at most $most mq processes in them at once, $left at the end, $cs 'could not start'"
[ "$most" -le 1 ] || bad "$most mq processes at once in databases without mq"
[ "$left" -eq 0 ] || bad "$left mq processes left in databases without mq"
[ "$cs" -eq 0 ] || bad "$cs 'could not start' messages"
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
