#!/usr/bin/env bash
# test/faults/worker_old_version.sh: the worker keeps working in a database
# still at extension version 0.1.0 (before ALTER EXTENSION mq UPDATE).
#
# Database mq_f_old gets CREATE EXTENSION mq VERSION '0.1.0'; 50 records
# are published through the outbox and a message lets its last lease lapse.
# Counts (read from mq.worker_status of another database, which lists every
# worker): records relayed (50), dead-lettered (1), failed passes (0),
# worker starts (1), the version the worker saw ('0.1.0', then '0.2.0'
# after ALTER EXTENSION mq UPDATE, with relaying still going on), and the
# relay lock a pass holds: the advisory lock (28017, 2) that 0.1.0's SQL
# takes, then mq's own MQ_LOCK_RELAY alone.
NAME=worker_old_version
source "$(dirname "$0")/common.bash"
DB=mq_f_old
new_db $DB
new_db mq_f_old_view mq
sql $DB "CREATE EXTENSION mq VERSION '0.1.0'" || die "cannot create mq 0.1.0"
sql $DB "SELECT mq.create_topic('old_t', 2);
         SELECT mq.create_queue('old_q', visibility_timeout => '0.2 seconds', max_attempts => 1);
         SELECT mq.send('old_q', '{}');" >/dev/null || die "cannot set up"
sql $DB "SELECT count(*) FROM mq.poll('old_q', 1)" >/dev/null
wait_worker $DB 15 >/dev/null || die "no worker in a database at 0.1.0"
sql $DB "SELECT count(mq.publish('old_t', jsonb_build_object('n', g))) FROM generate_series(1, 50) g" >/dev/null
status() {
	sql mq_f_old_view "SELECT failed_passes, launches, extension_version
	                   FROM mq.worker_status WHERE database = '$DB'"
}
for _ in $(seq 1 50); do
	relayed=$(sql $DB "SELECT count(*) FROM mq.topic_record")
	dead=$(sql $DB "SELECT total FROM mq.queue_stats WHERE queue_name = 'old_q_dlq'")
	[ "$relayed" = 50 ] && [ "$dead" = 1 ] && break
	sleep 0.2
done
IFS='|' read -r failed launches version <<<"$(status)"
say "  at 0.1.0: $relayed relayed, $dead dead-lettered, $failed failed passes, $launches starts, version seen '$version'"
[ "$relayed" = 50 ] || bad "$relayed of 50 records relayed"
[ "$dead" = 1 ] || bad "$dead messages dead-lettered, not 1"
[ "$failed" = 0 ] || bad "$failed failed passes"
[ "$launches" = 1 ] || bad "$launches worker starts"
[ "$version" = 0.1.0 ] || bad "the worker saw version '$version'"

# relay_lock_held: which relay lock a pass holds, seen from another session
# while it runs: "advisory" if (28017, 2) is taken, then "mq" if mq's own
# (MQ_LOCK_RELAY: classid 2, objid 0, objsubid 28017) is
relay_lock_held() {
	"${PSQL[@]}" -d $DB -c "BEGIN; SELECT mq.relay(); SELECT pg_sleep(1.5); COMMIT;" >/dev/null &
	local bg=$! held=""
	sleep 0.7
	[ "$(sql $DB "SELECT pg_try_advisory_xact_lock(28017, 2)")" = f ] && held="advisory"
	[ "$(sql $DB "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
	              AND classid = 2 AND objid = 0 AND objsubid = 28017")" = 1 ] && held="$held mq"
	wait $bg
	echo "${held# }"
}
# at 0.1.0 a pass takes the advisory lock that 0.1.0's SQL functions take
held=$(relay_lock_held)
say "  at 0.1.0 a relay pass holds: '${held}'"
[ "$held" = advisory ] || bad "a relay pass at 0.1.0 holds '$held', not the advisory lock of 0.1.0"

sql $DB "ALTER EXTENSION mq UPDATE" || bad "ALTER EXTENSION mq UPDATE failed"
held=$(relay_lock_held)
say "  at 0.2.0 a relay pass holds: '${held}'"
[ "$held" = mq ] || bad "a relay pass at 0.2.0 holds '$held', not mq's relay lock alone"
sql $DB "SELECT count(mq.publish('old_t', jsonb_build_object('n', g))) FROM generate_series(51, 60) g" >/dev/null
for _ in $(seq 1 50); do
	relayed=$(sql $DB "SELECT count(*) FROM mq.topic_record")
	IFS='|' read -r failed launches version <<<"$(status)"
	[ "$relayed" = 60 ] && [ "$version" = 0.2.0 ] && break
	sleep 0.2
done
say "  after the update: $relayed relayed, $failed failed passes, $launches starts, version seen '$version'"
[ "$relayed" = 60 ] || bad "$relayed of 60 records relayed after the update"
[ "$failed" = 0 ] || bad "$failed failed passes"
[ "$version" = 0.2.0 ] || bad "the worker saw version '$version' after the update"
sql postgres "DROP DATABASE $DB WITH (FORCE)" >/dev/null
sql postgres "DROP DATABASE mq_f_old_view WITH (FORCE)" >/dev/null
finish
