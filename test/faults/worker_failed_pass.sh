#!/usr/bin/env bash
# test/faults/worker_failed_pass.sh: a pass that fails every time must be
# caught, logged once per failure and backed off, without a crash loop.
#
# mq.maintain() is replaced by one that raises, with mq.worker_backoff_max
# at 4 s, for 12 s.  Meanwhile 100 records are published to a topic: the
# relay step must still move them.  Counts: failures logged (must equal the
# failed passes mq.worker_status reports, and be at most 1 + 12 s of
# backoff steps: 1, 2, 4, 4 s ...), worker exits in the log (must be 0),
# worker starts (launches, must stay 1), the worker pid (must not change).
# Then mq.maintain() is restored: the next pass must succeed
# (consecutive_failures back to 0).  Parallel query elsewhere must still get
# its workers.
NAME=worker_failed_pass
source "$(dirname "$0")/common.bash"
DB=mq_f_fail
new_db $DB mq
sql $DB "SELECT mq.create_topic('fail_t', 2)" >/dev/null || die "cannot create topic"
pid=$(wait_worker $DB 15) || die "no worker in $DB"
"${PSQL[@]}" -d postgres -c "ALTER SYSTEM SET mq.worker_backoff_max = '4s'" -c "SELECT pg_reload_conf()" >/dev/null

sql $DB "CREATE TABLE saved_maintain AS SELECT pg_get_functiondef('mq.maintain(integer)'::regprocedure) AS def" ||
	die "cannot save mq.maintain"
exits0=$(log_count 'background worker "mq worker" (PID .*) exited')
logged0=$(log_count 'injected maintenance failure')
sql $DB "CREATE OR REPLACE FUNCTION mq.maintain(max_rows integer DEFAULT 1000)
         RETURNS TABLE (dead_lettered bigint, expired bigint, dedup_keys_removed bigint,
                        inbox_keys_removed bigint, segments_dropped integer)
         LANGUAGE plpgsql AS \$\$BEGIN RAISE EXCEPTION 'injected maintenance failure'; END\$\$" ||
	die "cannot break mq.maintain"
sleep 1
sql $DB "SELECT count(mq.publish('fail_t', jsonb_build_object('n', g))) FROM generate_series(1, 100) g" >/dev/null
sleep 11
read -r failed consec launches err < <(sql $DB "SELECT failed_passes, consecutive_failures, launches, last_error IS NOT NULL
                          FROM mq.worker_status WHERE database = current_database()" | tr '|' ' ')
logged=$(($(log_count 'injected maintenance failure') - logged0))
exits=$(($(log_count 'background worker "mq worker" (PID .*) exited') - exits0))
relayed=$(sql $DB "SELECT count(*) FROM mq.topic_record")
now=$(worker_pid $DB)
say "  in 12 s: ${failed:-?} failed passes, $logged logged, $consec in a row, $exits worker exits, ${launches:-?} starts, $relayed relayed, worker $pid -> ${now:-none}"
[ "${failed:-0}" -ge 3 ] || bad "only ${failed:-0} failed passes in 12 s"
[ "${failed:-0}" -le 7 ] || bad "${failed:-0} failed passes in 12 s: no backoff"
[ "$logged" -eq "${failed:-x}" ] || bad "$logged failures logged for ${failed:-?} failed passes"
[ "$exits" -eq 0 ] || bad "$exits worker exits"
[ "${launches:-x}" = 1 ] || bad "${launches:-?} worker starts"
[ "$err" = t ] || bad "no last_error in mq.worker_status"
[ "$relayed" -eq 100 ] || bad "$relayed of 100 records relayed while maintenance failed"
[ "$now" = "$pid" ] || bad "the worker changed ($pid -> ${now:-none})"
parallel_check "while passes fail"

# restore: the next pass succeeds
def=$(sql $DB "SELECT def FROM saved_maintain")
"${PSQL[@]}" -d $DB >/dev/null <<SQL || die "cannot restore mq.maintain"
$def;
DROP TABLE saved_maintain;
SQL
consec=x
for _ in $(seq 1 40); do
	consec=$(sql $DB "SELECT consecutive_failures FROM mq.worker_status WHERE database = current_database()")
	[ "$consec" = 0 ] && break
	sleep 0.25
done
say "  restored: $consec consecutive failures"
[ "$consec" = 0 ] || bad "still $consec consecutive failures after the fix"
"${PSQL[@]}" -d postgres -c "ALTER SYSTEM RESET mq.worker_backoff_max" -c "SELECT pg_reload_conf()" >/dev/null
sql postgres "DROP DATABASE $DB WITH (FORCE)" >/dev/null
finish
