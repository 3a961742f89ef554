#!/usr/bin/env bash
# test/ops/dump_restore.sh: pg_dump / restore round trips keep everything
# and leave a working system.
#
# A database holds mq data of every kind: messages ready, in flight,
# delayed and dead (with their history), dedup and inbox keys, topics
# with several segments and committed offsets, exchanges and bindings,
# committed outbox rows the relay has not moved yet (the relay is held off
# while pg_dump runs), grants on mq objects, and a business table.  It is
# dumped and restored into a new database three ways:
#
#   custom   pg_dump -Fc, pg_restore --exit-on-error
#   plain    pg_dump -Fp, psql -v ON_ERROR_STOP=1
#   single   pg_dump -Fc, pg_restore --single-transaction --exit-on-error
#
# Each restore must succeed without an error; the copy must hold what the
# original held (test/ops/snapshot.sql, compared after both relayed their
# pending outbox rows), and every feature must work in it: new queues,
# topics, groups, exchanges and segments get ids that do not collide with
# restored ones, messages flow, fetch and commit continue from the
# restored offsets, and retention drops old segments.
#
# Also: every table of the extension is dumped (pg_extension_config_dump)
# unless it is listed below as state that a restore rebuilds.
#
# Prints "dump_restore: N checks, N violations"; exits 1 on a violation.
source "$(dirname "$0")/../lib.sh"
mq_attach
source "$(dirname "$0")/common.bash"
set +e
ops_init dump_restore
SRC=mq_dump_src
export PGDATABASE=$SRC
SNAP=$MQ_ROOT/test/ops/snapshot.sql

# tables of the extension that are deliberately not dumped: none (the
# partitioned mq.topic_record holds no rows itself: its segments are
# ordinary tables, dumped with their rows)
NOT_DUMPED=""

PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -d postgres \
	-c "DROP DATABASE IF EXISTS $SRC" -c "CREATE DATABASE $SRC" \
	-c "DROP ROLE IF EXISTS mq_dump_app" -c "CREATE ROLE mq_dump_app" || die "cannot create $SRC"

"${PSQL[@]}" >/dev/null <<'SQL' || die "cannot fill $SRC"
CREATE EXTENSION mq;
CREATE TABLE orders (id integer PRIMARY KEY, total numeric);
SELECT mq.create_queue('dr_q', visibility_timeout => '1 hour', max_attempts => 3);
SELECT mq.create_queue('dr_other');
BEGIN;
INSERT INTO orders VALUES (1, 10);
SELECT mq.send('dr_q', '{"n": 1}', dedup_key => 'order-1');
COMMIT;
SELECT mq.send('dr_q', '{"n": 2}', headers => '{"h": "x"}');
SELECT mq.send('dr_q', '{"n": 3}', delay => '1 hour');
SELECT mq.send('dr_q', '{"n": 4}');
SELECT mq.send('dr_q', '{"n": 5}');
SELECT msg_id FROM mq.poll('dr_q', 1);                         -- n 1 in flight
SELECT mq.reject('dr_q', msg_id, error => 'bad') FROM mq.poll('dr_q', 1);  -- n 2 dead
SELECT mq.send_batch('dr_other', ARRAY['{"b": 1}', '{"b": 2}']::jsonb[]);
SELECT mq.process_once('billing', 'msg-17');
SELECT mq.process_once('billing', 'msg-18');
-- many inbox keys: a restore loads them (mq.processed) after mq.outbox and
-- before the queues and topics, which leaves a worker time to act on a
-- half-loaded copy
INSERT INTO mq.processed (consumer, message_key) SELECT 'bulk', 'k' || i FROM generate_series(1, 30000) i;

SELECT mq.create_topic('dr_t', partitions => 3, retention => '1 hour');
SELECT mq.create_topic('dr_t1');
SELECT mq.create_group('dr_t', 'g1', start_at => 'earliest');
SELECT mq.create_group('dr_t', 'g2', start_at => 'latest');
SELECT mq.publish_batch('dr_t', array_agg(jsonb_build_object('r', i)), array_agg('k' || (i % 5)))
  FROM generate_series(1, 30) i;
SELECT mq.relay();
SELECT mq._new_segment(t.topic_id) FROM mq.topic t WHERE t.topic_name = 'dr_t';
SELECT mq.publish('dr_t', jsonb_build_object('r', i), key => 'k' || (i % 5)) FROM generate_series(31, 40) i;
SELECT mq.publish('dr_t1', '{"one": 1}');
SELECT mq.relay();
SELECT mq.commit('dr_t', 'g1', 0, 3);
SELECT mq.commit('dr_t', 'g1', 1, 1);

SELECT mq.create_exchange('dr_alt', 'fanout');
SELECT mq.create_exchange('dr_x', 'topic', alternate_exchange => 'dr_alt');
SELECT mq.bind('dr_x', 'dr_q', 'order.*');
SELECT mq.bind('dr_x', 'dr_t', 'order.#');
SELECT mq.bind('dr_alt', 'dr_other');
GRANT SELECT ON mq.queue_stats TO mq_dump_app;
GRANT EXECUTE ON FUNCTION mq.send(text, jsonb, jsonb, interval, text) TO mq_dump_app;
SQL

# every table of the extension is dumped, or listed in NOT_DUMPED
undumped=$(sql "SELECT string_agg(c.relname, ' ' ORDER BY c.relname)
  FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'mq'
 WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND c.relkind IN ('r', 'S')
   AND c.oid <> ALL (coalesce(e.extconfig, '{}'))
   AND c.relname <> ALL (string_to_array('$NOT_DUMPED', ' '))")
check "every table and sequence of mq is dumped" "" "$undumped"

# Hold the relay off (a pass that stays open holds the relay lock), then
# write outbox rows that stay pending while pg_dump runs.
sql "SELECT count(*) FROM mq.outbox" >/dev/null
wait_for 10 "SELECT NOT EXISTS (SELECT 1 FROM mq.outbox)" || die "the outbox did not drain"
"${PSQL[@]}" -c "BEGIN" -c "SELECT mq.relay(1)" -c "SELECT pg_sleep(120)" >/dev/null 2>&1 &
OPS_PIDS+=($!)
holder=$!
wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(120)')" ||
	die "the relay holder did not start"
"${PSQL[@]}" >/dev/null <<'SQL' || die "cannot write pending outbox rows"
BEGIN;
INSERT INTO orders VALUES (2, 20);
SELECT mq.publish('dr_t', '{"pending": 1}', key => 'k1');
SELECT mq.publish('dr_q', '{"pending": 2}');
SELECT mq.publish('dr_x', '{"pending": 3}', key => 'order.created');
SELECT mq.publish('dr_x', '{"pending": 4}', key => 'nowhere');
INSERT INTO mq.outbox (aggregatetype, aggregateid, type, payload) VALUES ('dr_t1', 'e', 'created', '{"pending": 5}');
COMMIT;
SQL
check "pending outbox rows before the dump" 5 "$(sql "SELECT count(*) FROM mq.outbox")"
"$MQ_PGBIN/pg_dump" -Fc -f "$OPS_WORK/src.dump" "$SRC" || bad "pg_dump -Fc failed"
"$MQ_PGBIN/pg_dump" -Fp -f "$OPS_WORK/src.sql" "$SRC" || bad "pg_dump -Fp failed"
"$MQ_PGBIN/psql" -X -q -At -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
  WHERE query = 'SELECT pg_sleep(120)'" >/dev/null
wait "$holder" 2>/dev/null
wait_for 10 "SELECT NOT EXISTS (SELECT 1 FROM mq.outbox)" || bad "the source outbox did not drain"
"${PSQL[@]}" -f "$SNAP" >"$OPS_WORK/src.snap" || die "snapshot of $SRC failed"

# restore_into DB WAY
restore_into() {
	local db=$1 way=$2
	PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -d postgres \
		-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" || return 1
	case $way in
	custom) "$MQ_PGBIN/pg_restore" --exit-on-error -d "$db" "$OPS_WORK/src.dump" ;;
	plain) "${PSQL[@]}" -d "$db" -f "$OPS_WORK/src.sql" >/dev/null ;;
	single) "$MQ_PGBIN/pg_restore" --single-transaction --exit-on-error -d "$db" "$OPS_WORK/src.dump" ;;
	esac
}

# use_features DB: everything works in the restored copy; prints lines
# "name value" to compare with the expected ones.
use_features() {
	PGDATABASE=$1 "${PSQL[@]}" -At <<'SQL'
SET client_min_messages = warning;
SELECT 'new_queue ' || (mq.create_queue('dr_new') IS NOT NULL);
SELECT 'new_msg_above_old ' || (mq.send('dr_q', '{"new": 1}') > (SELECT max(msg_id) FROM mq.queue_message WHERE payload <> '{"new": 1}'));
SELECT 'polled ' || count(*) FROM mq.poll('dr_q', 10);
SELECT 'acked_old_dead ' || mq.ack('dr_q_dlq', msg_id) FROM mq.poll('dr_q_dlq', 1);
SELECT 'dedup_kept ' || (mq.send('dr_q', '{"n": 1}', dedup_key => 'order-1') = (SELECT msg_id FROM mq.dedup WHERE dedup_key = 'order-1'));
SELECT 'inbox_kept ' || NOT mq.process_once('billing', 'msg-17');
SELECT 'new_topic ' || (mq.create_topic('dr_t2', partitions => 2) IS NOT NULL);
SELECT 'new_group ' || (mq.create_group('dr_t2', 'g', start_at => 'earliest') IS NOT NULL);
SELECT 'new_group_old_topic ' || (mq.create_group('dr_t', 'g3', start_at => 'earliest') IS NOT NULL);
SELECT 'new_exchange ' || (mq.create_exchange('dr_x2', 'fanout') IS NOT NULL);
SELECT 'bind ' || (mq.bind('dr_x2', 'dr_t2') IS NOT NULL);
SELECT 'publish ' || (mq.publish('dr_x2', '{"after": 1}') IS NOT NULL);
SELECT 'publish_old ' || (mq.publish('dr_t', '{"after": 2}', key => 'k1') IS NOT NULL);
SELECT mq.relay() AS moved \gset
SELECT 'relay ' || NOT EXISTS (SELECT 1 FROM mq.outbox);
SELECT 'fetch_new ' || count(*) FROM mq.fetch('dr_t2', 'g', 10);
SELECT 'fetch_old_from_offset ' || min("offset") FILTER (WHERE partition = 0) FROM mq.fetch('dr_t', 'g1', 1000);
SELECT 'commit ' || (mq.commit('dr_t', 'g1', 0, 4) IS NOT NULL);
SELECT 'lag_rows ' || count(*) FROM mq.consumer_lag WHERE topic_name = 'dr_t' AND group_name = 'g1';
-- retention: age the segments of dr_t past the retention; maintain drops
-- the closed ones and opens new segments
UPDATE mq.segment s SET created_at = s.created_at - interval '3 hours'
  FROM mq.topic t WHERE t.topic_id = s.topic_id AND t.topic_name = 'dr_t';
SELECT 'maintain_ok ' || (sum(segments_dropped) IS NOT NULL) FROM mq.maintain();
SELECT 'old_segments_dropped ' || (count(*) <= 2) FROM mq.segment s JOIN mq.topic t USING (topic_id) WHERE t.topic_name = 'dr_t';
SELECT 'new_segment_opened ' || (max(s.seg) > (SELECT max(seg) FROM mq.topic_record)) FROM mq.segment s;
SELECT 'publish_after_rotate ' || (mq.publish('dr_t', '{"after": 3}') IS NOT NULL);
SELECT mq.relay() AS moved \gset
SELECT 'relay2 ' || NOT EXISTS (SELECT 1 FROM mq.outbox);
SELECT 'stats ' || count(*) FROM mq.topic_stats WHERE topic_name = 'dr_t';
SELECT 'queue_stats ' || count(*) FROM mq.queue_stats;
SQL
}
cat >"$OPS_WORK/expected.use" <<'EOF2'
new_queue true
new_msg_above_old true
polled 5
acked_old_dead true
dedup_kept true
inbox_kept true
new_topic true
new_group true
new_group_old_topic true
new_exchange true
bind true
publish true
publish_old true
relay true
fetch_new 1
fetch_old_from_offset 3
commit true
lag_rows 3
maintain_ok true
old_segments_dropped true
new_segment_opened true
publish_after_rotate true
relay2 true
stats 3
queue_stats 6
EOF2

for way in custom plain single; do
	db=mq_dump_$way
	if ! restore_into "$db" "$way" >"$OPS_WORK/restore_$way.log" 2>&1; then
		bad "restore ($way) failed: $(grep -m3 -i error "$OPS_WORK/restore_$way.log" | tr '\n' ' ')"
		continue
	fi
	ok "restore ($way)"
	PGDATABASE=$db wait_for 10 "SELECT NOT EXISTS (SELECT 1 FROM mq.outbox)" ||
		bad "$way: the restored outbox did not drain"
	PGDATABASE=$db "${PSQL[@]}" -f "$SNAP" >"$OPS_WORK/$way.snap" 2>&1
	if diff "$OPS_WORK/src.snap" "$OPS_WORK/$way.snap" >"$OPS_WORK/$way.diff"; then
		ok "$way: the copy holds what the original held ($(wc -l <"$OPS_WORK/src.snap") lines)"
	else
		bad "$way: the copy differs: $(head -c 600 "$OPS_WORK/$way.diff")"
	fi
	check "$way: business rows" 2 "$(PGDATABASE=$db sql "SELECT count(*) FROM orders")"
	use_features "$db" >"$OPS_WORK/$way.use" 2>&1
	if diff "$OPS_WORK/expected.use" "$OPS_WORK/$way.use" >"$OPS_WORK/$way.usediff"; then
		ok "$way: every feature works in the copy"
	else
		bad "$way: features in the copy: $(head -c 800 "$OPS_WORK/$way.usediff")"
	fi
done

for way in custom plain single; do
	"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS mq_dump_$way" >/dev/null 2>&1
done
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $SRC" -c "DROP ROLE IF EXISTS mq_dump_app" >/dev/null 2>&1
ops_finish "3 restore ways"
