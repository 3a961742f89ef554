#!/usr/bin/env bash
# test/crash/topic_crash.sh: kill -9 the server while publishers, the relay
# and a consumer group run on a topic, then count.
#
# Topic tc_t has 4 partitions.  4 publishers write {"p", "s", "k"} with key
# k = "p<p>-<s % 5>" (each key belongs to one publisher, so its sequence
# s grows in commit order), alternately through mq.publish() and a direct
# INSERT INTO mq.outbox, one or two records per transaction, and log "p s"
# only after their COMMIT returned.  The background worker relays.  One
# consumer (group g, no member) fetches (long poll 100 ms), logs each
# record fetched ("F"), commits per partition the highest offset + 1 in one
# transaction, and after that COMMIT returned logs each record ("R") and
# the committed offsets ("C").  Mid-run the postmaster and all its children
# are killed with SIGKILL; the server is restarted, the outbox relayed
# (mq.relay()), group g drained (fetch, commit, until empty), and the whole
# topic read again by a new group.  Checks:
#
#   dense:         per partition the offsets are 0..n-1, each once
#   lost:          every logged publish is in the topic
#   duplicated:    no publish is in the topic twice
#   phantom:       nothing is in the topic that was not published (a
#                  transaction in flight at the crash may or may not be)
#   key_order:     per key, one partition and s increasing with the offset
#   partition:     partition = (murmur2(key) & 0x7fffffff) % 4
#   commit_lost:   after the restart g's committed offset is the last one
#                  logged (or the one of the commit in flight at the crash)
#   below_commit:  no fetch ever returned an offset below g's committed
#                  offset (during the run and in the drain)
#   consumed_twice: no record is logged after a commit and drained again,
#                  or logged twice
#   content:       a record consumed at (partition, offset) is the one the
#                  topic holds there
#   not_consumed:  every record was consumed (logged, drained, or fetched
#                  by the round in flight at the crash)
#
# Prints "topic_crash: N committed, N records, N consumed, N drained, N
# uncertain, N violations" and exits 1 on any violation.  Runs against the
# cluster of test/run_tests.sh and leaves the server running.
#
# MQ_TOPIC_CRASH_RUN_SECS (default 8): load before the crash.
# MQ_TOPIC_CRASH_KEEP=1 keeps the work directory (the logs).
# MQ_TOPIC_CRASH_SELFTEST=dup|lose|rewind breaks things on purpose after
# the restart (publishes a logged record again / deletes the newest record
# of partition 0 behind mq's back / seeks group g back to 'earliest'): the
# script must then fail.

source "$(dirname "$0")/../lib.sh"   # keeps the MQ_CLUSTER_DIR we were given
mq_attach
set +e # every step is checked below

export PGDATABASE=mq_topic_crash
T=tc_t
G=g
NPROD=4
NPART=4
RUN_SECS=${MQ_TOPIC_CRASH_RUN_SECS:-8}
WORK=$(mktemp -d /tmp/mq-topic-crash.XXXXXX)
PSQL=("$MQ_PGBIN/psql" -X -q -v ON_ERROR_STOP=1)

say() { echo "topic_crash: $*"; }
die() {
	say "ERROR: $*"
	exit 1
}
cleanup() {
	[ "${MQ_TOPIC_CRASH_KEEP:-}" = 1 ] && { say "logs kept in $WORK"; return; }
	rm -rf "$WORK"
}
trap cleanup EXIT

# --- set-up ------------------------------------------------------------------

PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -d postgres \
	-c "DROP DATABASE IF EXISTS $PGDATABASE" -c "CREATE DATABASE $PGDATABASE" ||
	die "cannot create database $PGDATABASE"
"${PSQL[@]}" -c "CREATE EXTENSION mq" \
	-c "SELECT mq.create_topic('$T', $NPART)" \
	-c "SELECT mq.create_group('$T', '$G', 'earliest')" >/dev/null ||
	die "cannot create the topic"

# The relay under test is the background worker: CREATE EXTENSION starts it.
worker_up=0
for _ in $(seq 1 50); do
	n=$("${PSQL[@]}" -At -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mq worker' AND datname = current_database()")
	[ "$n" = 1 ] && { worker_up=1; break; }
	sleep 0.2
done
[ "$worker_up" = 1 ] || say "no mq worker in database $PGDATABASE 10 s after CREATE EXTENSION"

# --- load --------------------------------------------------------------------

# publisher P: an endless script (awk) into one psql session; \echo runs
# only after COMMIT returned, and ON_ERROR_STOP ends psql at the crash.
publisher() {
	local p=$1
	awk -v p="$p" -v t="$T" -v sq="'" '
	function rec(s,   k, js) {
		k = "p" p "-" (s % 5)
		js = sprintf("jsonb_build_object(%sp%s, %d, %ss%s, %d, %sk%s, %s%s%s)", sq, sq, p, sq, sq, s, sq, sq, sq, k, sq)
		if (s % 2)
			printf "SELECT mq.publish(%s%s%s, %s, key => %s%s%s);\n", sq, t, sq, js, sq, k, sq
		else
			printf "INSERT INTO mq.outbox (aggregatetype, aggregateid, type, payload) VALUES (%s%s%s, %s%s%s, %stest%s, %s);\n", sq, t, sq, sq, k, sq, sq, sq, js
	}
	BEGIN {
		s = 1
		while (s < 100000000) {
			n = (s % 7 == 0) ? 2 : 1
			print "BEGIN;"
			for (i = 0; i < n; i++) rec(s + i)
			print "COMMIT;"
			for (i = 0; i < n; i++) printf "\\echo %d %d\n", p, s + i
			s += n
		}
	}' | timeout $((RUN_SECS + 20)) "${PSQL[@]}" -o /dev/null \
		>"$WORK/pub_$p.log" 2>"$WORK/pub_$p.err"
}

# consumer: each round fetches up to 200 records (waiting up to 100 ms)
# into a temp table and prints "F part off p s" for each, commits per
# partition in one transaction, then prints "R part off p s key" for each
# record and "C part next_offset" for each partition, and a closing "E".
CONSUMER_ROUND="DELETE FROM f;
INSERT INTO f SELECT partition, \"offset\", (payload->>'p')::int, (payload->>'s')::int, key
    FROM mq.fetch('$T', '$G', 200, wait => '100 milliseconds');
SELECT 'F', part, off, p, s FROM f ORDER BY part, off;
BEGIN;
SELECT mq.commit('$T', '$G', part, max(off) + 1) FROM f GROUP BY part;
COMMIT;
SELECT 'R', part, off, p, s, k FROM f ORDER BY part, off;
SELECT 'C', part, max(off) + 1 FROM f GROUP BY part ORDER BY part;
\\echo E"
export CONSUMER_ROUND
consumer() {
	{
		echo "CREATE TEMP TABLE f (part int, off bigint, p int, s int, k text);"
		awk 'BEGIN { for (i = 1; i <= 100000000; i++) print ENVIRON["CONSUMER_ROUND"] }'
	} | timeout $((RUN_SECS + 20)) "${PSQL[@]}" -At -F ' ' \
		>"$WORK/cons.log" 2>"$WORK/cons.err"
}

pids=()
consumer &
pids+=($!)
for p in $(seq 1 $NPROD); do
	publisher "$p" &
	pids+=($!)
done

say "load running for ${RUN_SECS}s"
sleep "$RUN_SECS"
mid=$(cat "$WORK"/pub_*.log 2>/dev/null | wc -l)

# --- crash -------------------------------------------------------------------

say "kill -9 the server ($mid publishes committed so far)"
mq_crash
for pid in "${pids[@]}"; do wait "$pid"; done

mq_server_start || die "the server did not restart after the crash"   # waits until ready

violations=0
report() { # report CHECK N: a violation count
	say "  $1: $2"
	violations=$((violations + $2))
}

# A client that died of anything but the crash is a failed test.
clients_failed=0
for f in "$WORK"/*.err; do
	if grep -q 'ERROR:' "$f"; then
		say "client $(basename "$f" .err) failed before the crash:"
		grep 'ERROR:' "$f" | head -3
		clients_failed=$((clients_failed + 1))
	fi
done

sql() { "${PSQL[@]}" -At -F ' ' -c "$1"; }

# --- after the restart ---------------------------------------------------------

case "${MQ_TOPIC_CRASH_SELFTEST:-}" in
dup)
	say "self-test: publishing a logged record again"
	read -r p s < <(head -1 "$WORK/pub_1.log")
	sql "SELECT mq.publish('$T', jsonb_build_object('p', $p, 's', $s, 'k', 'p$p-' || ($s % 5)), key => 'p$p-' || ($s % 5))" >/dev/null
	;;
lose)
	say "self-test: deleting the newest record of partition 0 behind mq's back"
	sql "DO \$\$
	DECLARE r regclass;
	BEGIN
	    SELECT c.oid INTO r FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
	     WHERE c.relnamespace = 'mq'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
	       AND a.attname = 'offset' LIMIT 1;
	    EXECUTE format('DELETE FROM %s WHERE partition = 0 AND \"offset\" = (SELECT max(\"offset\") FROM %s WHERE partition = 0)', r, r);
	END \$\$" >/dev/null
	;;
rewind)
	say "self-test: seeking group $G back to 'earliest'"
	sql "SELECT mq.seek('$T', '$G', to_position => 'earliest')" >/dev/null
	;;
esac

# g's committed offsets as they survived the crash
sql "SELECT partition, committed_offset FROM mq.consumer_lag WHERE topic_name = '$T' AND group_name = '$G'" \
	>"$WORK/committed_after.log" || die "cannot read mq.consumer_lag after the restart"

# relay what the crash left in the outbox (the worker may do it too)
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ]; do
	n=$(sql "SELECT mq.relay()") || die "mq.relay() failed after the restart"
	left=$(sql "SELECT count(*) FROM mq.outbox")
	[ "$left" = 0 ] && break
	sleep 0.2
done
[ "$left" = 0 ] || report "outbox_not_relayed ($left rows left)" 1

# drain group g: fetch, commit, until nothing is left
: >"$WORK/drained.log"
drained_ok=0
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ]; do
	out=$("${PSQL[@]}" -At -F ' ' <<SQL
CREATE TEMP TABLE d AS
    SELECT partition AS part, "offset" AS off, (payload->>'p')::int AS p, (payload->>'s')::int AS s, key AS k
    FROM mq.fetch('$T', '$G', 5000);
SELECT mq.commit('$T', '$G', part, max(off) + 1) FROM d GROUP BY part;
SELECT 'D', part, off, p, s, k FROM d ORDER BY part, off;
SQL
	) || die "drain failed"
	out=$(printf '%s\n' "$out" | grep '^D ')
	if [ -n "$out" ]; then
		printf '%s\n' "$out" >>"$WORK/drained.log"
		continue
	fi
	lag=$(sql "SELECT coalesce(sum(lag), -1) FROM mq.consumer_lag WHERE topic_name = '$T' AND group_name = '$G'")
	if [ "$lag" = 0 ]; then
		drained_ok=1
		break
	fi
	sleep 0.2
done

# read the whole topic with a new group: "V part off p s key partition_ok"
sql "SELECT mq.create_group('$T', 'verify', 'earliest')" >/dev/null || die "cannot create group verify"
: >"$WORK/topic.log"
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ]; do
	out=$("${PSQL[@]}" -At -F ' ' <<SQL
CREATE TEMP TABLE v AS
    SELECT partition AS part, "offset" AS off, (payload->>'p')::int AS p, (payload->>'s')::int AS s, key AS k,
           partition = (mq.murmur2(convert_to(key, 'UTF8')) & 2147483647) % $NPART AS part_ok
    FROM mq.fetch('$T', 'verify', 5000);
SELECT mq.commit('$T', 'verify', part, max(off) + 1) FROM v GROUP BY part;
SELECT 'V', part, off, p, s, k, part_ok FROM v ORDER BY part, off;
SQL
	) || die "reading the topic failed"
	out=$(printf '%s\n' "$out" | grep '^V ')
	[ -z "$out" ] && break
	printf '%s\n' "$out" >>"$WORK/topic.log"
done
sql "SELECT partition, end_offset FROM mq.topic_stats WHERE topic_name = '$T'" >"$WORK/ends.log"

# --- verify ------------------------------------------------------------------

awk 'NF == 2' "$WORK"/pub_*.log >"$WORK/committed.log"
awk '($1 == "F" && NF == 5) || ($1 == "R" && NF == 6) || ($1 == "C" && NF == 3) || ($1 == "E" && NF == 1)' \
	"$WORK/cons.log" >"$WORK/consumer.log"

awk -v nprod="$NPROD" -v npart="$NPART" '
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
FILENAME ~ /\/committed_after\.log$/ { after[$1] = $2 + 0; next }
FILENAME ~ /\/ends\.log$/ { ends[$1] = $2 + 0; next }
FILENAME ~ /\/consumer\.log$/ && $1 == "F" {
	# a fetch never returns an offset below the committed one
	if ($3 + 0 < cur[$2] + 0) bad("below_commit", "fetched " $2 ":" $3 " with " cur[$2] " committed")
	pend[$2 " " $3] = $4 " " $5; npend++
	if ($3 + 1 > pendc[$2]) pendc[$2] = $3 + 1
	next
}
FILENAME ~ /\/consumer\.log$/ && $1 == "R" {
	o = $2 " " $3
	if (o in consumed) bad("consumed_twice", "logged twice: " o)
	consumed[o] = $4 " " $5; nconsumed++
	next
}
FILENAME ~ /\/consumer\.log$/ && $1 == "C" { cur[$2] = $3 + 0; next }
FILENAME ~ /\/consumer\.log$/ && $1 == "E" { delete pend; delete pendc; npend = 0; next }
FILENAME ~ /\/drained\.log$/ {
	o = $2 " " $3
	if (o in drained) bad("consumed_twice", "drained twice: " o)
	if (o in consumed) bad("consumed_twice", "consumed before the crash and drained again: " o)
	if ($3 + 0 < after[$2] + 0) bad("below_commit", "drained " o " below committed " after[$2])
	drained[o] = $4 " " $5; ndrained++
	next
}
FILENAME ~ /\/topic\.log$/ {
	o = $2 " " $3; r = $4 " " $5
	if (o in topic) bad("dense", "offset " o " twice")
	topic[o] = r; nrec[$2]++; nrecords++
	if ($3 + 0 > maxo[$2]) maxo[$2] = $3 + 0
	if (r in where) bad("duplicated", "record " r " at " where[r] " and " o)
	where[r] = o
	if ($7 != "t") bad("partition", "key " $6 " in partition " $2)
	if (($6 in keypart) && keypart[$6] != $2) bad("key_order", "key " $6 " in partitions " keypart[$6] " and " $2)
	keypart[$6] = $2
	# lines come in offset order per partition
	if (($6 in lastseq) && $5 + 0 <= lastseq[$6] + 0) bad("key_order", "key " $6 ": s " $5 " after s " lastseq[$6])
	lastseq[$6] = $5 + 0
	next
}
END {
	# dense: offsets 0..n-1 per partition, up to the end offset
	for (part = 0; part < npart; part++) {
		if (nrec[part] + 0 > 0 && maxo[part] + 1 != nrec[part]) bad("dense", "partition " part ": " nrec[part] " records, max offset " maxo[part])
		if (nrec[part] + 0 != ends[part] + 0) bad("dense", "partition " part ": " nrec[part] " records read, end_offset " ends[part])
	}
	# lost / phantom
	for (k in committed) if (!(k in where)) bad("lost", k)
	for (r in where) {
		split(r, ps, " "); p = ps[1] + 0; s = ps[2] + 0
		if (r in committed) continue
		# a transaction in flight at the crash holds at most 2 records
		if (p >= 1 && p <= nprod && s > maxc[p] && s <= maxc[p] + 2) uncertain[r] = 1
		else bad("phantom", r " (last committed of publisher " p ": " maxc[p] + 0 ")")
	}
	for (p = 1; p <= nprod; p++) {
		if (maxc[p] + 0 == 0) bad("producer_log", "publisher " p " committed nothing")
		if (ccount[p] + 0 != maxc[p] + 0) bad("producer_log", "publisher " p " logged " ccount[p] + 0 " commits, up to " maxc[p] + 0)
	}
	# commit_lost: the committed offset is the last logged, or the one in flight
	for (part = 0; part < npart; part++) {
		a = after[part] + 0; c = cur[part] + 0
		if (a != c && !((part in pendc) && a == pendc[part] + 0))
			bad("commit_lost", "partition " part ": committed " a " after the restart, last logged " c (part in pendc ? ", in flight " pendc[part] : ""))
	}
	# content and coverage
	for (o in consumed) if (topic[o] != consumed[o]) bad("content", o " consumed as " consumed[o] ", topic holds " topic[o])
	for (o in drained) if (topic[o] != drained[o]) bad("content", o " drained as " drained[o] ", topic holds " topic[o])
	for (o in topic) {
		if ((o in consumed) || (o in drained)) continue
		if (o in pend) { uncertain["c " o] = 1; continue }
		bad("not_consumed", o " (" topic[o] ")")
	}
	for (k in uncertain) nuncertain++
	print "committed", ncommitted + 0
	print "records", nrecords + 0
	print "consumed", nconsumed + 0
	print "drained", ndrained + 0
	print "uncertain", nuncertain + 0
	split("producer_log dense lost duplicated phantom key_order partition commit_lost below_commit consumed_twice content not_consumed", checks, " ")
	for (i = 1; i in checks; i++) print "check", checks[i], nbad[checks[i]] + 0
}' "$WORK/committed.log" "$WORK/committed_after.log" "$WORK/ends.log" "$WORK/consumer.log" \
	"$WORK/drained.log" "$WORK/topic.log" >"$WORK/verify.out"

grep '^detail ' "$WORK/verify.out" | sed 's/^detail /topic_crash:   /'
get() { awk -v k="$1" '$1 == k { print $2 }' "$WORK/verify.out"; }
committed=$(get committed)
records=$(get records)
consumed=$(get consumed)
drained=$(get drained)
uncertain=$(get uncertain)
while read -r _ name n; do
	report "$name" "$n"
done < <(grep '^check ' "$WORK/verify.out")
[ "$drained_ok" = 1 ] || report "group_not_drained" 1
[ "$worker_up" = 1 ] || report "worker_not_running" 1
report "clients_failed" "$clients_failed"
# the test means something only if the crash hit a running load
[ "${committed:-0}" -ge 100 ] || report "too_little_load (committed < 100)" 1
[ "${consumed:-0}" -ge 1 ] || report "nothing_consumed" 1

sql "SELECT mq.drop_topic('$T')" >/dev/null

say "$committed committed, $records records, $consumed consumed, $drained drained, $uncertain uncertain, $violations violations"
[ "$violations" -eq 0 ]
