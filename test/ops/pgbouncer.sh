#!/usr/bin/env bash
# test/ops/pgbouncer.sh: mq through PgBouncer in transaction pooling mode.
#
# 1. The demo's main job (test/demo.sql: queue, outbox, topic, consumer
#    group, exchange, views) runs through PgBouncer and checks itself.
# 2. Long polls pin a server connection for their wait.  With the pool
#    full of waiters, a producer that would wake them waits for a server
#    connection until a wait ends: measured with POOL waiters in a pool of
#    POOL (saturated), in a pool of POOL + 1 (one spare connection), and
#    with a reserve pool (reserve_pool_size = 1, reserve_pool_timeout =
#    0.2 s).  Prints the producer's latency and the waiters' wake-up for
#    each (doc/operations.md, "Poolers", sizes pools from these numbers).
#
# PgBouncer runs as the postgres OS user on a unix socket in a temp dir.
# Prints "pgbouncer: N checks, N violations"; exits 1 on a violation.
source "$(dirname "$0")/../lib.sh"
mq_attach
source "$(dirname "$0")/common.bash"
set +e
ops_init pgbouncer
PGB=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
[ -x "$PGB" ] || die "pgbouncer is not installed (Debian package pgbouncer)"
DB=mq_bouncer
WAIT=${MQ_PGB_WAIT:-4}
POOL=3
PGB_PORT=$(ops_port)

PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -d postgres \
	-c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" || die "cannot create $DB"

# bouncer_start POOL_SIZE [RESERVE]: (re)start PgBouncer
bouncer_start() {
	bouncer_stop
	cat >"$OPS_WORK/pgbouncer.ini" <<INI
[databases]
$DB = host=$PGHOST port=$PGPORT dbname=$DB
[pgbouncer]
listen_addr =
listen_port = $PGB_PORT
unix_socket_dir = $OPS_WORK
auth_type = trust
auth_file = $OPS_WORK/userlist.txt
pool_mode = transaction
default_pool_size = $1
reserve_pool_size = ${2:-0}
reserve_pool_timeout = 0.2
max_client_conn = 100
logfile = $OPS_WORK/pgbouncer.log
pidfile = $OPS_WORK/pgbouncer.pid
admin_users = $PGUSER
INI
	echo "\"$PGUSER\" \"\"" >"$OPS_WORK/userlist.txt"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$OPS_WORK"/pgbouncer.ini "$OPS_WORK"/userlist.txt
	"${MQ_RUNAS[@]}" "$PGB" -d -q "$OPS_WORK/pgbouncer.ini" || return 1
	local i
	for i in $(seq 50); do
		[ -S "$OPS_WORK/.s.PGSQL.$PGB_PORT" ] && return 0
		sleep 0.1
	done
	return 1
}
bouncer_stop() {
	[ -f "$OPS_WORK/pgbouncer.pid" ] || return 0
	kill "$(cat "$OPS_WORK/pgbouncer.pid")" 2>/dev/null
	local i
	for i in $(seq 50); do
		[ -f "$OPS_WORK/pgbouncer.pid" ] || break
		sleep 0.1
	done
}
trap 'bouncer_stop; ops_cleanup' EXIT
BPSQL=("$MQ_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$OPS_WORK" -p "$PGB_PORT" -d "$DB")

bouncer_start $POOL || die "cannot start pgbouncer"
if "${BPSQL[@]}" -f "$MQ_ROOT/test/demo.sql" >"$OPS_WORK/demo.out" 2>&1; then
	ok "the demo through PgBouncer"
else
	bad "the demo through PgBouncer failed: $(tail -5 "$OPS_WORK/demo.out" | tr '\n' ' ')"
fi
"${BPSQL[@]}" -c "SELECT mq.create_queue('pgb_q')" >/dev/null || die "cannot create pgb_q"

# saturate LABEL WAITERS: WAITERS long polls through PgBouncer, then a
# producer; prints "LABEL: producer X s, waiters woken after Y s (of WAIT s)"
saturate() {
	local label=$1 n=$2 i t0 t1 tw
	rm -f "$OPS_WORK"/waiter.*
	for i in $(seq "$n"); do
		(
			"${BPSQL[@]}" -At -c "SELECT count(*) FROM mq.poll('pgb_q', 1, wait => '$WAIT seconds')" >/dev/null
			date +%s.%N >"$OPS_WORK/waiter.$i"
		) &
		OPS_PIDS+=($!)
	done
	# until every waiter holds a server connection
	local start=$SECONDS
	until [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB' AND query LIKE '%mq.poll(''pgb_q''%' AND state = 'active'")" -ge "$n" ]; do
		[ $((SECONDS - start)) -gt 10 ] && { bad "$label: waiters did not start"; return; }
		sleep 0.05
	done
	t0=$(date +%s.%N)
	"${BPSQL[@]}" -At -c "SELECT mq.send_batch('pgb_q', array_fill('{}'::jsonb, ARRAY[$n]))" >/dev/null ||
		bad "$label: the producer failed"
	t1=$(date +%s.%N)
	wait
	tw=$(cat "$OPS_WORK"/waiter.* | sort -n | tail -1)
	"${BPSQL[@]}" -At -c "SELECT mq.purge_queue('pgb_q')" >/dev/null
	awk -v l="$label" -v a="$t0" -v b="$t1" -v w="$tw" -v s="$WAIT" 'BEGIN {
		printf "%s: producer %.2f s, last waiter back %.2f s after the send (wait %s s)\n", l, b - a, w - a, s }' |
		tee -a "$OPS_WORK/numbers" | sed "s/^/$OPS_NAME: /"
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >"$OPS_WORK/last"
}

saturate "pool $POOL, $POOL waiters (saturated)" $POOL
sat=$(cat "$OPS_WORK/last")
awk -v x="$sat" -v w="$WAIT" 'BEGIN { exit !(x > w / 2) }'  && ok "saturated pool: the producer waits for a wait to end" ||
	bad "saturated pool: expected the producer to wait most of ${WAIT} s, it took $sat s"

bouncer_start $((POOL + 1)) || die "cannot restart pgbouncer"
saturate "pool $((POOL + 1)), $POOL waiters (one spare)" $POOL
spare=$(cat "$OPS_WORK/last")
awk -v x="$spare" 'BEGIN { exit !(x < 1) }'  && ok "a spare server connection: the producer is not held up" ||
	bad "with a spare server connection the producer took $spare s"

bouncer_start $POOL 1 || die "cannot restart pgbouncer"
saturate "pool $POOL + reserve 1 after 0.2 s, $POOL waiters" $POOL
res=$(cat "$OPS_WORK/last")
awk -v x="$res" 'BEGIN { exit !(x < 2) }'  && ok "a reserve pool bounds the producer's delay" ||
	bad "with a reserve pool the producer took $res s"

bouncer_stop
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
ops_finish "3 pool sizes"
