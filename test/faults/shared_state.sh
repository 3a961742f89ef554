#!/usr/bin/env bash
# test/faults/shared_state.sh: mq's shared memory neither fills up nor lies
# as queues and installations of mq come and go, and no pass that fails
# loses what it took from it.
#
# The worker is switched off (mq.worker_enabled) so that the passes run
# exactly where the script runs mq.run_maintenance().  Then:
#
#   counters: 9,000 queue ids (more than the 8,192 entries of
#     mq.max_counters) get counter moves, 1,000 per transaction, with a
#     pass after each batch, as 9,000 queues created, used and dropped
#     would; a queue used afterwards still counts its sends.
#   created/dropped: 8,400 real queues (more than mq.max_counters) are
#     created, sent to and dropped, a pass every 200.
#   failed passes: a poison message owes two aborted deliveries
#     (max_attempts 2); a pass rolled back, a pass rolled back to a
#     savepoint, and a pass by a role without privileges must all leave
#     the debt in place: the next pass dead-letters the message.
#   reinstall: 500 sends and 500 aborted deliveries are pending when
#     DROP EXTENSION mq; CREATE EXTENSION mq runs; the new queue (same id)
#     and its new message (same msg_id) must not inherit them.
#
# After the churn and after the reinstall, a parallel query in another
# database must still get its workers.
#
# Prints the counts and exits 1 on any violation.

NAME=shared_state
source "$(dirname "$0")/common.bash"

DB=mq_shared_state
P=("$MQ_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1)

check() { # what want got
	if [ "$2" = "$3" ]; then
		say "$1: $3"
	else
		say "$1: got $3, want $2: VIOLATION"
		violations=$((violations + 1))
	fi
}
q() { "${P[@]}" -d "$DB" "$@"; }
restore() {
	"${P[@]}" -d postgres -c "ALTER SYSTEM RESET mq.worker_enabled" -c "SELECT pg_reload_conf()" >/dev/null
	"${P[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
}
trap restore EXIT

"${P[@]}" -d postgres -c "ALTER SYSTEM SET mq.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
"${P[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" || exit 1
q -c "CREATE EXTENSION mq" >/dev/null || exit 1
for _ in $(seq 1 100); do
	[ "$("${P[@]}" -d postgres -c "SELECT count(*) FROM pg_stat_activity a JOIN pg_database d ON d.oid = a.datid WHERE a.backend_type = 'mq worker' AND d.datname = '$DB'")" = 0 ] && break
	sleep 0.1
done

# --- counters of many queues ------------------------------------------------
for b in $(seq 0 8); do
	q -c "SELECT count(mq._count(g, 'sent', 1)) FROM generate_series(100000 + $b * 1000, 100999 + $b * 1000) g" \
		-c "SELECT mq.run_maintenance()" >/dev/null || exit 1
done
q -c "SELECT mq.create_queue('innocent')" \
	-c "SELECT mq.send('innocent', '{}') FROM generate_series(1, 3)" >/dev/null || exit 1
check "sends counted after 9,000 queue ids (pending)" 3 \
	"$(q -c "SELECT total_sent FROM mq.queue_stats WHERE queue_name = 'innocent'")"
q -c "SELECT mq.run_maintenance()" >/dev/null
check "sends counted after 9,000 queue ids (written)" 3 \
	"$(q -c "SELECT total_sent FROM mq.queue_stats WHERE queue_name = 'innocent'")"

q >/dev/null <<'SQL' || exit 1
CREATE PROCEDURE pg_temp.churn(n integer) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. n LOOP
        PERFORM mq.create_queue('churn_' || i);
        PERFORM mq.send('churn_' || i, '{}');
        PERFORM mq.drop_queue('churn_' || i);
        PERFORM mq.drop_queue('churn_' || i || '_dlq');
        IF i % 200 = 0 THEN
            COMMIT;
            PERFORM mq.run_maintenance();
            COMMIT;
        END IF;
    END LOOP;
END;
$$;
CALL pg_temp.churn(8400);
SELECT mq.send('innocent', '{}');
SELECT mq.run_maintenance();
SQL
check "sends counted after 8,400 queues created and dropped" 4 \
	"$(q -c "SELECT total_sent FROM mq.queue_stats WHERE queue_name = 'innocent'")"
check "counter entries left in shared memory" 0 \
	"$(q -c "SELECT entries FROM mq.shared_state WHERE structure = 'counters'")"
parallel_check "after 8,400 queues created and dropped"

# --- a pass that fails loses nothing ----------------------------------------
q >/dev/null <<'SQL' || exit 1
SELECT mq.create_queue('poison', max_attempts => 2);
SELECT mq.send('poison', '{"p": 1}');
BEGIN; SELECT count(*) FROM mq.poll('poison'); ROLLBACK;
BEGIN; SELECT count(*) FROM mq.poll('poison'); ROLLBACK;
BEGIN; SELECT mq.run_maintenance(); ROLLBACK;
BEGIN; SAVEPOINT s; SELECT mq.run_maintenance(); ROLLBACK TO s; COMMIT;
DROP ROLE IF EXISTS mq_shm_nobody;
CREATE ROLE mq_shm_nobody;
SQL
q -c "SET ROLE mq_shm_nobody" -c "SELECT mq.run_maintenance()" >/dev/null 2>&1
say "run_maintenance() as a role without privileges: exit $?"
q -c "SELECT mq.run_maintenance()" >/dev/null
check "poison message dead-lettered after the failed passes" "0 1" \
	"$(q -c "SELECT (SELECT total FROM mq.queue_stats WHERE queue_name = 'poison') || ' ' || (SELECT total FROM mq.queue_stats WHERE queue_name = 'poison_dlq')")"
q -c "DROP ROLE mq_shm_nobody" >/dev/null

# --- DROP EXTENSION; CREATE EXTENSION ----------------------------------------
q >/dev/null <<'SQL' || exit 1
DROP EXTENSION mq CASCADE;
CREATE EXTENSION mq;
SELECT mq.create_queue('a');
SELECT mq.send('a', '{}') FROM generate_series(1, 500);
BEGIN; SELECT count(*) FROM mq.poll('a', 500); ROLLBACK;
DROP EXTENSION mq CASCADE;
CREATE EXTENSION mq;
SELECT mq.create_queue('b', max_attempts => 1);
SELECT mq.send('b', '{}');
SQL
check "new queue with the old id: ids" "1 1" \
	"$(q -c "SELECT q.queue_id || ' ' || m.msg_id FROM mq.queue q JOIN mq.queue_message m USING (queue_id) WHERE q.queue_name = 'b'")"
check "new queue after reinstall: sends (pending)" 1 \
	"$(q -c "SELECT total_sent FROM mq.queue_stats WHERE queue_name = 'b'")"
q -c "SELECT mq.run_maintenance()" >/dev/null
check "new queue after reinstall: sends, ready, dead" "1 1 0" \
	"$(q -c "SELECT total_sent || ' ' || ready || ' ' || (SELECT total FROM mq.queue_stats WHERE queue_name = 'b_dlq') FROM mq.queue_stats WHERE queue_name = 'b'")"
check "new message after reinstall: attempt" 0 \
	"$(q -c "SELECT attempt FROM mq.queue_message")"
check "nothing did not fit" 0 \
	"$(q -c "SELECT sum(overflows) FROM mq.shared_state")"
parallel_check "after DROP and CREATE EXTENSION"

finish
