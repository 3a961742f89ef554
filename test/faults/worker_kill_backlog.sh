#!/usr/bin/env bash
# test/faults/worker_kill_backlog.sh: the worker under a 200k-row outbox
# backlog is terminated, stopped and killed; nothing is lost or duplicated.
#
# 200,000 rows are written to the outbox (topic kb_t, 4 partitions) while
# the worker is off; then, while it relays them:
# 1. pg_terminate_backend while the relay step waits on a lock another
#    session holds for 8 s: the worker must be gone within 2 s (a pass is
#    interruptible), and a new one must start.
# 2. SIGSTOP of the new worker as soon as it is there, for 3 s, then
#    SIGCONT: it goes on.
# 3. kill -9 of the worker right after: the server restarts, and a worker
#    resumes.
# 4. Once the outbox is empty: exactly 200,000 records, one per row
#    (distinct n), none missing.
# 5. DROP DATABASE of another database whose worker is SIGSTOPped for 16 s
#    (longer than PostgreSQL, or mq 0.1, waited for other sessions): it
#    must succeed once the worker is continued.
# After 1, during 2 and after 3 parallel query elsewhere must still get its workers.
NAME=worker_kill_backlog
source "$(dirname "$0")/common.bash"
DB=mq_f_kill
N=200000
new_db $DB mq
sql $DB "SELECT mq.create_topic('kb_t', 4)" >/dev/null || die "cannot create topic"
"${PSQL[@]}" -d postgres -c "ALTER SYSTEM SET mq.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 50); do [ -z "$(worker_pid $DB)" ] && break; sleep 0.1; done
sql $DB "INSERT INTO mq.outbox (aggregatetype, aggregateid, payload)
         SELECT 'kb_t', (g % 64)::text, jsonb_build_object('n', g) FROM generate_series(1, $N) g" ||
	die "cannot fill the outbox"
"${PSQL[@]}" -d postgres -c "ALTER SYSTEM RESET mq.worker_enabled" -c "SELECT pg_reload_conf()" >/dev/null
pid=$(wait_worker $DB 20) || die "no worker after mq.worker_enabled = on"
remaining() { sql $DB "SELECT count(*) FROM mq.outbox"; }

# 1. terminate in the middle of a pass: its relay step waits on a lock
( "${PSQL[@]}" -d $DB -c "BEGIN" -c "LOCK mq.topic_partition IN ACCESS EXCLUSIVE MODE" \
	-c "SELECT pg_sleep(8)" -c "COMMIT" >/dev/null 2>&1 ) &
locker=$!
for _ in $(seq 1 100); do
	[ "$(sql postgres "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $pid")" = Lock ] && break
	sleep 0.05
done
t0=$(date +%s%N)
sql postgres "SELECT pg_terminate_backend($pid)" >/dev/null
while kill -0 "$pid" 2>/dev/null; do
	[ $(($(date +%s%N) - t0)) -gt 5000000000 ] && break
	sleep 0.01
done
ms=$((($(date +%s%N) - t0) / 1000000))
kill $locker 2>/dev/null
wait $locker 2>/dev/null
sql postgres "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = '$DB' AND query LIKE '%pg_sleep(8)%'" >/dev/null
say "  1. terminated while its relay step waited on a lock: gone in $ms ms, $(remaining) rows left"
[ "$ms" -le 2000 ] || bad "pg_terminate_backend took $ms ms to end the worker"
parallel_check "after pg_terminate_backend"
pid=$(wait_worker $DB 15 "$pid") || die "no worker after pg_terminate_backend"

# 2. SIGSTOP for 3 s, as soon as the new worker is there.  A stopped
# process may hold a buffer's content lock or header spinlock that another
# session then waits on (as for any stopped backend; a wait longer than
# about a minute on a spinlock is a PANIC), so what runs during the stop
# runs in the background, and SIGCONT comes after 3 s whatever it does.
r=$(remaining)
probe_out=$(mktemp)
kill -STOP "$pid"
parallel_check "while the worker is stopped" >"$probe_out" 2>&1 &
probe=$!
sleep 3
kill -CONT "$pid"
wait $probe
cat "$probe_out"
grep -q VIOLATION "$probe_out" && violations=$((violations + 1))
rm -f "$probe_out"
sleep 0.3
say "  2. stopped for 3 s with $r rows left, continued: $(remaining) rows left"
[ "$(worker_pid $DB)" = "$pid" ] || bad "the worker did not survive SIGSTOP/SIGCONT"

# 3. kill -9, in the middle of the relay
r=$(remaining)
kill -9 "$pid"
for _ in $(seq 1 100); do
	sql postgres "SELECT 1" >/dev/null 2>&1 && break
	sleep 0.2
done
pid=$(wait_worker $DB 20 "$pid") || bad "no worker within 20 s after kill -9"
say "  3. killed with $r rows left; server back, worker ${pid:-none}, $(remaining) rows left"
parallel_check "after kill -9"

# 4. count
for _ in $(seq 1 300); do
	[ "$(remaining)" = 0 ] && break
	sleep 0.3
done
read -r left records distinct missing < <(sql $DB "
	SELECT (SELECT count(*) FROM mq.outbox), count(*), count(DISTINCT payload->>'n'),
	       $N - count(DISTINCT payload->>'n') FILTER (WHERE (payload->>'n')::int BETWEEN 1 AND $N)
	FROM mq.topic_record" | tr '|' ' ')
say "  4. $left left in the outbox, $records records, $distinct distinct, $missing missing"
[ "$left" = 0 ] || bad "$left rows never relayed"
[ "$records" = $N ] || bad "$records records for $N outbox rows"
[ "$distinct" = "$records" ] || bad "$((records - distinct)) duplicated records"
[ "$missing" = 0 ] || bad "$missing rows lost"

# 5. DROP DATABASE waits for a stopped worker as long as it takes
new_db mq_f_kill2 mq
p2=$(wait_worker mq_f_kill2 15) || die "no worker in mq_f_kill2"
kill -STOP "$p2"
t0=$SECONDS
( sleep 16; kill -CONT "$p2" ) &
if sql postgres "DROP DATABASE mq_f_kill2"; then
	say "  5. DROP DATABASE with a stopped worker: done after $((SECONDS - t0)) s"
else
	bad "DROP DATABASE gave up waiting for a stopped worker"
fi
wait
sql postgres "DROP DATABASE IF EXISTS mq_f_kill2 WITH (FORCE)" >/dev/null 2>&1
sql postgres "DROP DATABASE $DB WITH (FORCE)" >/dev/null
finish
