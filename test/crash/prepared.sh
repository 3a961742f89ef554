#!/usr/bin/env bash
# test/crash/prepared.sh: two-phase commit, wake-ups and a crash with
# prepared transactions pending.
#
# The worker's naptime is raised to 60 s for the run, so nothing here is
# done by a periodic pass: whatever happens within seconds was caused by
# COMMIT PREPARED / ROLLBACK PREPARED itself.
#
# 1. A long poll (wait 20 s) on an empty queue; another session sends in a
#    transaction and prepares it; a third commits it 1 s later.  The poll
#    must return the message within 3 s of the COMMIT PREPARED.
# 2. A locked-mode consumer polls the message and prepares; a long poll
#    waits; ROLLBACK PREPARED from another session must hand the message to
#    the waiter within 3 s, showing attempt 2 (the rolled-back delivery
#    counts).
# 3. A publish to a topic, prepared, then COMMIT PREPARED: the relay is
#    poked and the outbox is empty within 3 s.
# 4. 6 prepared transactions of 5 sends each and 4 prepared locked-mode
#    polls (max_prepared_transactions is 10); kill -9 of the server; restart; COMMIT PREPARED the sends (from
#    two sessions), ROLLBACK PREPARED the polls: every message is there once,
#    total_sent grew by exactly 30, each rolled-back delivery counts (next
#    attempt 2), a waiter is woken by a COMMIT PREPARED after the restart,
#    and mq.prepared_effect is empty.
#
# Prints "prepared: N violations"; exits 1 on any.  Runs against the cluster
# of test/run_tests.sh (max_prepared_transactions > 0) and leaves it
# running with its settings as they were.

source "$(dirname "$0")/../lib.sh"
mq_attach
set +e

export PGDATABASE=mq_prepared
PSQL=("$MQ_PGBIN/psql" -X -q -v ON_ERROR_STOP=1)
WORK=$(mktemp -d /tmp/mq-prepared.XXXXXX)
chmod 755 "$WORK"
violations=0

say() { echo "prepared: $*"; }
die() {
	say "ERROR: $*"
	exit 1
}
bad() {
	say "  VIOLATION: $*"
	violations=$((violations + 1))
}
q() { "${PSQL[@]}" -At -c "$1"; }
now_ms() { date +%s%3N; }
cleanup() {
	"${PSQL[@]}" -d postgres -c "ALTER SYSTEM RESET mq.naptime" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
	for g in $("${PSQL[@]}" -d postgres -At -c "SELECT gid FROM pg_prepared_xacts WHERE database = 'mq_prepared'" 2>/dev/null); do
		"${PSQL[@]}" -c "ROLLBACK PREPARED '$g'" >/dev/null 2>&1
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -d postgres \
	-c "DROP DATABASE IF EXISTS mq_prepared" -c "CREATE DATABASE mq_prepared" ||
	die "cannot create database mq_prepared"
"${PSQL[@]}" -c "CREATE EXTENSION mq" \
	-c "SELECT mq.create_queue('pq', max_attempts => 5)" \
	-c "SELECT mq.create_queue('pc', max_attempts => 5)" \
	-c "SELECT mq.create_topic('pt', partitions => 1)" >/dev/null ||
	die "cannot create the objects"
"${PSQL[@]}" -d postgres -c "ALTER SYSTEM SET mq.naptime = '60s'" -c "SELECT pg_reload_conf()" >/dev/null ||
	die "cannot set mq.naptime"
sleep 1

# poll_waiter FILE: a 20 s long poll on pq in the background; FILE gets
# "attempt elapsed_ms" (or nothing if it timed out empty)
poll_waiter() {
	(
		t0=$(now_ms)
		r=$(q "SELECT attempt FROM mq.poll('pq', 1, '1 hour', wait => '20 seconds')")
		echo "$r $(($(now_ms) - t0)) $(now_ms)" >"$1"
	) &
}

# waiter_check FILE T_CMD WHAT [ATTEMPT]: the waiter of FILE got a message
# within 3 s of WHAT (run at T_CMD ms), showing ATTEMPT if given
waiter_check() {
	local att el tend lat
	read -r att el tend <"$1"
	if [ -z "$tend" ]; then
		bad "the waiter got nothing in 20 s ($3)"
		return
	fi
	lat=$((tend - $2))
	say "   waiter got attempt $att, $lat ms after $3"
	[ "$lat" -lt 3000 ] || bad "the waiter woke $lat ms after $3 (limit 3000)"
	[ -z "${4:-}" ] || [ "$att" = "$4" ] || bad "the redelivery shows attempt $att, wanted $4"
}

# --- 1. COMMIT PREPARED wakes a long poll ------------------------------------
say "1. a long poll woken by COMMIT PREPARED"
poll_waiter "$WORK/w1"
sleep 1
q "BEGIN; SELECT mq.send('pq', '{\"n\": 1}'); PREPARE TRANSACTION 'pp_wake'" >/dev/null ||
	bad "could not prepare a send"
sleep 1
tc=$(now_ms)
q "COMMIT PREPARED 'pp_wake'" >/dev/null || bad "COMMIT PREPARED failed"
wait
waiter_check "$WORK/w1" "$tc" "COMMIT PREPARED"
q "SELECT mq.ack('pq', msg_id) FROM mq.queue_message m JOIN mq.queue q USING (queue_id) WHERE q.queue_name = 'pq'" >/dev/null

# --- 2. ROLLBACK PREPARED of a locked-mode poll wakes a long poll -----------
say "2. a long poll woken by ROLLBACK PREPARED of a locked-mode consumer"
q "SELECT mq.send('pq', '{\"n\": 2}')" >/dev/null
got=$(q "BEGIN; SELECT attempt FROM mq.poll('pq'); PREPARE TRANSACTION 'pp_locked'")
[ "$got" = 1 ] || bad "the locked-mode poll got '$got', wanted attempt 1"
poll_waiter "$WORK/w2"
sleep 1
tc=$(now_ms)
q "ROLLBACK PREPARED 'pp_locked'" >/dev/null || bad "ROLLBACK PREPARED failed"
wait
waiter_check "$WORK/w2" "$tc" "ROLLBACK PREPARED" 2
q "SELECT mq.ack('pq', msg_id) FROM mq.queue_message m JOIN mq.queue q USING (queue_id) WHERE q.queue_name = 'pq'" >/dev/null

# --- 3. COMMIT PREPARED pokes the relay --------------------------------------
say "3. COMMIT PREPARED of a publish pokes the relay"
q "BEGIN; SELECT mq.publish('pt', '{\"n\": 3}', key => 'k'); PREPARE TRANSACTION 'pp_publish'" >/dev/null ||
	bad "could not prepare a publish"
sleep 1
tc=$(now_ms)
q "COMMIT PREPARED 'pp_publish'" >/dev/null || bad "COMMIT PREPARED failed"
left=1
while [ $(($(now_ms) - tc)) -lt 10000 ]; do
	left=$(q "SELECT count(*) FROM mq.outbox")
	[ "$left" = 0 ] && break
	sleep 0.05
done
lat=$(($(now_ms) - tc))
say "   outbox empty after $lat ms"
[ "$left" = 0 ] && [ "$lat" -lt 3000 ] || bad "the outbox still held $left row(s) $lat ms after COMMIT PREPARED (limit 3000)"

# --- 4. a crash with prepared transactions pending ---------------------------
say "4. kill -9 with 10 prepared transactions pending"
for i in $(seq 1 4); do
	q "SELECT mq.send('pc', jsonb_build_object('c', $i))" >/dev/null
done
for i in $(seq 1 6); do
	q "BEGIN; SELECT mq.send_batch('pq', ARRAY(SELECT jsonb_build_object('t', $i, 'k', k) FROM generate_series(1, 5) k)); PREPARE TRANSACTION 'pp_send_$i'" >/dev/null ||
		bad "could not prepare send $i"
done
for i in $(seq 1 4); do
	got=$(q "BEGIN; SELECT attempt FROM mq.poll('pc'); PREPARE TRANSACTION 'pp_poll_$i'")
	[ "$got" = 1 ] || bad "prepared poll $i got '$got', wanted attempt 1"
done
q "SELECT mq.run_maintenance()" >/dev/null
before=$(q "SELECT total_sent FROM mq.queue_stats WHERE queue_name = 'pq'")
mq_crash
mq_server_start || die "the server did not restart"
# wait for the worker's first pass (it realigns the counters after a start)
for _ in $(seq 1 150); do
	p=$(q "SELECT passes FROM mq.worker_status WHERE database = current_database()" 2>/dev/null)
	[ -n "$p" ] && [ "$p" -ge 1 ] 2>/dev/null && break
	sleep 0.1
done
n=$(q "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()")
[ "$n" = 10 ] || bad "$n prepared transactions survived the crash, wanted 10"
before=$(q "SELECT total_sent FROM mq.queue_stats WHERE queue_name = 'pq'")
poll_waiter "$WORK/w4"
sleep 1
tc=$(now_ms)
for i in $(seq 1 3); do q "COMMIT PREPARED 'pp_send_$i'" >/dev/null || bad "COMMIT PREPARED pp_send_$i failed"; done
for i in $(seq 4 6); do q "COMMIT PREPARED 'pp_send_$i'" >/dev/null || bad "COMMIT PREPARED pp_send_$i failed"; done
for i in $(seq 1 4); do q "ROLLBACK PREPARED 'pp_poll_$i'" >/dev/null || bad "ROLLBACK PREPARED pp_poll_$i failed"; done
wait
waiter_check "$WORK/w4" "$tc" "the first COMMIT PREPARED after the restart"
after=$(q "SELECT total_sent FROM mq.queue_stats WHERE queue_name = 'pq'")
distinct=$(q "SELECT count(DISTINCT (payload->>'t', payload->>'k')) FROM mq.queue_message m JOIN mq.queue q USING (queue_id) WHERE q.queue_name = 'pq' AND payload ? 't'")
rows=$(q "SELECT count(*) FROM mq.queue_message m JOIN mq.queue q USING (queue_id) WHERE q.queue_name = 'pq' AND payload ? 't'")
say "   pq: $rows rows, $distinct distinct, total_sent $before -> $after"
[ "$rows" = 30 ] && [ "$distinct" = 30 ] || bad "pq holds $rows rows ($distinct distinct), wanted 30"
[ $((after - before)) = 30 ] || bad "total_sent grew by $((after - before)), wanted 30"
atts=$(q "SELECT string_agg(attempt::text, ',' ORDER BY attempt) FROM mq.poll('pc', 10, '1 hour')")
say "   pc redelivered with attempts $atts"
[ "$atts" = "2,2,2,2" ] || bad "pc's redeliveries show attempts '$atts', wanted 2,2,2,2"
left=$(q "SELECT count(*) FROM mq.prepared_effect")
[ "$left" = 0 ] || bad "$left row(s) left in mq.prepared_effect"

"${PSQL[@]}" -d postgres -c "ALTER SYSTEM RESET mq.naptime" -c "SELECT pg_reload_conf()" >/dev/null
PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -d postgres -c "DROP DATABASE mq_prepared" >/dev/null ||
	bad "DROP DATABASE mq_prepared failed"
say "$violations violations"
[ "$violations" = 0 ]
