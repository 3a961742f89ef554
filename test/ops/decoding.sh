#!/usr/bin/env bash
# test/ops/decoding.sh: what Debezium reads, through logical decoding.
#
# A cluster of its own with wal_level = logical.  A wal2json slot (Debian's
# postgresql-15-wal2json) must see, for mq.publish, mq.publish_batch and a
# Debezium-style INSERT INTO mq.outbox, an insert into mq.outbox carrying
# the outbox event router's columns (id, aggregatetype, aggregateid, type,
# payload, headers) with the values published; and, once the worker has
# relayed them, inserts into the topic's storage (a partition of
# mq.topic_record) with the same message_id, key and payload.  A
# publication on mq.outbox (what Debezium's default pgoutput plugin
# reads) streams the outbox's inserts too.
#
# Prints "decoding: N checks, N violations"; exits 1 on a violation.
source "$(dirname "$0")/../lib.sh"
mq_attach
source "$(dirname "$0")/common.bash"
set +e
ops_init decoding

L=$OPS_WORK/logical
ops_cluster "$L" "$MQ_PGBIN" || die "initdb failed"
cat >>"$L/data/postgresql.conf" <<CONF
wal_level = logical
max_replication_slots = 4
max_wal_senders = 4
mq.naptime = 200
CONF
# a server that lists the output plugins it allows must allow wal2json
if "$MQ_PGBIN/postgres" --describe-config 2>/dev/null | grep '^output_plugin_libraries' >/dev/null; then
	echo "output_plugin_libraries = 'pgoutput, test_decoding, wal2json'" >>"$L/data/postgresql.conf"
fi
ops_pg_start "$L" || die "cannot start the cluster"
export PGHOST=$L PGPORT=$(cat "$L/port") PGDATABASE=mq_decoding
PGDATABASE=postgres sql "CREATE DATABASE mq_decoding" >/dev/null || die "cannot create the database"
"${PSQL[@]}" >/dev/null <<'SQL' || die "cannot set up"
CREATE EXTENSION mq;
SELECT mq.create_topic('orders', partitions => 2);
SELECT mq.create_queue('emails');
CREATE PUBLICATION mq_outbox FOR TABLE mq.outbox WITH (publish = 'insert');
SELECT pg_create_logical_replication_slot('mq_w2j', 'wal2json');
SELECT pg_create_logical_replication_slot('mq_pgo', 'pgoutput');
SQL
"${PSQL[@]}" >/dev/null <<'SQL' || die "cannot publish"
CREATE TABLE sent (id uuid, dest text, key text, payload jsonb);
BEGIN;
INSERT INTO sent SELECT mq.publish('orders', '{"order": 1}', key => 'c-1', headers => '{"trace": "t1"}'), 'orders', 'c-1', '{"order": 1}';
INSERT INTO sent SELECT id, 'orders', 'c-2', '{"order": 2}'
  FROM mq.publish_batch('orders', ARRAY['{"order": 2}']::jsonb[], ARRAY['c-2']) id;
INSERT INTO mq.outbox (aggregatetype, aggregateid, type, payload)
VALUES ('emails', 'c-3', 'EmailRequested', '{"to": "ada"}')
RETURNING id, aggregatetype, aggregateid, payload;
COMMIT;
INSERT INTO sent SELECT o.id, o.aggregatetype, o.aggregateid, o.payload FROM mq.outbox o
 WHERE o.type = 'EmailRequested';
SQL
wait_for 20 "SELECT NOT EXISTS (SELECT 1 FROM mq.outbox)" || bad "the worker did not relay"

# the wal2json changes, one JSON document per change
sql "CREATE TABLE changes AS SELECT data::jsonb AS c FROM pg_logical_slot_get_changes('mq_w2j', NULL, NULL,
  'format-version', '2', 'include-transaction', 'false')" >/dev/null || die "cannot read the wal2json slot"
sql "CREATE VIEW outbox_ins AS
  SELECT (SELECT jsonb_object_agg(col->>'name', col->>'value') FROM jsonb_array_elements(c->'columns') col) AS row
    FROM changes WHERE c->>'action' = 'I' AND c->>'schema' = 'mq' AND c->>'table' = 'outbox'" >/dev/null
check "outbox inserts decoded" 3 "$(sql "SELECT count(*) FROM outbox_ins")"
check "each carries the event router's columns" 3 "$(sql "SELECT count(*) FROM outbox_ins
  WHERE row ?& ARRAY['id', 'aggregatetype', 'aggregateid', 'type', 'payload', 'headers']")"
check "with the values published" 3 "$(sql "SELECT count(*) FROM outbox_ins o JOIN sent s
  ON (o.row->>'id')::uuid = s.id AND o.row->>'aggregatetype' = s.dest
 AND o.row->>'aggregateid' = s.key AND (o.row->>'payload')::jsonb = s.payload")"
check "headers and type as written" "t1 EmailRequested" "$(sql "SELECT
  (SELECT (row->>'headers')::jsonb->>'trace' FROM outbox_ins WHERE row->>'aggregateid' = 'c-1'),
  (SELECT row->>'type' FROM outbox_ins WHERE row->>'aggregateid' = 'c-3')" | tr '|' ' ')"
check "topic records decoded with the event ids" 2 "$(sql "SELECT count(*) FROM changes ch JOIN sent s ON
  s.id::text = (SELECT col->>'value' FROM jsonb_array_elements(ch.c->'columns') col WHERE col->>'name' = 'message_id')
 WHERE ch.c->>'action' = 'I' AND ch.c->>'table' LIKE 'topic\_record\_%'")"
check "queue messages decoded with mq_event_id" 1 "$(sql "SELECT count(*) FROM changes ch JOIN sent s ON
  s.id::text = (SELECT (col->>'value')::jsonb->>'mq_event_id' FROM jsonb_array_elements(ch.c->'columns') col WHERE col->>'name' = 'headers')
 WHERE ch.c->>'action' = 'I' AND ch.c->>'table' = 'queue_message'")"

# pgoutput with the publication: the outbox's relation and its inserts
pgo=$(sql "SELECT count(*) FILTER (WHERE get_byte(data, 0) = ascii('I')),
  count(*) FILTER (WHERE get_byte(data, 0) = ascii('R') AND position('outbox'::bytea IN data) > 0)
  FROM pg_logical_slot_get_binary_changes('mq_pgo', NULL, NULL,
  'proto_version', '1', 'publication_names', 'mq_outbox')" | tr '|' ' ')
check "pgoutput streams the outbox inserts (inserts, relation messages)" "3 1" "$pgo"
sql "SELECT pg_drop_replication_slot('mq_w2j'), pg_drop_replication_slot('mq_pgo')" >/dev/null
ops_finish
