#!/usr/bin/env bash
# test/bench/run.sh: mq against bare SQL and PgQ, side by side, in one run.
#
#   bash test/bench/run.sh                   build, install, run (10 s/run)
#   MQ_SKIP_BUILD=1 BENCH_SECONDS=3 bash test/bench/run.sh
#
# Starts one throwaway cluster (test/lib.sh), creates the mq and pgq
# extensions and runs each workload with pgbench for mq, then right after
# for its references.  Every run gets a fresh queue/table (everything is
# dropped, vacuumed and checkpointed first), a short warm-up, and the same
# protocol (-M prepared), payload and client count.  See doc/benchmarks.md.
#
# Environment (all optional):
#   BENCH_SECONDS   timed seconds per run                    (10)
#   BENCH_CLIENTS   clients for send 1/txn and consume       (8)
#   BENCH_BATCH_CLIENTS  clients for send 100/txn   (BENCH_CLIENTS/2)
#   BENCH_WARMUP    warm-up seconds before each timed run    (2)
#   BENCH_ROUNDS    repeat every run, report the median      (1)
#   BENCH_BACKLOG   messages preloaded for consume  (max(200k, 70k/s x run))
#   BENCH_PGQ_EVENTS events preloaded for the PgQ batch read (400000)
#   BENCH_ONLY      run only these workloads: send1 send100 consume pgqread
#   BENCH_PGSS=1    load pg_stat_statements (track = all) and save the top
#                   statements of every timed run (adds overhead to all runs)
#   BENCH_OUT       directory for pgbench logs (a new /tmp/mq-bench.* dir)
#   MQ_SKIP_BUILD=1 use the mq that is already installed
#
# Exits 0 when every run completed, whether or not the targets were met;
# non-zero when a workload failed.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$BENCH_DIR/../lib.sh"

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_CLIENTS=${BENCH_CLIENTS:-8}
BENCH_BATCH_CLIENTS=${BENCH_BATCH_CLIENTS:-$((BENCH_CLIENTS / 2 > 0 ? BENCH_CLIENTS / 2 : 1))}
BENCH_WARMUP=${BENCH_WARMUP:-2}
BENCH_ROUNDS=${BENCH_ROUNDS:-1}
BENCH_BACKLOG=${BENCH_BACKLOG:-$(((BENCH_SECONDS + BENCH_WARMUP) * 70000 > 200000 ? (BENCH_SECONDS + BENCH_WARMUP) * 70000 : 200000))}
BENCH_PGQ_EVENTS=${BENCH_PGQ_EVENTS:-400000}
BENCH_ONLY=${BENCH_ONLY:-send1 send100 consume pgqread}
BENCH_PGSS=${BENCH_PGSS:-0}
BENCH_OUT=${BENCH_OUT:-$(mktemp -d /tmp/mq-bench.XXXXXX)}
mkdir -p "$BENCH_OUT"

# shellcheck source=common.sh
source "$BENCH_DIR/common.sh"
PGQ_TICK_EVENTS=500            # events per PgQ batch (PgQ's ticker_max_count default)

if [ "$BENCH_PGSS" = 1 ]; then
	# shellcheck disable=SC2089 # the quotes are for postgresql.conf
	MQ_EXTRA_CONF="shared_preload_libraries = 'mq,pg_stat_statements'
pg_stat_statements.track = all
pg_stat_statements.track_planning = on
pg_stat_statements.max = 1000
${MQ_EXTRA_CONF:-}"
	# shellcheck disable=SC2090
	export MQ_EXTRA_CONF
fi

mq_setup

q() { PGOPTIONS="-c client_min_messages=warning" mq_psql -At -v payload="$PAYLOAD" "$@"; }
# qc SQL: one statement through psql's lexer (so :'payload' is interpolated)
qc() { q <<<"$1"; }

q <<'SQL'
CREATE EXTENSION mq;
CREATE EXTENSION pgq;
SQL
if [ "$BENCH_PGSS" = 1 ]; then qc 'CREATE EXTENSION pg_stat_statements'; fi

# send_batch's argument: the payload 100 times, as a jsonb[] literal.
PAYLOADS=$(qc "SELECT array_fill(:'payload'::jsonb, ARRAY[100])::text")
PAYLOAD_BYTES=$(qc "SELECT octet_length(:'payload'), pg_column_size(:'payload'::jsonb)")

NPROC=$(nproc)
BENCH_FAILED=0
declare -A RESULT       # "workload:system" -> space-separated msgs/s of every round

# ---------------------------------------------------------------------------
# Set-up and clean-up
# ---------------------------------------------------------------------------

# reset_all: drop every queue and table of every system, vacuum, checkpoint.
# mq's tables are emptied with TRUNCATE (all of schema mq but the queue
# catalog, whose rows drop_queue deletes), so no run inherits bloat.
reset_all() {
	q <<'SQL'
SELECT count(mq.drop_queue(queue_name)) FROM mq.queue WHERE dlq_owner_id IS NULL;  -- a DLQ goes with its queue
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'mq' AND c.relkind = 'r' AND c.relname <> 'queue'
    LOOP
        EXECUTE format('TRUNCATE %s', t);
    END LOOP;
END
$$;
DROP TABLE IF EXISTS bare;
SELECT count(pgq.drop_queue(queue_name, true)) FROM pgq.queue;
SQL
	q >/dev/null <<'SQL'
VACUUM ANALYZE;
CHECKPOINT;
SQL
}

# prepare SYSTEM WORKLOAD: create the queue/table and preload the backlog.
prepare() {
	local sys=$1 wl=$2
	case $sys in
	mq)
		qc "SELECT mq.create_queue('b')" >/dev/null
		if [ "$wl" = consume ]; then
			qc "SELECT count(*) FROM mq.send_batch('b',
			        array_fill(:'payload'::jsonb, ARRAY[$BENCH_BACKLOG]))" >/dev/null
		fi
		qc "VACUUM ANALYZE mq.queue_message" ;;
	bare)
		q <<<"$BARE_DDL"
		if [ "$wl" = consume ]; then
			qc "INSERT INTO bare (vt, read_ct, enqueued_at, payload)
			      SELECT now(), 0, now(), :'payload'::jsonb
			      FROM generate_series(1, $BENCH_BACKLOG)"
		fi
		qc "VACUUM ANALYZE bare" ;;
	pgq)
		qc "SELECT pgq.create_queue('q')" >/dev/null
		if [ "$wl" = pgqread ]; then
			# A log of BENCH_PGQ_EVENTS events, one tick (hence one batch)
			# per PGQ_TICK_EVENTS events, each chunk its own transaction.
			qc "SELECT pgq.register_consumer('q', 'c')" >/dev/null
			q <<SQL
SELECT set_config('bench.payload', :'payload', false) IS NULL;
DO \$\$
BEGIN
    FOR i IN 1 .. $((BENCH_PGQ_EVENTS / PGQ_TICK_EVENTS)) LOOP
        PERFORM pgq.insert_event('q', 'ev', current_setting('bench.payload'))
        FROM generate_series(1, $PGQ_TICK_EVENTS);
        COMMIT;
        PERFORM pgq.ticker('q');
        COMMIT;
    END LOOP;
END
\$\$;
SQL
		fi
		qc "VACUUM ANALYZE pgq.tick"
		;;
	esac
}

# remaining SYSTEM WORKLOAD: what is left to consume.
remaining() {
	case $1 in
	mq) qc "SELECT count(*) FROM mq.queue_message" ;;
	bare) qc "SELECT count(*) FROM bare" ;;
	pgq) qc "SELECT pending_events FROM pgq.get_consumer_info('q', 'c')" ;;
	esac
}

# ---------------------------------------------------------------------------
# Running pgbench
# ---------------------------------------------------------------------------

# pgbench_run LOG CLIENTS SCRIPT ARGS...: run pgbench, log its output.
pgbench_run() {
	local log=$1 clients=$2 script=$3
	shift 3
	local jobs=$((clients < NPROC ? clients : NPROC))
	"$MQ_PGBIN/pgbench" -n -M prepared -c "$clients" -j "$jobs" \
		-D payload="$PAYLOAD" -D payloads="$PAYLOADS" \
		-f "$BENCH_DIR/$script" "$@" >"$log" 2>&1
}

# pgbench_elapsed LOG: seconds the run took (transactions / tps, so without
# connection time); prints nothing when the log has no result.
pgbench_elapsed() {
	local n tps
	n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1")
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$1")
	[ -n "$n" ] && [ -n "$tps" ] && awk -v n="$n" -v t="$tps" 'BEGIN { if (t > 0) printf "%.3f", n / t }'
	return 0
}

pgbench_txns() { sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1"; }

# pgbench_failed LOG: true if the run went wrong.
pgbench_failed() {
	grep -q 'aborted\|^pgbench: error\|ERROR:' "$1" && return 0
	local f
	f=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$1")
	[ -n "$f" ] && [ "$f" != 0 ]
}

# script_of SYSTEM WORKLOAD, clients_of WORKLOAD
script_of() {
	case $2 in
	send1) echo "send1_$1.sql" ;;
	send100) echo "send100_$1.sql" ;;
	consume) echo "consume_$1.sql" ;;
	pgqread) echo "read_pgq.sql" ;;
	esac
}
clients_of() {
	case $1 in
	send1 | consume) echo "$BENCH_CLIENTS" ;;
	send100) echo "$BENCH_BATCH_CLIENTS" ;;
	pgqread) echo 1 ;;
	esac
}

pgss_reset() { if [ "$BENCH_PGSS" = 1 ]; then qc 'SELECT pg_stat_statements_reset()' >/dev/null; fi; }
pgss_save() {
	[ "$BENCH_PGSS" = 1 ] || return 0
	q -P pager=off -F ' | ' >"$BENCH_OUT/pgss_$1.txt" <<'SQL'
\pset tuples_only off
\pset format aligned
SELECT calls, plans, round(total_plan_time::numeric, 1) AS plan_ms,
       round(total_exec_time::numeric, 1) AS exec_ms,
       round(mean_exec_time::numeric * 1000, 1) AS mean_us,
       rows, shared_blks_hit AS hit, shared_blks_read AS read,
       shared_blks_dirtied AS dirtied, wal_records, wal_fpi,
       left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query
FROM pg_stat_statements
ORDER BY total_exec_time + total_plan_time DESC
LIMIT 15;
SQL
}

# measure WORKLOAD SYSTEM ROUND: one fresh, warmed-up, timed run.
measure() {
	local wl=$1 sys=$2 round=$3
	local tag="${wl}_${sys}_r${round}" script clients before after msgs elapsed rate
	script=$(script_of "$sys" "$wl")
	clients=$(clients_of "$wl")

	reset_all >/dev/null
	prepare "$sys" "$wl" >/dev/null

	# warm-up, then a checkpoint so the timed run starts from the same state
	local warm=(-T "$BENCH_WARMUP") timed=(-T "$BENCH_SECONDS")
	if [ "$wl" = pgqread ]; then
		# one batch per transaction: read a fixed number of batches
		local nb=$((BENCH_PGQ_EVENTS / PGQ_TICK_EVENTS))
		warm=(-t $((nb / 10 > 0 ? nb / 10 : 1)))
		timed=(-t $((nb - nb / 10 - 2)))
	fi
	if ! pgbench_run "$BENCH_OUT/$tag.warmup.log" "$clients" "$script" "${warm[@]}" ||
		pgbench_failed "$BENCH_OUT/$tag.warmup.log"; then
		echo "   $wl/$sys: warm-up FAILED, see $BENCH_OUT/$tag.warmup.log" >&2
		sed -n '1,20p' "$BENCH_OUT/$tag.warmup.log" >&2
		BENCH_FAILED=1
		RESULT[$wl:$sys]+="ERR "
		return 0
	fi
	qc CHECKPOINT
	pgss_reset

	before=$(remaining "$sys")
	if ! pgbench_run "$BENCH_OUT/$tag.log" "$clients" "$script" "${timed[@]}" ||
		pgbench_failed "$BENCH_OUT/$tag.log"; then
		echo "   $wl/$sys: FAILED, see $BENCH_OUT/$tag.log" >&2
		sed -n '1,20p' "$BENCH_OUT/$tag.log" >&2
		BENCH_FAILED=1
		RESULT[$wl:$sys]+="ERR "
		return 0
	fi
	after=$(remaining "$sys")
	pgss_save "$tag"

	elapsed=$(pgbench_elapsed "$BENCH_OUT/$tag.log")
	case $wl in
	send1) msgs=$(pgbench_txns "$BENCH_OUT/$tag.log") ;;
	send100) msgs=$(($(pgbench_txns "$BENCH_OUT/$tag.log") * 100)) ;;
	consume | pgqread) msgs=$((before - after)) ;;
	esac
	rate=$(awk -v m="$msgs" -v e="$elapsed" 'BEGIN { printf "%.0f", m / e }')
	RESULT[$wl:$sys]+="$rate "
	printf '   %-8s %-5s %9s msgs/s  (%s msgs in %s s, %s clients)\n' \
		"$wl" "$sys" "$rate" "$msgs" "$elapsed" "$clients" >&2
	if [ "$wl" = consume ] && [ "$after" -eq 0 ]; then
		echo "   WARNING: $sys ran out of messages; raise BENCH_BACKLOG" >&2
	fi
}

# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------

# median of the numbers given; ERR if any run failed; empty if none
median() {
	local v
	for v in "$@"; do [ "$v" = ERR ] && { echo ERR; return; }; done
	[ $# -eq 0 ] && return
	printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

result() { local key=$1 v; read -r -a v <<<"${RESULT[$key]:-}"; median "${v[@]}"; }

# ratio A B [TARGET]: "A/B", with the target and whether it was met
ratio() {
	local a=$1 b=$2 target=${3:-}
	case "$a$b" in *ERR*) echo "–"; return ;; esac
	if [ -z "$a" ] || [ -z "$b" ]; then echo "–"; return; fi
	awk -v a="$a" -v b="$b" -v t="$target" 'BEGIN {
		r = a / b
		if (t == "") printf "%.2f", r
		else printf "%.2f (target ≥ %.2f: %s)", r, t, (r >= t ? "met" : "MISSED")
	}'
}

cell() { if [ -n "$1" ]; then echo "$1"; else echo "–"; fi; }

machine() {
	local os mem cpu
	os=$(lsb_release -ds 2>/dev/null || echo "Debian $(cat /etc/debian_version)")
	mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
	echo "date:     $(date '+%Y-%m-%d %H:%M %Z')"
	echo "machine:  $NPROC CPUs ($cpu), $mem RAM, $os"
	echo "server:   PostgreSQL $(qc 'SHOW server_version'), mq $(qc "SELECT extversion FROM pg_extension WHERE extname = 'mq'"), PgQ $(qc "SELECT extversion FROM pg_extension WHERE extname = 'pgq'")"
	echo "settings: shared_buffers $(qc 'SHOW shared_buffers'), synchronous_commit $(qc 'SHOW synchronous_commit'), fsync $(qc 'SHOW fsync'), pg_stat_statements $([ "$BENCH_PGSS" = 1 ] && echo on || echo off)"
	echo "pgbench:  -n -M prepared, ${BENCH_SECONDS} s timed after ${BENCH_WARMUP} s warm-up, median of $BENCH_ROUNDS round(s), -j = min(clients, $NPROC)"
	echo "payload:  $(echo "$PAYLOAD_BYTES" | awk -F'|' '{ print $1 " bytes of JSON, " $2 " bytes as jsonb" }')"
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
mq_log "benchmarking: ${BENCH_SECONDS}s per run, logs in $BENCH_OUT"

for wl in send1 send100 consume pgqread; do
	case " $BENCH_ONLY " in *" $wl "*) ;; *) continue ;; esac
	case $wl in
	pgqread) systems=(pgq) ;;
	consume) systems=(mq bare) ;;
	*) systems=(mq bare pgq) ;;
	esac
	mq_log "$wl"
	for round in $(seq 1 "$BENCH_ROUNDS"); do
		# mq first in round 1, then rotate so no system always goes first
		n=${#systems[@]}
		for i in $(seq 0 $((n - 1))); do
			measure "$wl" "${systems[$(((i + round - 1) % n))]}" "$round"
		done
	done
done

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

{
	echo
	machine
	echo "load avg: $LOAD_START at start, $LOAD_END at end (1/5/15 min)"
	echo
	echo "| workload | mq msgs/s | bare msgs/s | PgQ msgs/s | mq/bare | mq/PgQ |"
	echo "|---|---:|---:|---:|---|---:|"
	for wl in send1 send100 consume pgqread; do
		case " $BENCH_ONLY " in *" $wl "*) ;; *) continue ;; esac
		m=$(result "$wl:mq")
		b=$(result "$wl:bare")
		p=$(result "$wl:pgq")
		case $wl in
		send1) name="send 1/txn ($BENCH_CLIENTS clients)" target=0.90 ;;
		send100) name="send 100/txn ($BENCH_BATCH_CLIENTS clients)" target=1.00 ;;
		consume) name="consume: poll 10 + ack ($BENCH_CLIENTS clients)" target=1.20 ;;
		pgqread) name="PgQ batch read (1 consumer, ${PGQ_TICK_EVENTS}-event batches)" target= ;;
		esac
		echo "| $name | $(cell "$m") | $(cell "$b") | $(cell "$p") | $(ratio "$m" "$b" "$target") | $(ratio "$m" "$p") |"
	done
	echo
	echo "pgbench logs: $BENCH_OUT"
	if [ "$BENCH_PGSS" = 1 ]; then echo "pg_stat_statements: $BENCH_OUT/pgss_*.txt"; fi
} | tee "$BENCH_OUT/summary.txt"

if [ "$BENCH_FAILED" != 0 ]; then
	echo "some workloads FAILED" >&2
	exit 1
fi
exit 0
