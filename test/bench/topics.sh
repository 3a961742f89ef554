#!/usr/bin/env bash
# test/bench/topics.sh: topics, consumer groups and the outbox relay, against
# PgQ, in one run.
#
#   bash test/bench/topics.sh                       build, install, run
#   MQ_SKIP_BUILD=1 bash test/bench/topics.sh       use the installed mq
#   MQ_SKIP_BUILD=1 BENCH_SECONDS=3 BENCH_ROUNDS=1 bash test/bench/topics.sh
#
# Workloads (see doc/benchmarks.md, "Topics, groups and the relay"):
#   publish  100 keyed records per transaction to a 4-partition topic, 4
#            clients: mq.publish() x100, one mq.publish_batch() of 100 and
#            one multi-row INSERT INTO mq.outbox, against 100
#            pgq.insert_event() per transaction, with the worker off (PgQ's
#            ticker is not running either).  Then mq.publish_batch and
#            mq.publish again with the worker relaying meanwhile; what it
#            relayed and the backlog at the end are reported.
#   relay    the worker stopped (mq.worker_enabled = off), BENCH_RELAY_ROWS
#            outbox rows preloaded, then mq.relay(BENCH_RELAY_BATCH) in a
#            loop, one transaction each, until the outbox is empty.
#   fetch    1 consumer: mq.fetch(500) + mq.commit of every partition it
#            returned, and mq.fetch(500, auto_commit => true), over a
#            backlog of BENCH_FETCH_RECORDS records, against
#            PgQ's batch read (next_batch / get_batch_events / finish_batch).
#   latency  one publisher, LAT_RATE records/s, one per transaction; one
#            consumer waiting in mq.fetch(wait => '5 seconds'); latency from
#            the publisher's clock_timestamp() to fetch's return.
# Every mq/PgQ pair runs BENCH_ROUNDS times, interleaved, the order rotating
# each round; the table shows medians.
#
# Environment (all optional):
#   BENCH_SECONDS        timed seconds per publish run              (10)
#   BENCH_WARMUP         warm-up seconds before each publish run    (2)
#   BENCH_ROUNDS         rounds; the table shows the median         (3)
#   BENCH_CLIENTS        publishing clients                         (4)
#   BENCH_RELAY_ROWS     outbox rows preloaded for the relay        (100000)
#   BENCH_RELAY_BATCH    mq.relay(max_rows) per transaction         (10000)
#   BENCH_FETCH_RECORDS  records (and PgQ events) preloaded for fetch (1500000)
#   LAT_SECONDS          publishing time of the latency run         (BENCH_SECONDS)
#   LAT_RATE             records per second in the latency run      (100)
#   BENCH_ONLY           a subset of: publish relay fetch latency
#   BENCH_PGSS=1         load pg_stat_statements and save the top statements
#                        of every timed run (slows everything)
#   BENCH_OUT            directory for logs (a new /tmp/mq-topics.* dir)
#   MQ_SKIP_BUILD=1      use the mq that is already installed
#
# Exits 0 when every run completed, whether or not the targets were met;
# non-zero when a workload failed.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$BENCH_DIR/../lib.sh"

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_WARMUP=${BENCH_WARMUP:-2}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_CLIENTS=${BENCH_CLIENTS:-4}
BENCH_RELAY_ROWS=${BENCH_RELAY_ROWS:-100000}
BENCH_RELAY_BATCH=${BENCH_RELAY_BATCH:-10000}
BENCH_FETCH_RECORDS=${BENCH_FETCH_RECORDS:-1500000}
LAT_SECONDS=${LAT_SECONDS:-$BENCH_SECONDS}
LAT_RATE=${LAT_RATE:-100}
BENCH_ONLY=${BENCH_ONLY:-publish relay fetch latency}
BENCH_PGSS=${BENCH_PGSS:-0}
BENCH_OUT=${BENCH_OUT:-$(mktemp -d /tmp/mq-topics.XXXXXX)}
mkdir -p "$BENCH_OUT"

# shellcheck source=common.sh
source "$BENCH_DIR/common.sh"
FETCH_BATCH=500                # mq.fetch max_messages, and events per PgQ batch

if [ "$BENCH_PGSS" = 1 ]; then
	# shellcheck disable=SC2089 # the quotes are for postgresql.conf
	MQ_EXTRA_CONF="shared_preload_libraries = 'mq,pg_stat_statements'
pg_stat_statements.track = all
pg_stat_statements.max = 1000
${MQ_EXTRA_CONF}"
fi
# shellcheck disable=SC2090
export MQ_EXTRA_CONF

mq_setup

q() { PGOPTIONS="-c client_min_messages=warning" mq_psql -At -v payload="$PAYLOAD" "$@"; }
qc() { q <<<"$1"; }

q >/dev/null <<'SQL'
CREATE EXTENSION mq;
CREATE EXTENSION pgq;

-- relay: mq.relay(batch), one transaction each, until the outbox is empty
CREATE PROCEDURE bench_relay_all(batch integer, INOUT relayed bigint DEFAULT 0,
                                 INOUT calls integer DEFAULT 0, INOUT secs float8 DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    n  bigint;
BEGIN
    LOOP
        n := mq.relay(batch);
        COMMIT;
        calls := calls + 1;
        EXIT WHEN n = 0;
        relayed := relayed + n;
    END LOOP;
    secs := extract(epoch FROM clock_timestamp() - t0);
END $$;

-- latency: n records to topic tl at rate/s, one transaction each, each
-- carrying the clock_timestamp() taken just before its publish
CREATE PROCEDURE bench_produce(n integer, rate integer)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    FOR i IN 1 .. n LOOP
        PERFORM mq.publish('tl', jsonb_build_object('t', clock_timestamp()), key => 'k' || i);
        COMMIT;
        PERFORM pg_sleep(greatest(0, extract(epoch FROM
            t0 + i * interval '1 second' / rate - clock_timestamp())));
    END LOOP;
END $$;
CREATE UNLOGGED TABLE bench_lat (total_ms float8, relay_ms float8);
SQL
if [ "$BENCH_PGSS" = 1 ]; then qc 'CREATE EXTENSION pg_stat_statements' >/dev/null; fi
PAYLOAD_BYTES=$(qc "SELECT octet_length(:'payload'), pg_column_size(:'payload'::jsonb)")

NPROC=$(nproc)
BENCH_FAILED=0
declare -A RESULT   # "workload:system" -> space-separated figures of every round
declare -A NOTE     # "workload:system" -> space-separated side figures

# ---------------------------------------------------------------------------
# Set-up and clean-up
# ---------------------------------------------------------------------------

# reset_all: drop every topic (records truncated first, so drop_topic has
# nothing to delete) and every PgQ queue, empty the outbox, vacuum,
# checkpoint.  TRUNCATE waits for a relay pass in progress.
reset_all() {
	q >/dev/null <<'SQL'
TRUNCATE mq.outbox, mq.topic_record, bench_lat;
SELECT count(mq.drop_topic(topic_name)) FROM mq.topic;
SELECT count(pgq.drop_queue(queue_name, true)) FROM pgq.queue;
SQL
	q >/dev/null <<'SQL'
VACUUM ANALYZE;
CHECKPOINT;
SQL
}

# worker on|off: start or stop this database's mq worker (the relay), and
# wait until it is so.
worker() {
	local want=$1 n
	q >/dev/null <<<"ALTER SYSTEM SET mq.worker_enabled = $want;
SELECT pg_reload_conf();"
	for _ in $(seq 1 150); do
		n=$(qc "SELECT count(*) FROM pg_stat_activity
		        WHERE backend_type = 'mq worker' AND datname = current_database()")
		if { [ "$want" = on ] && [ "$n" -gt 0 ]; } || { [ "$want" = off ] && [ "$n" -eq 0 ]; }; then
			return 0
		fi
		sleep 0.1
	done
	echo "   the mq worker did not turn $want" >&2
	return 1
}

# load_outbox TOPIC N: N keyed outbox rows, in one transaction, without the
# outbox triggers (session_replication_role = replica): the check and key
# lock are the publisher's cost, measured in publish, and the trigger is
# what draws seq, so the rows take theirs here; the relay is woken by
load_outbox() {
	q >/dev/null <<SQL
SET session_replication_role = replica;
INSERT INTO mq.outbox (seq, aggregatetype, aggregateid, payload)
SELECT nextval('mq.outbox_seq'), '$1', 'k' || g, :'payload'::jsonb FROM generate_series(1, $2) g;
RESET session_replication_role;
VACUUM ANALYZE mq.outbox;
SQL
}

# load_topic TOPIC N: N records straight into the topic, laid out as the
# relay lays them out (key k<g>, Kafka's murmur2 partitioner, offsets in key
# order per partition, the current segment), far faster than relaying.
load_topic() {
	q >/dev/null <<SQL
WITH r AS (
    SELECT g, (mq.murmur2(convert_to('k' || g, 'UTF8')) & 2147483647) % t.partitions AS part, t.topic_id
    FROM mq.topic t, generate_series(1, $2) g WHERE t.topic_name = '$1')
INSERT INTO mq.topic_record (seg, topic_id, partition, "offset", key, payload, headers, message_id, published_at)
SELECT (SELECT max(seg) FROM mq.segment), r.topic_id, r.part,
       row_number() OVER (PARTITION BY r.part ORDER BY r.g) - 1,
       'k' || r.g, :'payload'::jsonb, NULL, gen_random_uuid(), clock_timestamp()
FROM r ORDER BY r.g;
UPDATE mq.topic_partition p SET next_offset = c.n
FROM (SELECT x.topic_id, x.partition, count(*) AS n FROM mq.topic_record x
      JOIN mq.topic t ON t.topic_id = x.topic_id AND t.topic_name = '$1'
      GROUP BY 1, 2) c
WHERE p.topic_id = c.topic_id AND p.partition = c.partition;
SQL
}

# load_pgq N: N events, one tick (hence one batch) per FETCH_BATCH events,
# each chunk its own transaction (as run.sh does for its PgQ batch read).
load_pgq() {
	q >/dev/null <<SQL
SELECT pgq.register_consumer('q', 'c');
SELECT set_config('bench.payload', :'payload', false) IS NULL;
DO \$\$
BEGIN
    FOR i IN 1 .. $(($1 / FETCH_BATCH)) LOOP
        PERFORM pgq.insert_event('q', 'ev', current_setting('bench.payload'))
        FROM generate_series(1, $FETCH_BATCH);
        COMMIT;
        PERFORM pgq.ticker('q');
        COMMIT;
    END LOOP;
END
\$\$;
VACUUM ANALYZE pgq.tick;
SQL
}

# ---------------------------------------------------------------------------
# Running pgbench
# ---------------------------------------------------------------------------

# pgbench_run LOG CLIENTS SCRIPT ARGS...
pgbench_run() {
	local log=$1 clients=$2 script=$3
	shift 3
	local jobs=$((clients < NPROC ? clients : NPROC))
	"$MQ_PGBIN/pgbench" -n -M prepared -c "$clients" -j "$jobs" \
		-D payload="$PAYLOAD" -f "$BENCH_DIR/$script" "$@" >"$log" 2>&1
}
# seconds the run took (transactions / tps, without connection time)
pgbench_elapsed() {
	local n tps
	n=$(pgbench_txns "$1")
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$1")
	[ -n "$n" ] && [ -n "$tps" ] && awk -v n="$n" -v t="$tps" 'BEGIN { if (t > 0) printf "%.3f", n / t }'
	return 0
}
pgbench_txns() { sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1"; }
pgbench_failed() {
	grep -q 'aborted\|^pgbench: error\|ERROR:' "$1" && return 0
	local f
	f=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$1")
	[ -n "$f" ] && [ "$f" != 0 ]
}
# run_checked TAG LOG CLIENTS SCRIPT ARGS...: pgbench_run, report a failure
run_checked() {
	local tag=$1 log=$2
	shift 2
	if ! pgbench_run "$log" "$@" || pgbench_failed "$log"; then
		echo "   $tag: FAILED, see $log" >&2
		sed -n '1,20p' "$log" >&2
		BENCH_FAILED=1
		return 1
	fi
}

pgss_reset() { if [ "$BENCH_PGSS" = 1 ]; then qc 'SELECT pg_stat_statements_reset()' >/dev/null; fi; }
pgss_save() {
	[ "$BENCH_PGSS" = 1 ] || return 0
	q -P pager=off -F ' | ' >"$BENCH_OUT/pgss_$1.txt" <<'SQL'
\pset tuples_only off
\pset format aligned
SELECT calls, round(total_exec_time::numeric, 1) AS exec_ms,
       round(mean_exec_time::numeric * 1000, 1) AS mean_us, rows,
       shared_blks_hit AS hit, shared_blks_read AS read, wal_records,
       left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query
FROM pg_stat_statements
ORDER BY total_exec_time DESC
LIMIT 20;
SQL
}

rate_of() { awk -v m="$1" -v e="$2" 'BEGIN { printf "%.0f", m / e }'; }

# ---------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------

# measure_publish SYSTEM ROUND (SYSTEM: mq, batch, outbox or pgq with the
# worker off; mq+relay or batch+relay with it on)
measure_publish() {
	local sys=$1 round=$2 tag="publish_${1/+/_}_r$2" script msgs elapsed rate backlog relayed
	case $sys in
	mq | outbox | batch) script=topic_publish100_$sys.sql ;;
	mq+relay | batch+relay) script=topic_publish100_${sys%+relay}.sql ;;
	pgq) script=topic_publish100_pgq.sql ;;
	esac
	reset_all
	if [ "$sys" = pgq ]; then
		qc "SELECT pgq.create_queue('q')" >/dev/null
	else
		qc "SELECT mq.create_topic('tp', 4)" >/dev/null
	fi
	run_checked "publish/$sys warm-up" "$BENCH_OUT/$tag.warmup.log" "$BENCH_CLIENTS" "$script" \
		-T "$BENCH_WARMUP" || { RESULT[publish:$sys]+="ERR "; return 0; }
	# start the timed run with an empty outbox and topic
	q >/dev/null <<<"TRUNCATE mq.outbox, mq.topic_record;
CHECKPOINT;"
	pgss_reset
	run_checked "publish/$sys" "$BENCH_OUT/$tag.log" "$BENCH_CLIENTS" "$script" \
		-T "$BENCH_SECONDS" || { RESULT[publish:$sys]+="ERR "; return 0; }
	backlog=$(qc "SELECT count(*) FROM mq.outbox")
	relayed=$(qc "SELECT count(*) FROM mq.topic_record")
	pgss_save "$tag"
	elapsed=$(pgbench_elapsed "$BENCH_OUT/$tag.log")
	msgs=$(($(pgbench_txns "$BENCH_OUT/$tag.log") * 100))
	rate=$(rate_of "$msgs" "$elapsed")
	RESULT[publish:$sys]+="$rate "
	if [ "$sys" = pgq ] || [ "${sys%+relay}" = "$sys" ]; then
		printf '   publish  %-12s %8s msgs/s  (%s msgs in %s s)\n' "$sys" "$rate" "$msgs" "$elapsed" >&2
	else
		NOTE[backlog:$sys]+="$backlog "
		NOTE[relayed:$sys]+="$(rate_of "$relayed" "$elapsed") "
		printf '   publish  %-12s %8s msgs/s  (%s msgs in %s s; relayed meanwhile %s, outbox backlog at the end %s)\n' \
			"$sys" "$rate" "$msgs" "$elapsed" "$relayed" "$backlog" >&2
	fi
}

# measure_relay ROUND (the worker is off)
measure_relay() {
	local round=$1 out relayed calls secs rate left
	reset_all
	qc "SELECT mq.create_topic('tp', 4)" >/dev/null
	load_outbox tp "$BENCH_RELAY_ROWS"
	qc CHECKPOINT >/dev/null
	pgss_reset
	if ! out=$(qc "CALL bench_relay_all($BENCH_RELAY_BATCH)" 2>"$BENCH_OUT/relay_r$round.log"); then
		echo "   relay: FAILED" >&2
		cat "$BENCH_OUT/relay_r$round.log" >&2
		BENCH_FAILED=1
		RESULT[relay:mq]+="ERR "
		return 0
	fi
	pgss_save "relay_r$round"
	IFS='|' read -r relayed calls secs <<<"$out"
	left=$(qc "SELECT count(*) FROM mq.outbox")
	rate=$(rate_of "$relayed" "$secs")
	RESULT[relay:mq]+="$rate "
	printf '   relay    mq     %8s msgs/s  (%s rows in %.3f s, %s calls of mq.relay(%s), %s left)\n' \
		"$rate" "$relayed" "$secs" "$calls" "$BENCH_RELAY_BATCH" "$left" >&2
	if [ "$relayed" -ne "$BENCH_RELAY_ROWS" ] || [ "$left" -ne 0 ]; then
		echo "   relay: relayed $relayed of $BENCH_RELAY_ROWS rows" >&2
		BENCH_FAILED=1
	fi
}

# measure_fetch SYSTEM ROUND (SYSTEM: mq, auto or pgq)
measure_fetch() {
	local sys=$1 round=$2 tag="fetch_${1}_r$2" script before after elapsed rate nb remaining
	nb=$((BENCH_FETCH_RECORDS / FETCH_BATCH))
	reset_all
	if [ "$sys" = mq ] || [ "$sys" = auto ]; then
		script=topic_fetch_mq.sql
		[ "$sys" = auto ] && script=topic_fetch_auto_mq.sql
		qc "SELECT mq.create_topic('tf', 4)" >/dev/null
		load_topic tf "$BENCH_FETCH_RECORDS"
		qc "SELECT mq.create_group('tf', 'g', 'earliest')" >/dev/null
		qc "VACUUM ANALYZE" >/dev/null
		remaining="SELECT sum(lag) FROM mq.consumer_lag WHERE topic_name = 'tf' AND group_name = 'g'"
	else
		script=read_pgq.sql
		qc "SELECT pgq.create_queue('q')" >/dev/null
		load_pgq "$BENCH_FETCH_RECORDS"
		remaining="SELECT pending_events FROM pgq.get_consumer_info('q', 'c')"
	fi
	qc CHECKPOINT >/dev/null
	# one batch per transaction: warm up on 10 % of the batches, time 90 % - 2
	run_checked "fetch/$sys warm-up" "$BENCH_OUT/$tag.warmup.log" 1 "$script" \
		-t $((nb / 10 > 0 ? nb / 10 : 1)) || { RESULT[fetch:$sys]+="ERR "; return 0; }
	qc CHECKPOINT >/dev/null
	pgss_reset
	before=$(qc "$remaining")
	run_checked "fetch/$sys" "$BENCH_OUT/$tag.log" 1 "$script" \
		-t $((nb - nb / 10 - 2)) || { RESULT[fetch:$sys]+="ERR "; return 0; }
	after=$(qc "$remaining")
	pgss_save "$tag"
	elapsed=$(pgbench_elapsed "$BENCH_OUT/$tag.log")
	rate=$(rate_of $((before - after)) "$elapsed")
	RESULT[fetch:$sys]+="$rate "
	printf '   fetch    %-6s %8s msgs/s  (%s msgs in %s s)\n' "$sys" "$rate" $((before - after)) "$elapsed" >&2
}

# measure_latency (the worker is on)
LAT_LINE=
measure_latency() {
	local n=$((LAT_RATE * LAT_SECONDS)) pid got t0 t1 waiting
	reset_all
	q >/dev/null <<'SQL'
SELECT mq.create_topic('tl', 4);
SELECT mq.create_group('tl', 'g', 'latest');
SQL
	"$MQ_PGBIN/pgbench" -n -M prepared -c 1 -T $((LAT_SECONDS + 120)) \
		-f "$BENCH_DIR/topic_latency_consume.sql" >"$BENCH_OUT/latency_consumer.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do
		waiting=$(qc "SELECT count(*) FROM pg_stat_activity
		              WHERE state = 'active' AND wait_event_type = 'Extension'
		                AND query LIKE '%mq.fetch(''tl''%'")
		[ "$waiting" -ge 1 ] && break
		sleep 0.1
	done
	t0=$(date +%s.%N)
	qc "CALL bench_produce($n, $LAT_RATE)" >/dev/null
	t1=$(date +%s.%N)
	for _ in $(seq 1 100); do
		got=$(qc "SELECT count(*) FROM bench_lat")
		[ "$got" -ge "$n" ] && break
		sleep 0.1
	done
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	if grep -q 'ERROR' "$BENCH_OUT/latency_consumer.log"; then
		echo "   latency: the consumer FAILED, see $BENCH_OUT/latency_consumer.log" >&2
		grep -m3 ERROR "$BENCH_OUT/latency_consumer.log" >&2
		BENCH_FAILED=1
	fi
	LAT_LINE=$(qc "
SELECT count(*), round($n / ($t1 - $t0), 1),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY total_ms)::numeric, 2),
       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY total_ms)::numeric, 2),
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY total_ms)::numeric, 2),
       round(max(total_ms)::numeric, 2),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY relay_ms)::numeric, 2),
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY relay_ms)::numeric, 2)
FROM bench_lat")
	IFS='|' read -r got _ _ _ _ _ _ _ <<<"$LAT_LINE"
	printf '   latency  mq     received|sent/s|p50|p90|p99|max ms|relay p50|relay p99: %s\n' "$LAT_LINE" >&2
	if [ "$got" -ne "$n" ]; then
		echo "   latency: $got of $n records fetched" >&2
		BENCH_FAILED=1
	fi
}

# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------

median() {
	local v
	for v in "$@"; do [ "$v" = ERR ] && { echo ERR; return; }; done
	[ $# -eq 0 ] && return
	printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
result() { local v; read -r -a v <<<"${RESULT[$1]:-}"; median "${v[@]}"; }
note() { local v; read -r -a v <<<"${NOTE[$1]:-}"; median "${v[@]}"; }
range() {
	local v
	read -r -a v <<<"${RESULT[$1]:-}"
	[ ${#v[@]} -eq 0 ] && { echo "–"; return; }
	printf '%s\n' "${v[@]}" | sort -n | awk '{ a[NR] = $1 } END { if (NR == 1) print a[1]; else print a[1] " – " a[NR] }'
}
cell() { if [ -n "$1" ]; then echo "$1"; else echo "–"; fi; }

# ratio A B TARGET: "A/B (≥ TARGET: met|MISSED)"
ratio() {
	local a=$1 b=$2 t=$3
	case "$a$b" in *ERR*) echo "–"; return ;; esac
	if [ -z "$a" ] || [ -z "$b" ]; then echo "–"; return; fi
	awk -v a="$a" -v b="$b" -v t="$t" 'BEGIN {
		r = a / b
		if (t == "") printf "%.2f", r
		else printf "%.2f (target ≥ %.2f: %s)", r, t, (r >= t ? "met" : sprintf("MISSED, at %.0f %% of it", r / t * 100))
	}'
}
# absolute VALUE TARGET le|ge UNIT
absolute() {
	local val=$1 t=$2 op=$3 unit=$4
	case "$val" in "" | ERR) echo "–"; return ;; esac
	awk -v v="$val" -v t="$t" -v op="$op" -v u="$unit" 'BEGIN {
		ok = (op == "ge") ? v >= t : v <= t
		f = (op == "ge") ? sprintf("at %.0f %% of it", v / t * 100) : sprintf("%.1f× it", v / t)
		printf "%s %s %s: %s", (op == "ge" ? "≥" : "≤"), t, u, (ok ? "met" : "MISSED, " f)
	}'
}

machine() {
	local os mem cpu
	os=$(lsb_release -ds 2>/dev/null || echo "Debian $(cat /etc/debian_version)")
	mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
	echo "date:     $(date '+%Y-%m-%d %H:%M %Z')"
	echo "machine:  $NPROC CPUs ($cpu), $mem RAM, $os"
	echo "server:   PostgreSQL $(qc 'SHOW server_version'), mq $(qc "SELECT extversion FROM pg_extension WHERE extname = 'mq'"), PgQ $(qc "SELECT extversion FROM pg_extension WHERE extname = 'pgq'")"
	echo "settings: shared_buffers $(qc 'SHOW shared_buffers'), synchronous_commit $(qc 'SHOW synchronous_commit'), fsync $(qc 'SHOW fsync'), autovacuum_naptime $(qc 'SHOW autovacuum_naptime'), pg_stat_statements $([ "$BENCH_PGSS" = 1 ] && echo on || echo off)"
	echo "runs:     publish ${BENCH_SECONDS} s after ${BENCH_WARMUP} s warm-up, $BENCH_CLIENTS clients; relay $BENCH_RELAY_ROWS rows; fetch $BENCH_FETCH_RECORDS records; median of $BENCH_ROUNDS round(s); pgbench -n -M prepared"
	echo "payload:  $(echo "$PAYLOAD_BYTES" | awk -F'|' '{ print $1 " bytes of JSON, " $2 " bytes as jsonb" }')"
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

want() { case " $BENCH_ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s)
mq_log "benchmarking topics: logs in $BENCH_OUT"
worker on

if want publish; then
	mq_log "publish 100/txn"
	# like for like: PgQ's ticker is not running, so neither is the relay
	worker off
	systems=(mq pgq batch outbox)
	for round in $(seq 1 "$BENCH_ROUNDS"); do
		for i in 0 1 2 3; do
			measure_publish "${systems[$(((i + round - 1) % 4))]}" "$round"
		done
	done
	# end to end: the worker relays to the topic while the clients publish
	worker on
	mq_log "publish 100/txn with the relay running"
	systems=(batch+relay mq+relay)
	for round in $(seq 1 "$BENCH_ROUNDS"); do
		for i in 0 1; do
			measure_publish "${systems[$(((i + round - 1) % 2))]}" "$round"
		done
	done
fi

if want relay; then
	mq_log "relay (worker off)"
	worker off
	for round in $(seq 1 "$BENCH_ROUNDS"); do measure_relay "$round"; done
	worker on
fi

if want fetch; then
	mq_log "group fetch + commit vs PgQ batch read"
	systems=(mq pgq auto)
	for round in $(seq 1 "$BENCH_ROUNDS"); do
		for i in 0 1 2; do
			measure_fetch "${systems[$(((i + round - 1) % 3))]}" "$round"
		done
	done
fi

if want latency; then
	mq_log "publish -> fetch latency"
	measure_latency
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
T_END=$(date +%s)

{
	echo
	machine
	echo "load avg: $LOAD_START at start, $LOAD_END at end (1/5/15 min); ran $((T_END - T_START)) s"
	echo
	echo "| workload | mq | PgQ | mq/PgQ or target |"
	echo "|---|---:|---:|---|"
	if want publish; then
		p=$(result publish:pgq)
		m=$(result publish:mq)
		o=$(result publish:outbox)
		b=$(result publish:batch)
		echo "| publish 100/txn, \`mq.publish\` ×100 ($BENCH_CLIENTS clients), msgs/s | $(cell "$m") | $(cell "$p") | $(ratio "$m" "$p" 2.00) |"
		echo "| publish 100/txn, one \`mq.publish_batch\` of 100 ($BENCH_CLIENTS clients), msgs/s | $(cell "$b") | $(cell "$p") | $(ratio "$b" "$p" 2.00) |"
		echo "| publish 100/txn, one \`INSERT INTO mq.outbox\` ($BENCH_CLIENTS clients), msgs/s | $(cell "$o") | $(cell "$p") | $(ratio "$o" "$p" 2.00) |"
		br=$(result publish:batch+relay)
		mr=$(result publish:mq+relay)
		echo "| the same, relay running: \`mq.publish_batch\` / \`mq.publish\` ×100, msgs/s | $(cell "$br") / $(cell "$mr") | $(cell "$p") | $(ratio "$br" "$p" 2.00) / $(ratio "$mr" "$p" 2.00) |"
	fi
	if want relay; then
		r=$(result relay:mq)
		echo "| relay, \`mq.relay($BENCH_RELAY_BATCH)\` until empty, worker off, msgs/s | $(cell "$r") | – | $(absolute "$r" 50000 ge msgs/s) |"
	fi
	if want fetch; then
		m=$(result fetch:mq)
		p=$(result fetch:pgq)
		a=$(result fetch:auto)
		echo "| group fetch $FETCH_BATCH + commit vs PgQ batch read (1 consumer), msgs/s | $(cell "$m") | $(cell "$p") | $(ratio "$m" "$p" 1.00) |"
		echo "| group fetch $FETCH_BATCH with \`auto_commit\` vs PgQ batch read (1 consumer), msgs/s | $(cell "$a") | $(cell "$p") | $(ratio "$a" "$p" 1.00) |"
	fi
	if want latency && [ -n "$LAT_LINE" ]; then
		IFS='|' read -r _ _ l50 _ l99 _ _ _ <<<"$LAT_LINE"
		echo "| publish-commit → fetch latency, p50 / p99 ms ($LAT_RATE/s) | $l50 / $l99 | – | p50 $(absolute "$l50" 5 le ms) |"
	fi
	echo
	if want publish || want relay || want fetch; then
		echo "Rounds (msgs/s, min – max):"
		echo
		echo "| workload | mq | PgQ |"
		echo "|---|---|---|"
		if want publish; then
			echo "| publish, mq.publish | $(range publish:mq) | $(range publish:pgq) |"
			echo "| publish, mq.publish_batch | $(range publish:batch) | |"
			echo "| publish, INSERT INTO mq.outbox | $(range publish:outbox) | |"
			echo "| publish + relay, mq.publish_batch | $(range publish:batch+relay) | |"
			echo "| publish + relay, mq.publish | $(range publish:mq+relay) | |"
		fi
		if want relay; then echo "| relay | $(range relay:mq) | – |"; fi
		if want fetch; then
			echo "| group fetch + commit / PgQ batch read | $(range fetch:mq) | $(range fetch:pgq) |"
			echo "| group fetch with auto_commit | $(range fetch:auto) | |"
		fi
		echo
	fi
	if want publish; then
		echo "Relay during publish (the worker, sharing the CPUs with the publishers; medians):"
		echo "mq.publish_batch: relayed $(note relayed:batch+relay) msgs/s, outbox backlog at the end $(note backlog:batch+relay) rows;" \
			"mq.publish: relayed $(note relayed:mq+relay) msgs/s, backlog $(note backlog:mq+relay) rows."
	fi
	if want latency && [ -n "$LAT_LINE" ]; then
		echo "Latency (ms): received|sent/s|p50|p90|p99|max|relay p50|relay p99 = $LAT_LINE"
		echo "  (relay = the relay's published_at − the publisher's timestamp)"
	fi
	echo
	echo "logs: $BENCH_OUT"
	if [ "$BENCH_PGSS" = 1 ]; then echo "pg_stat_statements: $BENCH_OUT/pgss_*.txt"; fi
} | tee "$BENCH_OUT/summary.txt"

if [ "$BENCH_FAILED" != 0 ]; then
	echo "some workloads FAILED" >&2
	exit 1
fi
exit 0
