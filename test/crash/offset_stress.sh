#!/usr/bin/env bash
# test/crash/offset_stress.sh: offsets under out-of-order commits.
#
# Topic os_t has 4 partitions.  4 publishers each run transactions that
# publish one or two records {"p", "s"} (key "p<p>-<s % 3>", alternately
# mq.publish() and a direct INSERT INTO mq.outbox), sleep a random 0-30 ms
# and commit, so commits come out of the order of the publishes; each logs
# "p s" after its COMMIT returned.  The background worker relays (woken at
# commit) and a second session runs mq.relay() in a loop against it.  One
# consumer (group g) fetches (long poll 50 ms) and commits continuously,
# logging "F part off p s" per record fetched and "C part next" per commit.
# After the load the publishers stop, the outbox is relayed, the consumer
# catches up and stops, and a new group reads the whole topic.  Checks:
#
#   below_commit:  the consumer never fetched an offset below the offset
#                  it had committed on that partition (a record that became
#                  visible "behind" the consumer)
#   fetched_twice: no offset was fetched twice (every fetch was committed)
#   not_fetched:   every record of the topic reached the consumer
#   lost / duplicated / phantom: the topic holds every logged publish
#                  exactly once, and nothing else
#   dense:         offsets 0..n-1 per partition, each once
#   key_order:     per key, s increases with the offset
#
# Prints "offset_stress: N committed, N records, N fetched, N violations"
# and exits 1 on any violation.  Runs against the cluster of
# test/run_tests.sh and leaves the server running.
#
# MQ_STRESS_RUN_SECS (default 12): how long the publishers run.
# MQ_STRESS_KEEP=1 keeps the work directory (the logs).
# MQ_STRESS_SELFTEST=rewind|lose breaks things on purpose (seeks group g
# back to 'earliest' mid-run / deletes the newest record of partition 0
# behind mq's back before the topic is read): the script must then fail.

source "$(dirname "$0")/../lib.sh"   # keeps the MQ_CLUSTER_DIR we were given
mq_attach
set +e # every step is checked below

export PGDATABASE=mq_offset_stress
T=os_t
G=g
NPROD=4
NPART=4
RUN_SECS=${MQ_STRESS_RUN_SECS:-12}
WORK=$(mktemp -d /tmp/mq-offset-stress.XXXXXX)
PSQL=("$MQ_PGBIN/psql" -X -q -v ON_ERROR_STOP=1)
pids=()

say() { echo "offset_stress: $*"; }
die() {
	say "ERROR: $*"
	exit 1
}
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ "${MQ_STRESS_KEEP:-}" = 1 ] && { say "logs kept in $WORK"; return; }
	rm -rf "$WORK"
}
trap cleanup EXIT
sql() { "${PSQL[@]}" -At -F ' ' -c "$1"; }

# --- set-up ------------------------------------------------------------------

PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -d postgres \
	-c "DROP DATABASE IF EXISTS $PGDATABASE" -c "CREATE DATABASE $PGDATABASE" ||
	die "cannot create database $PGDATABASE"
"${PSQL[@]}" -c "CREATE EXTENSION mq" \
	-c "SELECT mq.create_topic('$T', $NPART)" \
	-c "SELECT mq.create_group('$T', '$G', 'earliest')" \
	-c "CREATE TABLE os_stop (who text)" >/dev/null ||
	die "cannot create the topic"

# Every client checks os_stop before each round and quits (psql \q, so
# that its log is complete) once its row is there.
stop_check() { # stop_check WHO: psql lines
	printf "SELECT EXISTS (SELECT 1 FROM os_stop WHERE who = '%s') AS stop \\\\gset\n\\\\if :stop\n\\\\q\n\\\\endif\n" "$1"
}

# --- load --------------------------------------------------------------------

publisher() {
	local p=$1
	STOP="$(stop_check pub)" awk -v p="$p" -v t="$T" -v sq="'" '
	function rec(s,   k, js) {
		k = "p" p "-" (s % 3)
		js = sprintf("jsonb_build_object(%sp%s, %d, %ss%s, %d)", sq, sq, p, sq, sq, s)
		if (s % 2)
			printf "SELECT mq.publish(%s%s%s, %s, key => %s%s%s);\n", sq, t, sq, js, sq, k, sq
		else
			printf "INSERT INTO mq.outbox (aggregatetype, aggregateid, payload) VALUES (%s%s%s, %s%s%s, %s);\n", sq, t, sq, sq, k, sq, js
	}
	BEGIN {
		s = 1
		while (s < 100000000) {
			print ENVIRON["STOP"]
			n = (s % 5 == 0) ? 2 : 1
			print "BEGIN;"
			for (i = 0; i < n; i++) rec(s + i)
			print "SELECT pg_sleep(random() * 0.03);"
			print "COMMIT;"
			for (i = 0; i < n; i++) printf "\\echo %d %d\n", p, s + i
			s += n
		}
	}' | "${PSQL[@]}" -o /dev/null >"$WORK/pub_$p.log" 2>"$WORK/pub_$p.err"
}

relayer() {
	STOP="$(stop_check relay)" awk 'BEGIN {
		for (i = 1; i <= 100000000; i++) {
			print ENVIRON["STOP"]
			print "SELECT mq.relay();"
			print "SELECT pg_sleep(0.005);"
		}
	}' | "${PSQL[@]}" -o /dev/null >"$WORK/relay.log" 2>"$WORK/relay.err"
}

CONSUMER_ROUND="$(stop_check cons)
DELETE FROM f;
INSERT INTO f SELECT partition, \"offset\", (payload->>'p')::int, (payload->>'s')::int
    FROM mq.fetch('$T', '$G', 100, wait => '50 milliseconds');
SELECT 'F', part, off, p, s FROM f ORDER BY part, off;
SELECT mq.commit('$T', '$G', part, max(off) + 1) FROM f GROUP BY part;
SELECT 'C', part, max(off) + 1 FROM f GROUP BY part ORDER BY part;"
export CONSUMER_ROUND
consumer() {
	{
		echo "CREATE TEMP TABLE f (part int, off bigint, p int, s int);"
		awk 'BEGIN { for (i = 1; i <= 100000000; i++) print ENVIRON["CONSUMER_ROUND"] }'
	} | "${PSQL[@]}" -At -F ' ' >"$WORK/cons.log" 2>"$WORK/cons.err"
}

consumer &
cons_pid=$!
pids+=($cons_pid)
relayer &
relay_pid=$!
pids+=($relay_pid)
pub_pids=()
for p in $(seq 1 $NPROD); do
	publisher "$p" &
	pub_pids+=($!)
	pids+=($!)
done

say "publishers running for ${RUN_SECS}s"
if [ "${MQ_STRESS_SELFTEST:-}" = rewind ]; then
	sleep $((RUN_SECS / 2))
	say "self-test: seeking group $G back to 'earliest' mid-run"
	sql "SELECT mq.seek('$T', '$G', to_position => 'earliest')" >/dev/null
	sleep $((RUN_SECS - RUN_SECS / 2))
else
	sleep "$RUN_SECS"
fi

# wait until: the publishers stopped, nothing is left in the outbox, the
# consumer caught up
wait_for() { # wait_for SECS SQL: until SQL prints t
	local deadline=$((SECONDS + $1))
	while [ $SECONDS -lt $deadline ]; do
		[ "$(sql "$2")" = t ] && return 0
		sleep 0.2
	done
	return 1
}
violations=0
report() {
	say "  $1: $2"
	violations=$((violations + $2))
}
sql "INSERT INTO os_stop VALUES ('pub')" || die "cannot stop the publishers"
for p in "${pub_pids[@]}"; do wait "$p"; done
wait_for 20 "SELECT NOT EXISTS (SELECT 1 FROM mq.outbox)" || report "outbox_not_relayed" 1
sql "INSERT INTO os_stop VALUES ('relay')" >/dev/null
wait "$relay_pid"
wait_for 20 "SELECT coalesce(sum(lag), -1) = 0 FROM mq.consumer_lag WHERE topic_name = '$T' AND group_name = '$G'" ||
	report "consumer_not_caught_up" 1
sql "INSERT INTO os_stop VALUES ('cons')" >/dev/null
wait "$cons_pid"

clients_failed=0
for f in "$WORK"/*.err; do
	if grep -q 'ERROR:' "$f"; then
		say "client $(basename "$f" .err) failed:"
		grep 'ERROR:' "$f" | head -3
		clients_failed=$((clients_failed + 1))
	fi
done

if [ "${MQ_STRESS_SELFTEST:-}" = lose ]; then
	say "self-test: deleting the newest record of partition 0 behind mq's back"
	sql "DO \$\$
	DECLARE r regclass;
	BEGIN
	    SELECT c.oid INTO r FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
	     WHERE c.relnamespace = 'mq'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
	       AND a.attname = 'offset' LIMIT 1;
	    EXECUTE format('DELETE FROM %s WHERE partition = 0 AND \"offset\" = (SELECT max(\"offset\") FROM %s WHERE partition = 0)', r, r);
	END \$\$" >/dev/null
fi

# read the whole topic with a new group: "V part off p s key"
sql "SELECT mq.create_group('$T', 'verify', 'earliest')" >/dev/null || die "cannot create group verify"
: >"$WORK/topic.log"
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ]; do
	out=$("${PSQL[@]}" -At -F ' ' <<SQL
CREATE TEMP TABLE v AS
    SELECT partition AS part, "offset" AS off, (payload->>'p')::int AS p, (payload->>'s')::int AS s, key AS k
    FROM mq.fetch('$T', 'verify', 5000);
SELECT mq.commit('$T', 'verify', part, max(off) + 1) FROM v GROUP BY part;
SELECT 'V', part, off, p, s, k FROM v ORDER BY part, off;
SQL
	) || die "reading the topic failed"
	out=$(printf '%s\n' "$out" | grep '^V ')
	[ -z "$out" ] && break
	printf '%s\n' "$out" >>"$WORK/topic.log"
done
sql "SELECT partition, end_offset FROM mq.topic_stats WHERE topic_name = '$T'" >"$WORK/ends.log"

# --- verify ------------------------------------------------------------------

awk 'NF == 2' "$WORK"/pub_*.log >"$WORK/committed.log"
awk '($1 == "F" && NF == 5) || ($1 == "C" && NF == 3)' "$WORK/cons.log" >"$WORK/consumer.log"

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
FILENAME ~ /\/ends\.log$/ { ends[$1] = $2 + 0; next }
FILENAME ~ /\/consumer\.log$/ && $1 == "F" {
	o = $2 " " $3
	if ($3 + 0 < cur[$2] + 0) bad("below_commit", "fetched " o " with " cur[$2] " committed")
	if (o in fetched) bad("fetched_twice", o)
	fetched[o] = $4 " " $5; nfetched++
	next
}
FILENAME ~ /\/consumer\.log$/ && $1 == "C" {
	if ($3 + 0 > cur[$2] + 0) cur[$2] = $3 + 0
	next
}
FILENAME ~ /\/topic\.log$/ {
	o = $2 " " $3; r = $4 " " $5
	if (o in topic) bad("dense", "offset " o " twice")
	topic[o] = r; nrec[$2]++; nrecords++
	if ($3 + 0 > maxo[$2]) maxo[$2] = $3 + 0
	if (r in where) bad("duplicated", "record " r " at " where[r] " and " o)
	where[r] = o
	if (($6 in keypart) && keypart[$6] != $2) bad("key_order", "key " $6 " in partitions " keypart[$6] " and " $2)
	keypart[$6] = $2
	if (($6 in lastseq) && $5 + 0 <= lastseq[$6] + 0) bad("key_order", "key " $6 ": s " $5 " after s " lastseq[$6])
	lastseq[$6] = $5 + 0
	next
}
END {
	for (part = 0; part < npart; part++) {
		if (nrec[part] + 0 > 0 && maxo[part] + 1 != nrec[part]) bad("dense", "partition " part ": " nrec[part] " records, max offset " maxo[part])
		if (nrec[part] + 0 != ends[part] + 0) bad("dense", "partition " part ": " nrec[part] " records read, end_offset " ends[part])
	}
	for (k in committed) if (!(k in where)) bad("lost", k)
	for (r in where) if (!(r in committed)) bad("phantom", r)
	for (p = 1; p <= nprod; p++) {
		if (maxc[p] + 0 == 0) bad("producer_log", "publisher " p " committed nothing")
		if (ccount[p] + 0 != maxc[p] + 0) bad("producer_log", "publisher " p " logged " ccount[p] + 0 " commits, up to " maxc[p] + 0)
	}
	for (o in topic) {
		if (!(o in fetched)) {
			split(o, ps, " ")
			bad("not_fetched", o " (" topic[o] ")" (ps[2] + 0 < cur[ps[1]] + 0 ? ", below the committed offset " cur[ps[1]] : ""))
		} else if (fetched[o] != topic[o])
			bad("content", o " fetched as " fetched[o] ", topic holds " topic[o])
	}
	print "committed", ncommitted + 0
	print "records", nrecords + 0
	print "fetched", nfetched + 0
	split("producer_log below_commit fetched_twice not_fetched content lost duplicated phantom dense key_order", checks, " ")
	for (i = 1; i in checks; i++) print "check", checks[i], nbad[checks[i]] + 0
}' "$WORK/committed.log" "$WORK/ends.log" "$WORK/consumer.log" "$WORK/topic.log" >"$WORK/verify.out"

grep '^detail ' "$WORK/verify.out" | sed 's/^detail /offset_stress:   /'
get() { awk -v k="$1" '$1 == k { print $2 }' "$WORK/verify.out"; }
committed=$(get committed)
records=$(get records)
fetched=$(get fetched)
while read -r _ name n; do
	report "$name" "$n"
done < <(grep '^check ' "$WORK/verify.out")
report "clients_failed" "$clients_failed"
[ "${committed:-0}" -ge 100 ] || report "too_little_load (committed < 100)" 1

sql "SELECT mq.drop_topic('$T')" >/dev/null

say "$committed committed, $records records, $fetched fetched, $violations violations"
[ "$violations" -eq 0 ]
