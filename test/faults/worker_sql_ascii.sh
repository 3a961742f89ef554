#!/usr/bin/env bash
# test/faults/worker_sql_ascii.sh: in a SQL_ASCII database, keys that are
# not UTF-8 must not stop the relay.
#
# A SQL_ASCII database stores a key's bytes as the client sent them; the
# relay hashes a key (Kafka's murmur2) as UTF-8, and converting a key with
# bytes >= 0x80 that are no UTF-8 used to fail in every pass.  Database
# mq_f_ascii (ENCODING 'SQL_ASCII') gets keys 0xff 'A', 0xe9 (Latin-1),
# 0xc3 0xa9 (UTF-8) and 'plain', through mq.publish to a topic (relayed by
# the C pass), mq.publish to an exchange bound to the topic with a queue
# message in the batch (the SQL pass), mq.publish_batch, and a plain
# INSERT INTO mq.outbox; then, left to the worker, more of them between two
# messages of an innocent queue (which gets a third from the SQL pass).  Counts: records relayed (must be all),
# rows set aside in mq.outbox_dead and left in the outbox (0), records not
# in the partition of murmur2 of the key's bytes (0), keys found in more
# than one partition (0: both passes agree), innocent messages received
# (3), failed passes (0), and parallel query in another database.
NAME=worker_sql_ascii
source "$(dirname "$0")/common.bash"
DB=mq_f_ascii
PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -d postgres \
	-c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
	-c "CREATE DATABASE $DB TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'" ||
	die "cannot create a SQL_ASCII database"
sql $DB "CREATE EXTENSION mq" >/dev/null || die "cannot create extension mq"
wait_worker $DB 15 >/dev/null || die "no worker in $DB"
sql $DB "SELECT mq.create_topic('asc_t', 4);
         SELECT mq.create_queue('asc_q');
         SELECT mq.create_exchange('asc_x', 'fanout');
         SELECT mq.bind('asc_x', 'asc_t');
         CREATE TABLE asc_keys AS
         SELECT convert_from(decode(h, 'hex'), 'SQL_ASCII') AS k
           FROM unnest(ARRAY['ff41', 'e9', 'c3a9', encode('plain', 'hex')]) h" >/dev/null ||
	die "cannot set up"
say "  keys: $(sql $DB "SELECT string_agg(encode(convert_to(k, 'SQL_ASCII'), 'hex'), ' ') FROM asc_keys")"

# each way of publishing, relayed in its own transaction (which sees its
# rows), so that both passes see these keys whatever the worker does
sql $DB "BEGIN;
         SELECT count(mq.publish('asc_t', '{\"via\": \"publish\"}', key => k)) FROM asc_keys;
         SELECT mq.relay();
         COMMIT;" >/dev/null || bad "the C pass failed on the keys"
sql $DB "BEGIN;
         SELECT count(mq.publish('asc_x', '{\"via\": \"exchange\"}', key => k)) FROM asc_keys;
         SELECT mq.publish('asc_q', '{\"n\": 0}');
         SELECT mq.relay();
         COMMIT;" >/dev/null || bad "the SQL pass failed on the keys"
sql $DB "BEGIN;
         SELECT count(*) FROM mq.publish_batch('asc_t', ARRAY(SELECT '{\"via\": \"batch\"}'::jsonb FROM asc_keys),
                                               ARRAY(SELECT k FROM asc_keys));
         INSERT INTO mq.outbox (aggregatetype, aggregateid, payload)
         SELECT 'asc_t', k, '{\"via\": \"insert\"}' FROM asc_keys;
         SELECT mq.relay();
         COMMIT;" >/dev/null || bad "publish_batch or INSERT failed on the keys"
# left to the worker, between two messages of an innocent queue
sql $DB "BEGIN;
         SELECT mq.publish('asc_q', '{\"n\": 1}');
         SELECT count(mq.publish('asc_t', '{\"via\": \"worker\"}', key => k)) FROM asc_keys;
         INSERT INTO mq.outbox (aggregatetype, aggregateid, payload)
         SELECT 'asc_x', k, '{\"via\": \"worker\"}' FROM asc_keys;
         SELECT mq.publish('asc_q', '{\"n\": 2}');
         COMMIT;" >/dev/null || bad "cannot publish for the worker"

for _ in $(seq 1 50); do
	left=$(sql $DB "SELECT count(*) FROM mq.outbox")
	[ "$left" = 0 ] && break
	sleep 0.2
done
innocent=$(sql $DB "SELECT count(*) FROM mq.poll('asc_q', 10)")
nkeys=$(sql $DB "SELECT count(*) FROM asc_keys")
want=$((nkeys * 6))
relayed=$(sql $DB "SELECT count(*) FROM mq.topic_record")
dead=$(sql $DB "SELECT count(*) FROM mq.outbox_dead")
misplaced=$(sql $DB "SELECT count(*) FROM mq.topic_record
                     WHERE partition <> (mq.murmur2(convert_to(key, 'SQL_ASCII')) & 2147483647) % 4")
split=$(sql $DB "SELECT count(*) FROM (SELECT key FROM mq.topic_record GROUP BY key
                                      HAVING count(DISTINCT partition) > 1) s")
failed=$(sql $DB "SELECT failed_passes FROM mq.worker_status WHERE database = current_database()")
say "  $relayed of $want records relayed, $dead set aside, $left left in the outbox, $misplaced misplaced, $split keys split, $innocent innocent messages, $failed failed passes"
[ "$relayed" = "$want" ] || bad "$relayed of $want records relayed"
[ "$dead" = 0 ] || bad "$dead rows set aside in mq.outbox_dead: $(sql $DB "SELECT string_agg(DISTINCT sqlstate || ' ' || error, '; ') FROM mq.outbox_dead")"
[ "$left" = 0 ] || bad "$left rows left in the outbox"
[ "$misplaced" = 0 ] || bad "$misplaced records not in the partition of murmur2 of their key's bytes"
[ "$split" = 0 ] || bad "$split keys in more than one partition"
[ "$innocent" = 3 ] || bad "$innocent messages of the innocent queue received, not 3"
[ "$failed" = 0 ] || bad "$failed failed passes"
parallel_check "after non-UTF-8 keys in $DB"
sql postgres "DROP DATABASE $DB WITH (FORCE)" >/dev/null
finish
