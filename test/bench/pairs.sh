#!/usr/bin/env bash
# test/bench/pairs.sh: mq against the bare-SQL reference in short interleaved
# pairs, for ratios near 1.0 on a noisy machine.
#
#   MQ_SKIP_BUILD=1 bash test/bench/pairs.sh                  send 100/txn, 8 pairs
#   MQ_SKIP_BUILD=1 PAIRS_WORKLOAD=send1 bash test/bench/pairs.sh
#
# run.sh runs each system for 10 s, one after the other; when the machine's
# speed drifts by 10-30 % within minutes, a ratio near 1.0 then depends on
# which system ran in the faster minute.  Here the two systems alternate in
# runs of a few seconds on one cluster, each pair is a ratio of neighbours,
# and the median of the pairs is reported.  The tables are emptied once at
# the start and grow through the pairs, as a queue without consumers does.
#
# Environment (all optional):
#   PAIRS_WORKLOAD  send100 (one send_batch of 100 vs a 100-row INSERT, 4
#                   clients) or send1 (one message per transaction, 8
#                   clients)                                    (send100)
#   PAIRS           number of pairs                              (8)
#   PAIRS_SECONDS   seconds per run                              (3)
#   PAIRS_ROLE      run the clients as this new role, which holds mq's
#                   send on the queue and INSERT on the bare table, rather
#                   than as the superuser (measures the privilege checks)
#   MQ_SKIP_BUILD=1 use the mq that is already installed
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$BENCH_DIR/../lib.sh"

PAIRS_WORKLOAD=${PAIRS_WORKLOAD:-send100}
PAIRS=${PAIRS:-8}
PAIRS_SECONDS=${PAIRS_SECONDS:-3}
case $PAIRS_WORKLOAD in
send100) CLIENTS=4 ;;
send1) CLIENTS=8 ;;
*)
	echo "PAIRS_WORKLOAD must be send100 or send1" >&2
	exit 2
	;;
esac

# shellcheck source=common.sh
source "$BENCH_DIR/common.sh"

mq_setup

q() { PGOPTIONS="-c client_min_messages=warning" mq_psql -At -v payload="$PAYLOAD" "$@"; }
q >/dev/null <<SQL
CREATE EXTENSION mq;
SELECT mq.create_queue('b');
$BARE_DDL
VACUUM ANALYZE;
CHECKPOINT;
SQL
PAYLOADS=$(q <<<"SELECT array_fill(:'payload'::jsonb, ARRAY[100])::text")
BENCH_USER=()
if [ -n "${PAIRS_ROLE:-}" ]; then
	q >/dev/null <<SQL
CREATE ROLE "$PAIRS_ROLE" LOGIN;
GRANT USAGE ON SCHEMA mq TO "$PAIRS_ROLE";
SELECT mq.grant('b', '$PAIRS_ROLE', '{send}');
GRANT INSERT ON bare TO "$PAIRS_ROLE";
GRANT USAGE ON SEQUENCE bare_id_seq TO "$PAIRS_ROLE";
SQL
	BENCH_USER=(-U "$PAIRS_ROLE")
fi

# run SYSTEM: messages per second of one run
run() {
	local script tps
	script=${PAIRS_WORKLOAD}_$1.sql
	tps=$("$MQ_PGBIN/pgbench" "${BENCH_USER[@]}" -n -M prepared -c "$CLIENTS" -j 2 -T "$PAIRS_SECONDS" \
		-D payload="$PAYLOAD" -D payloads="$PAYLOADS" -f "$BENCH_DIR/$script" 2>&1 |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
	if [ -z "$tps" ]; then
		echo "pgbench failed for $1" >&2
		exit 1
	fi
	if [ "$PAIRS_WORKLOAD" = send100 ]; then
		awk -v t="$tps" 'BEGIN { printf "%.0f", t * 100 }'
	else
		awk -v t="$tps" 'BEGIN { printf "%.0f", t }'
	fi
}

mq_log "$PAIRS_WORKLOAD: $PAIRS pairs of $PAIRS_SECONDS s runs, $CLIENTS clients, mq then bare, then bare then mq"
ratios=()
for i in $(seq 1 "$PAIRS"); do
	# alternate which system goes first
	if [ $((i % 2)) -eq 1 ]; then
		m=$(run mq)
		b=$(run bare)
	else
		b=$(run bare)
		m=$(run mq)
	fi
	r=$(awk -v m="$m" -v b="$b" 'BEGIN { printf "%.3f", m / b }')
	ratios+=("$r")
	printf '   pair %2d  mq %8s msgs/s  bare %8s msgs/s  mq/bare %s\n' "$i" "$m" "$b" "$r"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n |
	awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }')
echo "$PAIRS_WORKLOAD mq/bare: median of $PAIRS pairs $median (min $(printf '%s\n' "${ratios[@]}" | sort -n | head -1), max $(printf '%s\n' "${ratios[@]}" | sort -n | tail -1))"
