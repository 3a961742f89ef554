#!/usr/bin/env bash
# test/crash/queue_crash.sh: kill -9 the server under load, then count.
#
# 4 producers send {"p": producer, "s": sequence}, one send per
# transaction, and log "p s" only after their COMMIT returned.  4 consumers
# poll in leased mode (the poll commits on its own), log each delivery, ack
# in a second transaction and log each acked message only after that COMMIT
# returned.  Mid-run the postmaster and all its children are killed with
# SIGKILL; the server is restarted, the queue drained (poll, then ack), and:
#
#   (a) every committed send is acked or still in the queue (not lost);
#   (b) no acked message is delivered again: none is in the queue after the
#       restart, and no poll that started after an ack committed got it;
#   (c) per producer, the sequences found (acked, in the queue, or in a
#       consumer's ack that was in flight at the crash) have no hole below
#       the highest one;
#   (d) no message is acked twice (nor drained twice).
#
# A send whose COMMIT was in flight at the crash may or may not be there
# (at most one per producer, sequence = its last logged + 1), and an ack
# in flight may or may not have removed its messages: both are counted as
# "uncertain", not as violations.
#
# Prints "crash: N committed, N acked, N remaining, N uncertain, N
# violations" and exits 1 on any violation.  Runs against the cluster of
# test/run_tests.sh (PGHOST, PGPORT, PGUSER, MQ_CLUSTER_DIR) and leaves the
# server running.
#
# MQ_CRASH_RUN_SECS (default 10): how long the load runs before the crash.
# MQ_CRASH_KEEP=1 keeps the work directory (the logs) for a post-mortem.
# MQ_CRASH_SELFTEST=lose|resurrect breaks the queue on purpose after the
# restart (deletes the oldest message / sends an acked one again) to show
# that the checks catch it: the script must then fail.

source "$(dirname "$0")/../lib.sh"   # keeps the MQ_CLUSTER_DIR we were given
mq_attach
set +e # every step is checked below

export PGDATABASE=mq_crash
Q=crash_q
NPROD=4
NCONS=4
LEASE='3 seconds' # consumers' lease; the drain waits for leftovers to lapse
RUN_SECS=${MQ_CRASH_RUN_SECS:-10}
WORK=$(mktemp -d /tmp/mq-crash.XXXXXX)
PSQL=("$MQ_PGBIN/psql" -X -q -v ON_ERROR_STOP=1)

say() { echo "crash: $*"; }
die() {
	say "ERROR: $*"
	exit 1
}
cleanup() {
	[ "${MQ_CRASH_KEEP:-}" = 1 ] && { say "logs kept in $WORK"; return; }
	rm -rf "$WORK"
}
trap cleanup EXIT

# --- set-up ----------------------------------------------------------------

PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS mq_crash" -c "CREATE DATABASE mq_crash" ||
	die "cannot create database mq_crash"
# max_attempts is high so that no message is ever given up on in this run.
"${PSQL[@]}" -c "CREATE EXTENSION mq" \
	-c "SELECT mq.create_queue('$Q', '$LEASE', 1000)" >/dev/null ||
	die "cannot create the queue"

# --- load --------------------------------------------------------------------

# producer P: an endless script (awk) into one psql session; \echo runs only
# after COMMIT returned, and ON_ERROR_STOP ends psql at the crash.
producer() {
	local p=$1
	awk -v p="$p" -v q="$Q" -v sq="'" 'BEGIN {
		for (s = 1; s <= 100000000; s++)
			printf "BEGIN;\nSELECT mq.send(%s%s%s, jsonb_build_object(%sp%s, %d, %ss%s, %d));\nCOMMIT;\n\\echo %d %d\n",
				sq, q, sq, sq, sq, p, sq, sq, s, p, s
	}' | timeout $((RUN_SECS + 20)) "${PSQL[@]}" -o /dev/null \
		>"$WORK/prod_$p.log" 2>"$WORK/prod_$p.err"
}

# consumer C: each round polls up to 5 messages (leased mode: the INSERT
# commits the lease) and prints "D p s attempt t_poll" for each (t_poll:
# start of the polling statement, in microseconds since the epoch; the poll
# sees every commit that came before it), acks them in msg_id order in a
# second transaction, and after that COMMIT prints "A p s t_ack" for each
# ack that returned true (t_ack: read after the commit) and a closing "C".
CONSUMER_ROUND="DELETE FROM got;
INSERT INTO got (msg_id, p, s, attempt, t)
    SELECT msg_id, (payload->>'p')::int, (payload->>'s')::int, attempt,
           (extract(epoch FROM statement_timestamp()) * 1e6)::bigint
    FROM mq.poll('$Q', 5, '$LEASE');
SELECT 'D', p, s, attempt, t FROM got;
BEGIN;
WITH a AS (SELECT msg_id, mq.ack('$Q', msg_id) AS ok FROM got ORDER BY msg_id)
UPDATE got SET ok = a.ok FROM a WHERE got.msg_id = a.msg_id;
COMMIT;
SELECT 'A', p, s, (extract(epoch FROM clock_timestamp()) * 1e6)::bigint FROM got WHERE ok;
\\echo C
SELECT pg_sleep(0.005) WHERE NOT EXISTS (SELECT 1 FROM got);"
export CONSUMER_ROUND
consumer() {
	local c=$1
	{
		echo "CREATE TEMP TABLE got (msg_id bigint, p int, s int, attempt int, t bigint, ok boolean);"
		awk 'BEGIN { for (i = 1; i <= 100000000; i++) print ENVIRON["CONSUMER_ROUND"] }'
	} | timeout $((RUN_SECS + 20)) "${PSQL[@]}" -At -F ' ' \
		>"$WORK/cons_$c.log" 2>"$WORK/cons_$c.err"
}

pids=()
for c in $(seq 1 $NCONS); do
	consumer "$c" &
	pids+=($!)
done
for p in $(seq 1 $NPROD); do
	producer "$p" &
	pids+=($!)
done

say "load running for ${RUN_SECS}s"
sleep "$RUN_SECS"
mid=$(cat "$WORK"/prod_*.log 2>/dev/null | wc -l)

# --- crash -------------------------------------------------------------------

say "kill -9 the server ($mid sends committed so far)"
mq_crash
# the workers end on the lost connection; bounded by their timeout anyway
for pid in "${pids[@]}"; do wait "$pid"; done

mq_server_start || die "the server did not restart after the crash"   # waits until ready

violations=0
report() { # report CHECK N: a violation count
	say "  $1: $2"
	violations=$((violations + $2))
}

# A worker that died of anything but the crash is a failed test (an error
# from mq, a deadlock, ...).
workers_failed=0
for f in "$WORK"/*.err; do
	if grep -q 'ERROR:' "$f"; then
		say "worker $(basename "$f" .err) failed before the crash:"
		grep 'ERROR:' "$f" | head -3
		workers_failed=$((workers_failed + 1))
	fi
done

# --- drain after the restart ------------------------------------------------

case "${MQ_CRASH_SELFTEST:-}" in
lose)
	say "self-test: deleting the oldest message behind mq's back"
	"${PSQL[@]}" -c "DELETE FROM mq.queue_message WHERE msg_id = (SELECT min(msg_id) FROM mq.queue_message)"
	;;
resurrect)
	say "self-test: sending an acked message again"
	read -r _ p s _ < <(grep -h '^A ' "$WORK"/cons_*.log | head -1)
	"${PSQL[@]}" -c "SELECT mq.send('$Q', jsonb_build_object('p', $p, 's', $s))" >/dev/null
	;;
esac

# What survived.  Leases taken before the crash still hold; they lapse
# within $LEASE.
remaining_before=$("${PSQL[@]}" -At -c "SELECT total FROM mq.queue_stats WHERE queue_name = '$Q'")
[ -n "$remaining_before" ] || die "cannot read mq.queue_stats after the restart"

: >"$WORK/drained.log"
deadline=$((SECONDS + 20))
drained_ok=0
while [ $SECONDS -lt $deadline ]; do
	out=$("${PSQL[@]}" -At -F ' ' <<SQL
CREATE TEMP TABLE d AS
    SELECT msg_id, (payload->>'p')::int AS p, (payload->>'s')::int AS s, attempt
    FROM mq.poll('$Q', 1000, '60 seconds');
WITH a AS (SELECT msg_id, mq.ack('$Q', msg_id) AS ok FROM d ORDER BY msg_id)
SELECT d.p, d.s, d.attempt, a.ok FROM d JOIN a USING (msg_id);
SQL
	) || die "drain failed"
	if [ -n "$out" ]; then
		printf '%s\n' "$out" >>"$WORK/drained.log"
		continue
	fi
	left=$("${PSQL[@]}" -At -c "SELECT total FROM mq.queue_stats WHERE queue_name = '$Q'")
	if [ "$left" = 0 ]; then
		drained_ok=1
		break
	fi
	sleep 0.5
done

# --- verify --------------------------------------------------------------------

# Consumer logs: keep only well-formed lines (the empty ones are pg_sleep).
for c in $(seq 1 $NCONS); do
	awk -v c="$c" '($1 == "D" && NF == 5) || ($1 == "A" && NF == 4) || ($1 == "C" && NF == 1) { print c, $0 }' \
		"$WORK/cons_$c.log"
done >"$WORK/consumers.log"
for p in $(seq 1 $NPROD); do
	awk 'NF == 2' "$WORK/prod_$p.log"
done >"$WORK/committed.log"

# One awk pass over: committed ("p s"), consumers ("c D p s attempt t",
# "c A p s t", "c C"), drained ("p s attempt ok").  Prints the counts as
# "name value" lines and the first few offenders of each check.
awk -v nprod="$NPROD" -v remaining_before="$remaining_before" '
function bad(check, msg) {
	nbad[check]++
	if (nbad[check] <= 5) print "detail " check ": " msg
}
FILENAME ~ /\/committed\.log$/ {
	k = $1 " " $2
	if (k in committed) bad("producer_log", "logged twice: " k)
	committed[k] = 1; ncommitted++; ccount[$1]++
	if ($2 + 0 > maxc[$1]) maxc[$1] = $2 + 0
	next
}
FILENAME ~ /\/consumers\.log$/ && $2 == "D" {
	k = $3 " " $4
	deliv[k] = deliv[k] " " $6; ndeliv++
	if ($5 > 1) nredeliv++
	# in flight until this consumer prints its next "C"
	pending[$1] = pending[$1] " " $3 ":" $4
	next
}
FILENAME ~ /\/consumers\.log$/ && $2 == "A" {
	k = $3 " " $4
	if (k in acked) bad("d_acked_twice", k)
	acked[k] = $5; nacked++
	next
}
FILENAME ~ /\/consumers\.log$/ && $2 == "C" { pending[$1] = ""; next }
FILENAME ~ /\/drained\.log$/ {
	k = $1 " " $2
	if (k in drained) bad("d_drained_twice", k)
	drained[k] = 1; ndrained++
	if ($4 != "t") bad("drain_ack", "ack returned " $4 " for " k)
	next
}
END {
	# Messages of an ack that was in flight at the crash: gone or not.
	for (c in pending) {
		n = split(pending[c], ks, " ")
		for (i = 1; i <= n; i++) {
			split(ks[i], ps, ":"); k = ps[1] " " ps[2]
			if (!(k in acked) && !(k in drained)) { inflight[k] = 1; uncertain[k] = 1 }
		}
	}
	# (a) every committed send is acked, still queued, or in an in-flight ack
	for (k in committed)
		if (!(k in acked) && !(k in drained) && !(k in inflight)) bad("a_lost", k)
	# (b) an acked message is never delivered again
	for (k in drained)
		if (k in acked) bad("b_redelivered_after_restart", k)
	for (k in deliv) {
		if (!(k in acked)) continue
		n = split(deliv[k], ts, " ")
		for (i = 1; i <= n; i++)
			if (ts[i] + 0 > acked[k] + 0)
				bad("b_delivered_after_ack", k " polled at " ts[i] " > acked at " acked[k])
	}
	# Found but never logged as committed: the send in flight at the crash
	# (last logged + 1), else a phantom.
	for (k in acked) found[k] = 1
	for (k in drained) found[k] = 1
	for (k in inflight) found[k] = 1
	for (k in found) {
		split(k, ps, " "); p = ps[1] + 0; s = ps[2] + 0
		if (s > maxf[p]) maxf[p] = s
		if (k in committed) continue
		if (p >= 1 && p <= nprod && s == maxc[p] + 1) uncertain[k] = 1
		else bad("phantom", k " (last committed of producer " p ": " maxc[p] + 0 ")")
	}
	# (c) no hole in the sequences of a producer below the highest found
	for (p = 1; p <= nprod; p++) {
		top = maxf[p] > maxc[p] ? maxf[p] : maxc[p]
		for (s = 1; s <= top; s++)
			if (!((p " " s) in found)) bad("c_gap", "producer " p " sequence " s " of " top)
		if (maxc[p] + 0 == 0) bad("producer_log", "producer " p " committed nothing")
		if (ccount[p] + 0 != maxc[p] + 0) bad("producer_log", "producer " p " logged " ccount[p] + 0 " commits, up to " maxc[p] + 0)
	}
	# the queue held what was drained
	if (ndrained + 0 != remaining_before + 0)
		bad("drain_count", remaining_before " in the queue after the restart, " ndrained + 0 " drained")

	for (k in uncertain) nuncertain++
	print "committed", ncommitted + 0
	print "delivered", ndeliv + 0
	print "redelivered", nredeliv + 0
	print "acked", nacked + 0
	print "remaining", ndrained + 0
	print "uncertain", nuncertain + 0
	split("producer_log a_lost b_redelivered_after_restart b_delivered_after_ack c_gap d_acked_twice d_drained_twice drain_ack drain_count phantom", checks, " ")
	for (i = 1; i in checks; i++) print "check", checks[i], nbad[checks[i]] + 0
}' "$WORK/committed.log" "$WORK/consumers.log" "$WORK/drained.log" >"$WORK/verify.out"

grep '^detail ' "$WORK/verify.out" | sed 's/^detail /crash:   /'
get() { awk -v k="$1" '$1 == k { print $2 }' "$WORK/verify.out"; }
committed=$(get committed)
acked=$(get acked)
remaining=$(get remaining)
uncertain=$(get uncertain)
say "$(get delivered) deliveries ($(get redelivered) with attempt > 1), $remaining_before messages in the queue after the restart"
while read -r _ name n; do
	report "$name" "$n"
done < <(grep '^check ' "$WORK/verify.out")
[ "$drained_ok" = 1 ] || report "queue_not_drained" 1
report "workers_failed" "$workers_failed"
# the test means something only if the crash hit a running load
[ "${committed:-0}" -ge 100 ] || report "too_little_load (committed < 100)" 1
[ "${acked:-0}" -ge 1 ] || report "nothing_acked" 1

"${PSQL[@]}" -c "SELECT mq.drop_queue('$Q')" >/dev/null

say "$committed committed, $acked acked, $remaining remaining, $uncertain uncertain, $violations violations"
[ "$violations" -eq 0 ]
