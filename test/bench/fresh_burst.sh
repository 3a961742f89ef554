#!/usr/bin/env bash
# test/bench/fresh_burst.sh: a burst on a freshly created, never-analyzed
# queue table.
#
#   MQ_SKIP_BUILD=1 bash test/bench/fresh_burst.sh
#
# The hot statements are saved plans made once per backend; a backend that
# starts consuming right after CREATE EXTENSION plans them while
# mq.queue_message has no statistics.  Here autovacuum is off for the table
# (it stays never analyzed for the whole run), BURST_BACKLOG messages are
# already waiting (a burst that came before the consumers), 8 consumers
# (poll 10, batch ack) start, and producers send at BURST_RATE msgs/s for
# BURST_SECONDS.  Reports what was sent and consumed per second and the
# backlog left; consumers that keep up drain it.  With plans
# that scan the whole queue through the ready index (mq 0.1's batch ack on
# a never-analyzed table), the backlog grows with every second.
#
# Environment (all optional):
#   BURST_RATE      messages per second sent                 (4800)
#   BURST_SECONDS   seconds of the burst                      (15)
#   BURST_CONSUMERS consumer clients                          (8)
#   BURST_BACKLOG   messages waiting when the consumers start (100000)
#   MQ_SKIP_BUILD=1 use the mq that is already installed
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$BENCH_DIR/../lib.sh"
# shellcheck source=common.sh
source "$BENCH_DIR/common.sh"
BURST_RATE=${BURST_RATE:-4800}
BURST_SECONDS=${BURST_SECONDS:-15}
BURST_CONSUMERS=${BURST_CONSUMERS:-8}
BURST_BACKLOG=${BURST_BACKLOG:-100000}

mq_setup
q() { PGOPTIONS="-c client_min_messages=warning" mq_psql -At "$@"; }
q >/dev/null <<SQL
CREATE EXTENSION mq;
ALTER TABLE mq.queue_message SET (autovacuum_enabled = false);
SELECT mq.create_queue('b');
SELECT count(*) FROM mq.send_batch('b', array_fill('$PAYLOAD'::jsonb, ARRAY[$BURST_BACKLOG]));
SQL

out=$(mktemp -d /tmp/mq-burst.XXXXXX)
trap 'rm -rf "$out"; mq_stop' EXIT
mq_log "burst: $BURST_RATE msgs/s for $BURST_SECONDS s, $BURST_CONSUMERS consumers, table never analyzed"
"$MQ_PGBIN/pgbench" -n -M prepared -c "$BURST_CONSUMERS" -j 2 -T "$((BURST_SECONDS + 2))" \
	-f "$BENCH_DIR/consume_mq.sql" >"$out/consume.log" 2>&1 &
cons=$!
sleep 1
"$MQ_PGBIN/pgbench" -n -M prepared -c 4 -j 2 -T "$BURST_SECONDS" -R "$BURST_RATE" \
	-D payload="$PAYLOAD" -f "$BENCH_DIR/send1_mq.sql" >"$out/send.log" 2>&1
wait $cons || true
sent=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out/send.log")
left=$(q -c "SELECT count(*) FROM mq.queue_message")
consumed=$((sent + BURST_BACKLOG - left))
analyzed=$(q -c "SELECT coalesce(last_analyze, last_autoanalyze) IS NOT NULL FROM pg_stat_user_tables WHERE relid = 'mq.queue_message'::regclass")
echo "fresh_burst: backlog $BURST_BACKLOG, sent $sent ($((sent / BURST_SECONDS)) msgs/s), consumed $consumed ($((consumed / (BURST_SECONDS + 1))) msgs/s), left $left, table analyzed: $analyzed"
