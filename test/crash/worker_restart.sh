#!/usr/bin/env bash
# test/crash/worker_restart.sh: kill the mq worker under load, then count;
# stop the server while long polls wait.
#
# Load on queue wr_q (max_attempts 3, 0.5 s leases): a producer sends
# {"s": n} ten per transaction and records (n, msg_id) in wr_sent in the
# same transaction; three consumers poll (leased mode) and then, in one
# transaction, ack s % 4 = 0 (recording n in wr_acked in that transaction),
# nack s % 4 = 1 (dead after the 3rd attempt), reject s % 4 = 2, and leave
# s % 4 = 3 alone (its lease lapses; after the 3rd the worker dead-letters
# it); a "roller" polls in locked mode and rolls back (the worker counts
# those deliveries as attempts).  All bookkeeping is transactional, so the
# counts must add up exactly whatever is killed when:
#
#   every sent n is in exactly one place: wr_acked, wr_q or wr_q_dlq
#   (nothing lost, nothing duplicated, nothing that was never sent)
#
# 1. kill -TERM of the mq worker mid-run (a young worker, started by
#    CREATE EXTENSION seconds before): a new worker within 15 s; the
#    mq.queue_stats totals move exactly with what happened (a crash loses
#    pending counter deltas by design, so only this phase checks them).
# 2. kill -9 of the mq worker mid-run: the postmaster restarts everything;
#    the server and a new worker must be back within 15 s; afterwards the
#    worker must still dead-letter lapsed last attempts.
# 3. three sessions wait in mq.poll(..., wait => '60 seconds'): pg_ctl stop
#    -m fast must finish within 10 s and end them; the server is started
#    again and the counts must still add up.
#
# Prints "worker_restart: N sent, N acked, N dead, N remaining, N
# violations" and exits 1 on any violation.  Runs against the cluster of
# test/run_tests.sh and leaves the server running.
#
# MQ_WR_LOAD_SECS (default 3): load before each kill.
# MQ_WR_KEEP=1 keeps the work directory (client logs).
# MQ_WR_SELFTEST=lose|duplicate breaks the queue on purpose before the last
# count (deletes a message / sends an acked one again behind mq's back):
# the script must then fail.

source "$(dirname "$0")/../lib.sh"   # keeps the MQ_CLUSTER_DIR we were given
mq_attach
set +e # every step is checked below

export PGDATABASE=mq_wrestart
Q=wr_q
LOAD_SECS=${MQ_WR_LOAD_SECS:-3}
WORK=$(mktemp -d /tmp/mq-wrestart.XXXXXX)
PSQL=("$MQ_PGBIN/psql" -X -q -v ON_ERROR_STOP=1)
violations=0
sent=0 acked=0 dead=0 remaining=0
client_pids=()

say() { echo "worker_restart: $*"; }
die() {
	say "ERROR: $*"
	exit 1
}
bad() { # bad MESSAGE: one violation
	say "  VIOLATION: $*"
	violations=$((violations + 1))
}
sql() { "${PSQL[@]}" -At -c "$1" 2>>"$WORK/sql.err"; }
cleanup() {
	touch "$WORK/stop"
	local p
	for p in "${client_pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ "${MQ_WR_KEEP:-}" = 1 ] && { say "logs kept in $WORK"; return; }
	rm -rf "$WORK"
}
trap cleanup EXIT

worker_pid() {
	sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mq worker' AND datname = current_database()"
}

# wait_worker OLD_PID SECS: wait for a worker other than OLD_PID; prints
# its pid and the seconds it took, or nothing.
wait_worker() {
	local old=$1 secs=$2 start=$SECONDS p
	while [ $((SECONDS - start)) -lt "$secs" ]; do
		p=$(worker_pid)
		if [ -n "$p" ] && [ "$p" != "$old" ]; then
			echo "$p $((SECONDS - start))"
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# --- set-up ------------------------------------------------------------------

PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -d postgres \
	-c "DROP DATABASE IF EXISTS mq_wrestart" -c "CREATE DATABASE mq_wrestart" ||
	die "cannot create database mq_wrestart"
"${PSQL[@]}" >/dev/null <<SQL || die "cannot set up the queue"
CREATE EXTENSION mq;
SELECT mq.create_queue('$Q', visibility_timeout => '0.5 seconds', max_attempts => 3,
                       retry_delay => '10 milliseconds', retry_delay_max => '50 milliseconds');
SELECT mq.create_queue('wr_idle');
CREATE SEQUENCE wr_seq;
CREATE TABLE wr_sent (s integer, msg_id bigint);
CREATE TABLE wr_acked (s integer);
SQL

w0=$(wait_worker "" 15) || die "no mq worker in mq_wrestart after CREATE EXTENSION"
w0=${w0%% *}

# --- load ----------------------------------------------------------------------

# run_loop NAME SQL...: run the statements (one psql session per round)
# until $WORK/stop exists; a failed round (server gone) is retried.
run_loop() {
	local name=$1 s
	shift
	local args=()
	for s in "$@"; do args+=(-c "$s"); done
	while [ ! -e "$WORK/stop" ]; do
		"${PSQL[@]}" "${args[@]}" >/dev/null 2>>"$WORK/$name.err" || sleep 0.2
	done
}

start_load() {
	rm -f "$WORK/stop"
	client_pids=()
	run_loop producer \
		"INSERT INTO wr_sent
		 SELECT s, mq.send('$Q', jsonb_build_object('s', s))
		 FROM (SELECT nextval('wr_seq')::integer AS s FROM generate_series(1, 10)) x" \
		"SELECT pg_sleep(0.02)" &
	client_pids+=($!)
	local c
	for c in 1 2 3; do
		run_loop "consumer$c" \
			"CREATE TEMP TABLE got AS
			 SELECT msg_id, (payload->>'s')::integer AS s FROM mq.poll('$Q', 10, '0.5 seconds')" \
			"BEGIN" \
			"INSERT INTO wr_acked
			 SELECT s FROM (SELECT s, mq.ack('$Q', msg_id) AS ok FROM got WHERE s % 4 = 0 ORDER BY msg_id) a
			 WHERE ok" \
			"SELECT mq.nack('$Q', msg_id, '0', 'nacked') FROM got WHERE s % 4 = 1 ORDER BY msg_id" \
			"SELECT mq.reject('$Q', msg_id, 'rejected') FROM got WHERE s % 4 = 2 ORDER BY msg_id" \
			"COMMIT" \
			"SELECT pg_sleep(0.01)" &
		client_pids+=($!)
	done
	run_loop roller "BEGIN" "SELECT count(*) FROM mq.poll('$Q', 3)" "ROLLBACK" \
		"SELECT pg_sleep(0.05)" &
	client_pids+=($!)
}

stop_load() {
	touch "$WORK/stop"
	local p
	for p in "${client_pids[@]}"; do wait "$p"; done
	client_pids=()
}

wait_ready() { # wait_ready SECS
	local start=$SECONDS
	while [ $((SECONDS - start)) -lt "$1" ]; do
		"$MQ_PGBIN/pg_isready" -q && sql "SELECT 1" >/dev/null && return 0
		sleep 0.2
	done
	return 1
}

# account LABEL: the one-snapshot count; sets sent acked dead remaining;
# a violation per lost / duplicated / phantom message
account() {
	local out
	out=$(sql "
WITH q AS (
    SELECT (m.payload->>'s')::integer AS s, m.msg_id, x.queue_name
    FROM mq.queue_message m JOIN mq.queue x USING (queue_id)
    WHERE x.queue_name IN ('$Q', '${Q}_dlq')),
places AS (
    SELECT s FROM wr_acked UNION ALL SELECT s FROM q)
SELECT (SELECT count(*) FROM wr_sent),
       (SELECT count(*) FROM wr_acked),
       (SELECT count(*) FROM q WHERE queue_name = '${Q}_dlq'),
       (SELECT count(*) FROM q WHERE queue_name = '$Q'),
       (SELECT count(*) FROM wr_sent WHERE s NOT IN (SELECT s FROM places)),
       (SELECT count(*) FROM (SELECT s FROM places GROUP BY s HAVING count(*) > 1) d),
       (SELECT count(*) FROM places WHERE s NOT IN (SELECT s FROM wr_sent)),
       (SELECT count(*) FROM q JOIN wr_sent w USING (s) WHERE q.msg_id <> w.msg_id),
       (SELECT count(*) - count(DISTINCT s) FROM wr_sent)")
	[ -n "$out" ] || {
		bad "$1: cannot count"
		return
	}
	local lost dup phantom idmismatch senttwice
	IFS='|' read -r sent acked dead remaining lost dup phantom idmismatch senttwice <<<"$out"
	say "  $1: $sent sent = $acked acked + $dead dead + $remaining remaining"
	[ "$sent" -eq $((acked + dead + remaining)) ] ||
		bad "$1: $sent sent <> $acked acked + $dead dead + $remaining remaining"
	[ "$lost" -eq 0 ] || bad "$1: $lost sent messages are nowhere"
	[ "$dup" -eq 0 ] || bad "$1: $dup messages are in more than one place (or acked twice)"
	[ "$phantom" -eq 0 ] || bad "$1: $phantom messages were never sent"
	[ "$idmismatch" -eq 0 ] || bad "$1: $idmismatch messages have another id than send returned"
	[ "$senttwice" -eq 0 ] || bad "$1: $senttwice sequence numbers sent twice"
}

# offsets: queue_stats totals minus what the tables show (constant unless
# counters are lost or wrong)
offsets() {
	sql "
SELECT (SELECT total_sent FROM mq.queue_stats WHERE queue_name = '$Q') - (SELECT count(*) FROM wr_sent),
       (SELECT total_acked FROM mq.queue_stats WHERE queue_name = '$Q') - (SELECT count(*) FROM wr_acked),
       (SELECT total_dead FROM mq.queue_stats WHERE queue_name = '$Q')
         - (SELECT count(*) FROM mq.queue_message m JOIN mq.queue x USING (queue_id) WHERE x.queue_name = '${Q}_dlq'),
       (SELECT total_sent FROM mq.queue_stats WHERE queue_name = '${Q}_dlq')
         - (SELECT count(*) FROM mq.queue_message m JOIN mq.queue x USING (queue_id) WHERE x.queue_name = '${Q}_dlq')"
}

# --- 1. kill -TERM of the worker -----------------------------------------------

say "phase 1: kill -TERM of the mq worker under load"
off_before=$(offsets)
start_load
sleep "$LOAD_SECS"
w2=$(worker_pid)
if [ -z "$w2" ]; then
	bad "no mq worker running before the kill -TERM"
else
	kill -TERM "$w2"
	t_kill=$SECONDS
	say "  sent SIGTERM to worker $w2"
	if nw=$(wait_worker "$w2" 15); then
		say "  new worker ${nw%% *} after $((SECONDS - t_kill)) s"
	else
		bad "no new mq worker within 15 s of the kill -TERM (worker $w2)"
		# how long it does take (the next phase needs a worker)
		stop_load
		if nw=$(wait_worker "$w2" 65); then
			say "  new worker ${nw%% *} only after $((SECONDS - t_kill)) s"
		else
			say "  no new worker after $((SECONDS - t_kill)) s"
		fi
	fi
	"$MQ_PGBIN/pg_isready" -q || bad "the server is down after a SIGTERM to the worker"
	sleep 1
fi
stop_load
account "after kill -TERM"
# counters: what queue_stats shows moved exactly with the tables (retried:
# a worker pass in progress may be between taking and writing counters)
off_after=""
for _ in 1 2 3; do
	off_after=$(offsets)
	[ "$off_after" = "$off_before" ] && break
	sleep 1.5
done
[ "$off_after" = "$off_before" ] ||
	bad "queue_stats totals drifted from the tables: offsets (sent|acked|dead|dlq sent) $off_before -> $off_after"

# --- 2. kill -9 of the worker --------------------------------------------------

say "phase 2: kill -9 of the mq worker under load"
start_load
sleep "$LOAD_SECS"
w1=$(worker_pid)
if [ -z "$w1" ]; then
	bad "no mq worker running before the kill -9"
else
	busy=$(sql "SELECT count(*) FROM mq.queue_message m JOIN mq.queue x USING (queue_id) WHERE x.queue_name = '$Q'")
	kill -9 "$w1"
	t_kill=$SECONDS
	say "  killed worker $w1 with SIGKILL ($busy messages in $Q)"
	wait_ready 30 || die "the server is not back 30 s after the worker's kill -9"
	say "  server back after $((SECONDS - t_kill)) s"
	if nw=$(wait_worker "$w1" $((15 - (SECONDS - t_kill)))); then
		say "  new worker ${nw%% *} after $((SECONDS - t_kill)) s"
	else
		bad "no new mq worker within 15 s of the kill -9"
	fi
	sleep 2 # load goes on with the new worker
fi
stop_load
account "after kill -9"
[ "${sent:-0}" -ge 200 ] || bad "too little load before the kill -9 (${sent:-0} sent)"
# the (new) worker still dead-letters lapsed last attempts: within 10 s of
# the load's end none is left (leases are 0.5 s, mq.naptime 1 s)
left=-1
for _ in $(seq 1 50); do
	left=$(sql "SELECT count(*) FROM mq.queue_message WHERE exhausted AND vt <= clock_timestamp()")
	[ "$left" = 0 ] && break
	sleep 0.2
done
[ "$left" = 0 ] || bad "$left lapsed last attempts not dead-lettered 10 s after the load"

# --- 3. fast shutdown with waiting long polls ----------------------------------

say "phase 3: pg_ctl stop -m fast with 3 sessions in mq.poll(wait => '60 seconds')"
poll_pids=()
for i in 1 2 3; do
	"${PSQL[@]}" -c "SELECT count(*) FROM mq.poll('wr_idle', 1, NULL, '60 seconds')" \
		>/dev/null 2>"$WORK/poller$i.err" &
	poll_pids+=($!)
done
waiting=0
for _ in $(seq 1 50); do
	waiting=$(sql "SELECT count(*) FROM pg_stat_activity
	               WHERE datname = current_database() AND state = 'active'
	                 AND query LIKE '%mq.poll(''wr_idle''%' AND pid <> pg_backend_pid()")
	[ "$waiting" = 3 ] && break
	sleep 0.1
done
[ "$waiting" = 3 ] || bad "only $waiting of 3 sessions are waiting in mq.poll"
sleep 0.5
t0=$(date +%s.%N)
"${MQ_RUNAS[@]}" "$MQ_PGBIN/pg_ctl" -D "$MQ_PGDATA" -m fast -w -t 20 stop >/dev/null 2>"$WORK/stop.err"
stop_rc=$?
t1=$(date +%s.%N)
stop_secs=$(echo "$t1 - $t0" | bc)
say "  pg_ctl stop -m fast took ${stop_secs} s (exit $stop_rc)"
[ "$stop_rc" = 0 ] || bad "pg_ctl stop -m fast failed: $(cat "$WORK/stop.err")"
[ "$(echo "$stop_secs < 10" | bc)" = 1 ] || bad "pg_ctl stop -m fast took ${stop_secs} s (limit 10 s)"
# the waiting sessions were ended, not left hanging
for p in "${poll_pids[@]}"; do
	for _ in $(seq 1 50); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$p" 2>/dev/null; then
		bad "a waiting psql ($p) is still running 5 s after the shutdown"
		kill "$p" 2>/dev/null
	fi
	wait "$p" 2>/dev/null
done
mq_server_start || die "the server did not start again"
wait_ready 30 || die "the server is not ready after the restart"
if nw=$(wait_worker "" 15); then
	say "  server restarted, worker ${nw%% *}"
else
	bad "no mq worker within 15 s of the restart"
fi
case "${MQ_WR_SELFTEST:-}" in
lose)
	say "  self-test: deleting a message behind mq's back"
	sql "DELETE FROM mq.queue_message WHERE msg_id = (SELECT max(msg_id) FROM wr_sent)" >/dev/null
	;;
duplicate)
	say "  self-test: sending an acked message again"
	sql "SELECT mq.send('$Q', jsonb_build_object('s', (SELECT min(s) FROM wr_acked)))" >/dev/null
	;;
esac
account "after the restart"

# --- verdict -----------------------------------------------------------------

# clients must only have failed through the kills (lost connections) or
# deadlocks between consumers racing for a lapsed message
errs=$(cat "$WORK"/producer.err "$WORK"/consumer*.err "$WORK"/roller.err 2>/dev/null |
	grep 'ERROR:' | grep -v 'deadlock detected' | sort | uniq -c | sort -rn)
if [ -n "$errs" ]; then
	bad "clients failed with errors:"
	echo "$errs" | head -5 | sed 's/^/worker_restart:     /'
fi
reasons=$(sql "SELECT string_agg(r || ' ' || n, ', ' ORDER BY r) FROM (
               SELECT (deaths->-1->>'reason') || coalesce('/' || (deaths->-1->>'error'), '/worker') AS r,
                      count(*) AS n
               FROM mq.queue_message m JOIN mq.queue x USING (queue_id)
               WHERE x.queue_name = '${Q}_dlq' GROUP BY 1) d")
say "  dead letters by reason: $reasons"
case "$reasons" in
*"max_attempts/worker"*) ;;
*) bad "no message was dead-lettered by the worker (lapsed last attempt)" ;;
esac
[ "${acked:-0}" -ge 1 ] || bad "nothing was acked"

"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS mq_wrestart" >/dev/null 2>&1

say "$sent sent, $acked acked, $dead dead, $remaining remaining, $violations violations"
[ "$violations" -eq 0 ]
