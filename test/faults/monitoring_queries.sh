#!/usr/bin/env bash
# test/faults/monitoring_queries.sh: the queries of doc/postgres_exporter.yml
# run and return what doc/monitoring.md says, and mq.worker_status tells a
# healthy worker from a failing one.
#
# A database with a queue (one message, one dead letter), a topic with a
# consumer group and 5 outbox rows waiting (the worker is kept from
# relaying them by a lock on mq.topic_record).  Counts: queries that fail or
# return no row (must be 0); mq_worker up (1), outbox backlog (5) and a
# state of 'relay' while the relay waits on the lock; the DLQ flagged.
NAME=monitoring_queries
source "$(dirname "$0")/common.bash"
DB=mq_f_mon
new_db $DB mq
sql $DB "SELECT mq.create_queue('mon_q', visibility_timeout => '0.1 seconds', max_attempts => 1);
         SELECT mq.send('mon_q', '{}'); SELECT mq.send('mon_q', '{}');
         SELECT mq.create_topic('mon_t', 2); SELECT mq.publish('mon_t', '{}');" >/dev/null ||
	die "cannot set up"
sql $DB "SELECT count(*) FROM mq.poll('mon_q', 1)" >/dev/null
wait_worker $DB 15 >/dev/null || die "no worker"
for _ in $(seq 1 50); do
	[ "$(sql $DB "SELECT count(*) FROM mq.topic_record")" = 1 ] && break
	sleep 0.1
done
sql $DB "SELECT mq.create_group('mon_t', 'mon_g', start_at => 'earliest')" >/dev/null
sql $DB "SELECT * FROM mq.fetch('mon_t', 'mon_g', 1, auto_commit => true)" >/dev/null
for _ in $(seq 1 50); do
	[ "$(sql $DB "SELECT total FROM mq.queue_stats WHERE queue_name = 'mon_q_dlq'")" = 1 ] && break
	sleep 0.1
done

# the relay step of the next pass waits on a lock of the topic records
( "${PSQL[@]}" -d $DB -c "BEGIN" -c "LOCK mq.topic_record IN ACCESS EXCLUSIVE MODE" \
	-c "SELECT pg_sleep(4)" -c "COMMIT" >/dev/null ) &
locker=$!
sleep 0.5
sql $DB "INSERT INTO mq.outbox (aggregatetype, payload) SELECT 'mon_t', '{}' FROM generate_series(1, 5)" >/dev/null
sleep 1

f=$(dirname "$0")/../../doc/postgres_exporter.yml
names=$(awk '/^[a-z_]+:$/ {sub(":", ""); print}' "$f")
failed=0
for n in $names; do
	query=$(awk -v n="$n:" '$0 == n {on = 1; next} on && /^  query: \|/ {q = 1; next}
		q && /^  metrics:/ {exit} q {print}' "$f")
	out=$(sql $DB "$query" 2>&1)
	rc=$?
	rows=$(printf '%s\n' "$out" | grep -c .)
	say "  $n: rc $rc, $rows rows"
	if [ $rc -ne 0 ] || [ "$rows" -eq 0 ]; then
		failed=$((failed + 1))
		bad "$n: $(printf '%s' "$out" | head -2)"
	fi
	case $n in
	mq_worker) IFS='|' read -r _ up _ _ _ _ _ _ _ _ _ backlog _ _ <<<"$out" ;;
	mq_queue) dlq=$(printf '%s\n' "$out" | awk -F'|' '$2 == "mon_q_dlq" {print $3 "/" $7}') ;;
	esac
done
state=$(sql $DB "SELECT state FROM mq.worker_status WHERE database = current_database()")
wait $locker
say "  worker up $up, outbox backlog $backlog, state while the relay waits: $state; DLQ (is_dlq/total): $dlq"
[ "$up" = 1 ] || bad "mq_worker_up is $up"
[ "$backlog" = 5 ] || bad "outbox backlog $backlog, not 5"
[ "$state" = relay ] || bad "state '$state' while the relay waits on a lock"
[ "$dlq" = 1/1 ] || bad "the dead-letter queue shows as $dlq"
sql postgres "DROP DATABASE $DB WITH (FORCE)" >/dev/null
finish
