#!/usr/bin/env bash
# test/bench/twophase.sh: what a send costs in a prepared transaction.
#
#   MQ_SKIP_BUILD=1 bash test/bench/twophase.sh
#
# One message per transaction, then PREPARE TRANSACTION and COMMIT
# PREPARED (a two-phase coordinator's round trip), for mq, the bare-SQL
# reference and PgQ, side by side, alternated TWOPHASE_ROUNDS times;
# prints the median transactions per second of each and mq's ratios.
# mq writes what the transaction owes (its counter move, the wake-up) into
# mq.prepared_effect at PREPARE and deletes it at COMMIT PREPARED; the
# others write nothing extra.
#
# Environment (all optional):
#   TWOPHASE_CLIENTS  pgbench clients (max_prepared_transactions is 10)  (4)
#   TWOPHASE_SECONDS  seconds per run                                   (8)
#   TWOPHASE_ROUNDS   alternations                                      (3)
#   MQ_SKIP_BUILD=1   use the mq that is already installed
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$BENCH_DIR/../lib.sh"
# shellcheck source=common.sh
source "$BENCH_DIR/common.sh"
CLIENTS=${TWOPHASE_CLIENTS:-4}
SECONDS_PER_RUN=${TWOPHASE_SECONDS:-8}
ROUNDS=${TWOPHASE_ROUNDS:-3}

mq_setup
trap mq_stop EXIT
q() { PGOPTIONS="-c client_min_messages=warning" mq_psql -At "$@"; }
q >/dev/null <<SQL
CREATE EXTENSION mq;
CREATE EXTENSION pgq;
SELECT mq.create_queue('b');
SELECT pgq.create_queue('q');
$BARE_DDL
SQL

declare -A TPS
run() { # system
	local tps
	tps=$("$MQ_PGBIN/pgbench" -n -M simple -c "$CLIENTS" -j "$(nproc)" -T "$SECONDS_PER_RUN" \
		-D payload="'$PAYLOAD'" -f "$BENCH_DIR/twophase_$1.sql" 2>&1 |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
	TPS[$1]="${TPS[$1]:-} ${tps%.*}"
	q -c "CHECKPOINT" >/dev/null
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

for r in $(seq 1 "$ROUNDS"); do
	mq_log "round $r of $ROUNDS"
	for s in bare mq pgq; do run "$s"; done
done
mq=$(median "${TPS[mq]}")
bare=$(median "${TPS[bare]}")
pgq=$(median "${TPS[pgq]}")
echo "twophase: $CLIENTS clients, ${SECONDS_PER_RUN}s x $ROUNDS; tps: mq $mq (${TPS[mq]# }), bare $bare (${TPS[bare]# }), pgq $pgq (${TPS[pgq]# })"
awk -v m="$mq" -v b="$bare" -v p="$pgq" 'BEGIN { printf "twophase: mq/bare %.3f, mq/pgq %.3f\n", m / b, m / p }'
left=$(q -c "SELECT count(*) FROM mq.prepared_effect")
echo "twophase: rows left in mq.prepared_effect: $left"
