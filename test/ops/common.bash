# test/ops/common.bash: shared by the scripts of the ops suite (sourced,
# not run: run_tests.sh runs test/ops/*.sh only).
#
# After test/lib.sh and mq_attach: ops_init NAME makes a work directory
# and an EXIT trap that stops every cluster ops_cluster started and removes
# them, whatever happened.  Counting: ok MESSAGE, bad MESSAGE (a
# violation); ops_finish prints "NAME: N checks, N violations" and exits
# 1 on any violation.

OPS_NAME=
OPS_WORK=
OPS_CLUSTERS=()
OPS_PIDS=()
ops_checks=0
ops_violations=0
PSQL=("$MQ_PGBIN/psql" -X -q -v ON_ERROR_STOP=1)
sql() { "${PSQL[@]}" -At -c "$1"; }

say() { echo "$OPS_NAME: $*"; }
die() {
	say "ERROR: $*"
	ops_violations=$((ops_violations + 1))
	exit 1
}
ok() {
	ops_checks=$((ops_checks + 1))
	[ -n "${MQ_OPS_VERBOSE:-}" ] && say "  ok: $*"
	return 0
}
bad() {
	ops_checks=$((ops_checks + 1))
	ops_violations=$((ops_violations + 1))
	say "  VIOLATION: $*"
}
# check DESCRIPTION EXPECTED ACTUAL
check() {
	if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: expected '$2', got '$3'"; fi
}

# ops_cleanup: the EXIT trap: stop the clusters we started, kill our
# clients, remove the work directory (MQ_OPS_KEEP=1 keeps it).
ops_cleanup() {
	local rc=$? d p
	for p in "${OPS_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for d in "${OPS_CLUSTERS[@]}"; do
		[ -f "$d/data/postmaster.pid" ] || continue
		"${MQ_RUNAS[@]}" "$(cat "$d/bindir")/pg_ctl" -D "$d/data" -m immediate stop >/dev/null 2>&1 || true
	done
	wait 2>/dev/null
	if [ "${MQ_OPS_KEEP:-}" = 1 ]; then
		say "work directory kept: $OPS_WORK"
	else
		rm -rf "$OPS_WORK"
	fi
	[ $rc -eq 0 ] && [ $ops_violations -gt 0 ] && rc=1
	exit $rc
}

ops_init() {
	OPS_NAME=$1
	OPS_WORK=$(mktemp -d "/tmp/mq-$1.XXXXXX")
	chmod 755 "$OPS_WORK"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$OPS_WORK"
	trap ops_cleanup EXIT
	trap 'exit 130' INT TERM
}

ops_finish() {
	say "$ops_checks checks, $ops_violations violations${1:+, $1}"
	[ $ops_violations -eq 0 ]
	exit $?
}

# ops_port: a free-looking port for one more cluster on our socket dir
# (sockets live in private directories, so only the number is shared).
ops_port() { echo $((56000 + RANDOM % 3000)); }

# ops_cluster DIR BINDIR [initdb args...]: initdb a cluster in DIR (a new
# directory) with the server in BINDIR; its socket is DIR itself.  Only
# sets it up; ops_pg_start starts it.  Extra settings: append to
# DIR/data/postgresql.conf.
ops_cluster() {
	local dir=$1 bindir=$2
	shift 2
	mkdir -p "$dir"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
	OPS_CLUSTERS+=("$dir")
	echo "$bindir" >"$dir/bindir"
	"${MQ_RUNAS[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U "$PGUSER" --no-sync "$@" \
		>"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; return 1; }
	ops_conf "$dir" "$(ops_port)"
}

# ops_conf DIR PORT: the settings every ops cluster has (quick, small).
ops_conf() {
	cat >>"$1/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$1'
port = $2
shared_preload_libraries = 'mq'
max_connections = 40
shared_buffers = 32MB
max_wal_size = 256MB
fsync = off
log_min_messages = warning
CONF
	echo "$2" >"$1/port"
}

ops_pg_start() {
	"${MQ_RUNAS[@]}" "$(cat "$1/bindir")/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 60 start \
		>/dev/null || { tail -30 "$1/server.log"; return 1; }
}
ops_pg_stop() {
	"${MQ_RUNAS[@]}" "$(cat "$1/bindir")/pg_ctl" -D "$1/data" -m fast -w -t 60 stop >/dev/null
}

# ops_psql DIR [psql args...]: psql against the cluster in DIR.
ops_psql() {
	local dir=$1
	shift
	"$(cat "$dir/bindir")/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$(cat "$dir/port")" "$@"
}

# wait_for SECS SQL: wait until SQL (run by sql) prints t.
wait_for() {
	local secs=$1 q=$2 start=$SECONDS
	while [ $((SECONDS - start)) -lt "$secs" ]; do
		[ "$(sql "$q")" = t ] && return 0
		sleep 0.1
	done
	return 1
}

# hold_relay: keep the relay of $PGDATABASE off (a relay pass that stays
# open holds the relay lock) once the outbox is empty; release_relay ends it.
OPS_HOLDER=
hold_relay() {
	wait_for 10 "SELECT NOT EXISTS (SELECT 1 FROM mq.outbox)" || return 1
	"${PSQL[@]}" -c "SET application_name = 'mq_ops_holder'" -c "BEGIN" -c "SELECT mq.relay(1)" \
		-c "SELECT pg_sleep(300)" >/dev/null 2>&1 &
	OPS_HOLDER=$!
	OPS_PIDS+=($!)
	wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
	  WHERE application_name = 'mq_ops_holder' AND query = 'SELECT pg_sleep(300)')"
}
release_relay() {
	sql "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'mq_ops_holder'" >/dev/null
	wait "$OPS_HOLDER" 2>/dev/null
	return 0
}
