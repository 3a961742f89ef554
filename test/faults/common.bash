# test/faults/common.bash: helpers of the fault scripts (sourced, not run).
#
# Each script sets NAME before sourcing; it then uses the cluster of
# test/run_tests.sh (mq_attach), counts violations with bad and ends with
# finish, which prints "NAME: N violations" and exits 1 if there were any.

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
mq_attach
set +e

PSQL=("$MQ_PGBIN/psql" -X -q -v ON_ERROR_STOP=1)
violations=0

say() { echo "$NAME: $*"; }
die() {
	say "ERROR: $*"
	exit 1
}
bad() {
	say "  VIOLATION: $*"
	violations=$((violations + 1))
}
# sql DB STATEMENT: one value per line, fields separated by |
sql() { "${PSQL[@]}" -At -d "$1" -c "$2"; }
finish() {
	say "$violations violations"
	[ "$violations" -eq 0 ]
	exit $?
}

# new_db DB [mq]: a fresh database, with mq if asked
new_db() {
	PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -d postgres \
		-c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" ||
		die "cannot create database $1"
	if [ "${2:-}" = mq ]; then
		sql "$1" "CREATE EXTENSION mq" || die "cannot create extension mq in $1"
	fi
}

# worker_pid DB: pid of the mq worker of DB, or nothing
worker_pid() {
	sql postgres "SELECT pid FROM pg_stat_activity
	              WHERE backend_type = 'mq worker' AND datname = '$1'"
}

# wait_worker DB SECS [OLD_PID]: wait for a worker of DB (other than
# OLD_PID); prints its pid, or nothing after SECS seconds.
wait_worker() {
	local start=$SECONDS p
	while [ $((SECONDS - start)) -lt "$2" ]; do
		p=$(worker_pid "$1")
		if [ -n "$p" ] && [ "$p" != "${3:-}" ]; then
			echo "$p"
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# parallel_check LABEL: a parallel query in database postgres must get its
# workers (Workers Launched > 0 in EXPLAIN ANALYZE).
parallel_check() {
	local n
	PGOPTIONS='-c client_min_messages=warning' sql postgres \
		"CREATE TABLE IF NOT EXISTS mq_fault_par AS SELECT g FROM generate_series(1, 100000) g" >/dev/null
	n=$("${PSQL[@]}" -At -d postgres \
		-c "SET max_parallel_workers_per_gather = 2" \
		-c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" \
		-c "SET min_parallel_table_scan_size = 0" \
		-c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT count(*) FROM mq_fault_par" |
		sed -n 's/.*Workers Launched: \([0-9]*\).*/\1/p' | head -1)
	say "  $1: parallel query launched ${n:-0} workers"
	[ "${n:-0}" -gt 0 ] || bad "$1: parallel query elsewhere got no workers"
}

# log_count PATTERN: lines of the server log matching PATTERN
log_count() { grep -c -- "$1" "$MQ_CLUSTER_DIR/server.log"; }
