#!/usr/bin/env bash
# test/crash/poll_row_locks.sh: an empty-handed poll holds no row lock.
#
# A poll's FOR UPDATE SKIP LOCKED scan locks a row that another consumer
# leased (and committed) after the poll's snapshot was taken, before the
# recheck finds it no longer ready.  The row is not returned; its lock must
# not outlive the poll, or that consumer's ack waits behind it (for a long
# poll: until the end of its wait).  Under load -- 500 sends/s, 4 fast
# consumers (poll, commit, ack), 3 long pollers racing them -- each long
# poll that came back empty counts, before its transaction ends, the rows
# of mq.queue_message it still holds locked (pgrowlocks).
#
# Prints "poll_row_locks: N long polls, N empty, N empty holding locks,
# N consumer rounds" and exits 1 if an empty poll held a lock (or nothing
# ran).  Runs against the cluster of test/run_tests.sh.
# MQ_POLL_LOCKS_SECS (default 4): how long the load runs.

source "$(dirname "$0")/../lib.sh"
mq_attach
set +e

export PGDATABASE=mq_poll_locks
SECS=${MQ_POLL_LOCKS_SECS:-4}
WORK=$(mktemp -d /tmp/mq-poll-locks.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
say() { echo "poll_row_locks: $*"; }

PGOPTIONS='-c client_min_messages=warning' mq_psql -d postgres \
	-c "DROP DATABASE IF EXISTS $PGDATABASE" -c "CREATE DATABASE $PGDATABASE" || exit 1
mq_psql >/dev/null <<'SQL' || exit 1
CREATE EXTENSION pgrowlocks;
CREATE EXTENSION mq;
SELECT mq.create_queue('pl', max_attempts => 1000);
CREATE TABLE pl_check (got bigint, held bigint);
SQL

cat >"$WORK/produce.sql" <<'SQL'
SELECT mq.send('pl', '{}');
SQL
cat >"$WORK/consume.sql" <<'SQL'
SELECT coalesce(array_agg(msg_id), '{}') AS ids FROM mq.poll('pl', 1, '1 minute') \gset
SELECT mq.ack('pl', :ids::bigint[]);
SQL
cat >"$WORK/longpoll.sql" <<'SQL'
BEGIN;
SELECT count(*) AS got FROM mq.poll('pl', 2, '1 minute', '20 milliseconds') \gset
INSERT INTO pl_check
SELECT :got, count(*) FROM pgrowlocks('mq.queue_message') r WHERE pg_backend_pid() = ANY (r.pids);
COMMIT;
SQL

bench() { "$MQ_PGBIN/pgbench" -n -M prepared -T "$SECS" -c "$1" -j "$1" -f "$WORK/$2.sql" "${@:3}" >"$WORK/$2.log" 2>&1; }
# 500 sends/s: every send wakes the long pollers, which race the consumers
bench 2 produce -R 500 &
bench 4 consume &
bench 3 longpoll &
wait

read -r polls empty held < <(mq_psql -At -F ' ' -c \
	"SELECT count(*), count(*) FILTER (WHERE got = 0), count(*) FILTER (WHERE got = 0 AND held > 0) FROM pl_check")
acked=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/consume.log")
say "$polls long polls, $empty empty, $held empty holding locks, ${acked:-0} consumer rounds"
PGOPTIONS='-c client_min_messages=warning' mq_psql -d postgres -c "DROP DATABASE $PGDATABASE" >/dev/null
if [ "${polls:-0}" -eq 0 ] || [ "${empty:-0}" -eq 0 ] || [ "${acked:-0}" -eq 0 ]; then
	say "ERROR: the load did not run"
	cat "$WORK"/*.log
	exit 1
fi
[ "$held" -eq 0 ]
