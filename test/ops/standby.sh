#!/usr/bin/env bash
# test/ops/standby.sh: mq on a streaming standby, then after promotion.
#
# A primary of its own (the worker off, so that committed outbox rows stay
# pending) holds queue messages, topic records, committed offsets and
# outbox rows; a standby is made with pg_basebackup -R and started with
# the worker on.  On the standby:
#
#   - every write is refused with 25006 (send, send_batch, poll, pop, ack,
#     nack, publish, relay, commit, create_queue, create_topic, maintain)
#   - the views and listings work and show the primary's data
#   - no mq worker runs during recovery
#
# Then more is committed on the primary, replayed, the primary stops and
# the standby is promoted: a worker must start, relay the pending outbox
# rows, and every committed message and offset must be there.
#
# Prints "standby: N checks, N violations"; exits 1 on a violation.
source "$(dirname "$0")/../lib.sh"
mq_attach
source "$(dirname "$0")/common.bash"
set +e
ops_init standby

P=$OPS_WORK/primary
S=$OPS_WORK/standby
ops_cluster "$P" "$MQ_PGBIN" || die "initdb failed"
cat >>"$P/data/postgresql.conf" <<CONF
mq.worker_enabled = off
wal_level = replica
max_wal_senders = 4
CONF
ops_pg_start "$P" || die "cannot start the primary"
export PGHOST=$P PGPORT=$(cat "$P/port") PGDATABASE=mq_standby

PGDATABASE=postgres sql "CREATE DATABASE mq_standby" >/dev/null ||
	die "cannot create the database"
"${PSQL[@]}" >/dev/null <<'SQL' || die "cannot fill the primary"
CREATE EXTENSION mq;
SELECT mq.create_queue('sb_q');
SELECT mq.send_batch('sb_q', array_agg(jsonb_build_object('n', i))) FROM generate_series(1, 50) i;
SELECT mq.create_topic('sb_t', partitions => 2);
SELECT mq.create_group('sb_t', 'g', start_at => 'earliest');
SELECT mq.publish_batch('sb_t', array_agg(jsonb_build_object('r', i)), array_agg('k' || i)) FROM generate_series(1, 40) i;
SELECT mq.relay();
SELECT mq.commit('sb_t', 'g', 0, 5);
SELECT mq.publish('sb_t', jsonb_build_object('pending', i), key => 'p' || i) FROM generate_series(1, 7) i;
SELECT mq.publish('sb_q', '{"pending": "q"}');
SQL

"${MQ_RUNAS[@]}" "$MQ_PGBIN/pg_basebackup" -h "$P" -p "$PGPORT" -D "$S/data" -R -X stream -c fast \
	>"$OPS_WORK/basebackup.log" 2>&1 || { cat "$OPS_WORK/basebackup.log"; die "pg_basebackup failed"; }
echo "$MQ_PGBIN" >"$S/bindir"
OPS_CLUSTERS+=("$S")
ops_conf "$S" "$(ops_port)"
echo "mq.worker_enabled = on" >>"$S/data/postgresql.conf"
ops_pg_start "$S" || die "cannot start the standby"
SH=(-h "$S" -p "$(cat "$S/port")")
ssql() { "${PSQL[@]}" "${SH[@]}" -At -c "$1"; }
check "the standby is in recovery" t "$(ssql "SELECT pg_is_in_recovery()")"

# every write: 25006
for w in "mq.send('sb_q', '{}')" "mq.send_batch('sb_q', ARRAY['{}']::jsonb[])" \
	"mq.poll('sb_q', 1)" "mq.pop('sb_q', 1)" "mq.ack('sb_q', 1)" "mq.nack('sb_q', 1)" \
	"mq.publish('sb_t', '{}')" "mq.relay()" "mq.commit('sb_t', 'g', 0, 6)" \
	"mq.create_queue('sb_new')" "mq.create_topic('sb_new')" "mq.maintain()"; do
	state=$("${PSQL[@]}" "${SH[@]}" -v VERBOSITY=sqlstate -c "SELECT * FROM $w" 2>&1 | sed -n 's/^ERROR: *//p')
	check "standby refuses $w" 25006 "$state"
done
check "queue_stats on the standby" "sb_q 50" "$(ssql "SELECT queue_name, total FROM mq.queue_stats WHERE queue_name = 'sb_q'" | tr '|' ' ')"
check "topic_stats on the standby" 40 "$(ssql "SELECT sum(records) FROM mq.topic_stats WHERE topic_name = 'sb_t'")"
check "consumer_lag on the standby" 5 "$(ssql "SELECT committed_offset FROM mq.consumer_lag WHERE partition = 0")"
check "listings on the standby" "1 1" "$(ssql "SELECT (SELECT count(*) FROM mq.list_topics()), (SELECT count(*) FROM mq.list_queues() WHERE queue_name = 'sb_q')" | tr '|' ' ')"
if [ "$(ssql "SELECT count(*) FROM pg_class WHERE relname = 'worker_status' AND relnamespace = 'mq'::regnamespace")" = 1 ]; then
	ssql "SELECT * FROM mq.worker_status" >/dev/null && ok "mq.worker_status on the standby" ||
		bad "mq.worker_status fails on the standby"
fi
sleep 1.5
check "no mq worker during recovery" 0 "$(ssql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mq worker'")"

# more on the primary, replayed; then the primary goes and the standby is promoted
"${PSQL[@]}" >/dev/null <<'SQL' || bad "writes on the primary failed"
SELECT mq.send('sb_q', '{"late": 1}');
SELECT mq.publish('sb_t', '{"late": 2}', key => 'late');
SELECT mq.commit('sb_t', 'g', 1, 3);
SQL
lsn=$(sql "SELECT pg_current_wal_lsn()")
start=$SECONDS
until [ "$(ssql "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ]; do
	[ $((SECONDS - start)) -gt 20 ] && { bad "the standby did not replay $lsn"; break; }
	sleep 0.1
done
ops_pg_stop "$P" || bad "cannot stop the primary"
"${MQ_RUNAS[@]}" "$MQ_PGBIN/pg_ctl" -D "$S/data" -w -t 30 promote >/dev/null || die "promotion failed"
check "promoted" f "$(ssql "SELECT pg_is_in_recovery()")"
start=$SECONDS
until [ "$(ssql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mq worker' AND datname = 'mq_standby'")" = 1 ]; do
	[ $((SECONDS - start)) -gt 20 ] && { bad "no worker 20 s after promotion"; break; }
	sleep 0.2
done
[ $((SECONDS - start)) -le 20 ] && ok "a worker started $((SECONDS - start)) s after promotion"
export PGHOST=$S PGPORT=$(cat "$S/port")
wait_for 20 "SELECT NOT EXISTS (SELECT 1 FROM mq.outbox)" || bad "pending outbox rows were not relayed"
check "queue messages" 52 "$(sql "SELECT count(*) FROM mq.queue_message m JOIN mq.queue q USING (queue_id) WHERE q.queue_name = 'sb_q'")"
check "topic records (40 relayed before, 8 after promotion)" 48 "$(sql "SELECT sum(records) FROM mq.topic_stats WHERE topic_name = 'sb_t'")"
check "committed offsets" "0:5 1:3" "$(sql "SELECT string_agg(partition || ':' || committed_offset, ' ' ORDER BY partition) FROM mq.consumer_lag WHERE group_name = 'g'")"
check "writes work after promotion" 1 "$(sql "SELECT count(*) FROM (SELECT mq.send('sb_q', '{\"after\": 1}')) s")"
check "offsets dense after promotion" t "$(sql "SELECT bool_and(records = end_offset) FROM mq.topic_stats WHERE topic_name = 'sb_t'")"
ops_finish
