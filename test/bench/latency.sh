#!/usr/bin/env bash
# test/bench/latency.sh: end-to-end latency of long polls, and the CPU that
# idle waiters burn.  A benchmark, not a test: it prints numbers and fails
# only when the run itself breaks (or a message goes missing).
#
#   MQ_SKIP_BUILD=1 bash test/bench/latency.sh
#
# 8 consumers wait in mq.poll('lat_q', 1, NULL, wait => '5 seconds') on one
# queue; a producer (a procedure, one COMMIT per message) sends ~200
# messages/s, each carrying clock_timestamp() as "t" taken just before its
# send.  A consumer computes clock_timestamp() - t when its poll returns
# (so the figure includes the producer's commit, the wake-up and the poll)
# and acks in the same statement.  Prints p50/p90/p99/max in ms.  Then,
# with nothing sent, samples the CPU time (utime + stime from /proc) of the
# 8 waiting backends over an idle stretch: it should be ~0.
#
# Environment (all optional):
#   LAT_SECONDS  producing time, s         (15)
#   LAT_RATE     messages per second       (200)
#   LAT_IDLE     idle CPU sample, s        (10)
#   LAT_CONSUMERS  waiting consumers       (8)
#   MQ_SKIP_BUILD=1 use the mq that is already installed

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$BENCH_DIR/../lib.sh"

LAT_SECONDS=${LAT_SECONDS:-15}
LAT_RATE=${LAT_RATE:-200}
LAT_IDLE=${LAT_IDLE:-10}
LAT_CONSUMERS=${LAT_CONSUMERS:-8}

mq_setup
export PGDATABASE=mq_latency
mq_psql -d postgres -c "CREATE DATABASE mq_latency"
mq_psql >/dev/null <<'SQL'
CREATE EXTENSION mq;
SELECT mq.create_queue('lat_q');
CREATE UNLOGGED TABLE lat (ms float8, acked boolean);
-- n messages at rate/s, one transaction each, on a fixed schedule
CREATE PROCEDURE produce(n integer, rate integer)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    FOR i IN 1..n LOOP
        PERFORM mq.send('lat_q', jsonb_build_object('t', clock_timestamp()));
        COMMIT;
        PERFORM pg_sleep(greatest(0, extract(epoch FROM
            t0 + i * interval '1 second' / rate - clock_timestamp())));
    END LOOP;
END $$;
SQL

work=$(mktemp -d /tmp/mq-latency.XXXXXX)
consumer_sql="INSERT INTO lat
SELECT extract(epoch FROM clock_timestamp() - (payload->>'t')::timestamptz) * 1000,
       mq.ack('lat_q', msg_id)
FROM mq.poll('lat_q', 1, NULL, '5 seconds');"
pids=()
stop_consumers() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
	rm -rf "$work"
}
trap 'rc=$?; stop_consumers; (exit $rc); mq_stop' EXIT

for i in $(seq 1 "$LAT_CONSUMERS"); do
	"$MQ_PGBIN/psql" -X -q -o /dev/null \
		-f <(awk -v s="$consumer_sql" 'BEGIN { for (i = 0; i < 10000000; i++) print s }') \
		2>"$work/consumer$i.err" &
	pids+=($!)
done

# wait until every consumer is asleep in its poll
waiting_pids() {
	mq_psql -At -c "SELECT pid FROM pg_stat_activity
	                WHERE datname = current_database() AND state = 'active'
	                  AND wait_event_type = 'Extension' AND query LIKE '%mq.poll(''lat_q''%'"
}
for _ in $(seq 1 100); do
	[ "$(waiting_pids | wc -l)" -eq "$LAT_CONSUMERS" ] && break
	sleep 0.1
done
n_waiting=$(waiting_pids | wc -l)
mq_log "$n_waiting of $LAT_CONSUMERS consumers waiting; producing $LAT_RATE/s for $LAT_SECONDS s"

n=$((LAT_RATE * LAT_SECONDS))
t0=$(date +%s.%N)
mq_psql -c "CALL produce($n, $LAT_RATE)"
t1=$(date +%s.%N)
# let the last messages arrive
for _ in $(seq 1 50); do
	[ "$(mq_psql -At -c "SELECT count(*) FROM lat")" -ge "$n" ] && break
	sleep 0.1
done

echo
echo "long-poll latency: $LAT_CONSUMERS consumers, 1 producer, $n messages, one per transaction"
mq_psql -c "
SELECT count(*) AS received,
       round($n / ($t1 - $t0), 1) AS sent_per_s,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2) AS p50_ms,
       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 2) AS p90_ms,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2) AS p99_ms,
       round(max(ms)::numeric, 2) AS max_ms,
       count(*) FILTER (WHERE NOT acked) AS ack_failed
FROM lat"
received=$(mq_psql -At -c "SELECT count(*) FROM lat")
left=$(mq_psql -At -c "SELECT total FROM mq.queue_stats WHERE queue_name = 'lat_q'")

# idle: nothing is sent; the consumers sleep in mq.poll (re-polling every
# 5 s when their wait ends)
cpu_ticks() { # summed utime + stime of the given pids, in clock ticks
	local p total=0 f
	for p in "$@"; do
		f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		f=${f##*) } # fields after "pid (comm) "
		set -- $f
		total=$((total + ${12} + ${13}))
	done
	echo "$total"
}
sleep 1
mapfile -t idle_pids < <(waiting_pids)
hz=$(getconf CLK_TCK)
before=$(cpu_ticks "${idle_pids[@]}")
ps_before=$(ps -o time= -p "$(IFS=,; echo "${idle_pids[*]}")" | tr '\n' ' ')
sleep "$LAT_IDLE"
after=$(cpu_ticks "${idle_pids[@]}")
ps_after=$(ps -o time= -p "$(IFS=,; echo "${idle_pids[*]}")" | tr '\n' ' ')
echo "idle waiting backends: ${#idle_pids[@]}, CPU over ${LAT_IDLE} s:" \
	"$(((after - before) * 1000 / hz)) ms in total (resolution $((1000 / hz)) ms)"
echo "  ps -o time before: $ps_before"
echo "  ps -o time after:  $ps_after"

if grep -h 'ERROR' "$work"/consumer*.err 2>/dev/null | head -3 | grep .; then
	echo "consumers failed" >&2
	exit 1
fi
if [ "$received" -ne "$n" ] || [ "$left" -ne 0 ]; then
	echo "lost messages: $n sent, $received received, $left left in the queue" >&2
	exit 1
fi
