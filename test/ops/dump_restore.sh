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
#   staged   pg_dump -Fc, pg_restore --exit-on-error in two halves: first
#            everything but the topics' records, the sequences and the
#            indexes (what a worker can see during a restore: it must
#            relay nothing and drop no segment), then the rest
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

# tables of the extension that are deliberately not dumped (the
# partitioned mq.topic_record holds no rows itself: its segments are
# ordinary tables, dumped with their rows):
#   prepared_effect: what prepared transactions owe at their end; a dump
#     holds no prepared transactions, and a row of one that committed is
#     paid within the moment (and would be void in a restored copy, whose
#     installation of mq is another)
NOT_DUMPED="prepared_effect"

PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -d postgres \
	-c "DROP DATABASE IF EXISTS $SRC" -c "CREATE DATABASE $SRC" \
	-c "DROP ROLE IF EXISTS mq_ops_app" -c "CREATE ROLE mq_ops_app" || die "cannot create $SRC"

"${PSQL[@]}" -f "$MQ_ROOT/test/ops/fill.sql" >/dev/null || die "cannot fill $SRC"

# every table of the extension is dumped, or listed in NOT_DUMPED
undumped=$(sql "SELECT string_agg(c.relname, ' ' ORDER BY c.relname)
  FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'mq'
 WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND c.relkind IN ('r', 'S')
   AND c.oid <> ALL (coalesce(e.extconfig, '{}'))
   AND c.relname <> ALL (string_to_array('$NOT_DUMPED', ' '))")
check "every table and sequence of mq is dumped" "" "$undumped"

# committed outbox rows that stay pending while pg_dump runs
hold_relay || die "cannot hold the relay off"
"${PSQL[@]}" -f "$MQ_ROOT/test/ops/pending.sql" >/dev/null || die "cannot write pending outbox rows"
check "pending outbox rows before the dump" 5 "$(sql "SELECT count(*) FROM mq.outbox")"
"$MQ_PGBIN/pg_dump" -Fc -f "$OPS_WORK/src.dump" "$SRC" || bad "pg_dump -Fc failed"
"$MQ_PGBIN/pg_dump" -Fp -f "$OPS_WORK/src.sql" "$SRC" || bad "pg_dump -Fp failed"
release_relay
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
	staged) restore_staged "$db" ;;
	esac
}

# restore_staged DB: a custom-format restore stopped half-way, as a worker
# can see one: every table's data loaded except the topics' records, and
# no sequence set yet.  There the relay must move nothing and retention
# must drop no segment (even one past retention), and the rest of the
# restore must then succeed.
restore_staged() {
	local db=$1 items="TABLE DATA mq topic_record_|SEQUENCE SET|INDEX"
	"$MQ_PGBIN/pg_restore" -l "$OPS_WORK/src.dump" | grep -v '^;' >"$OPS_WORK/toc.all"
	grep -Ev "$items" "$OPS_WORK/toc.all" >"$OPS_WORK/toc.first"
	grep -E "$items" "$OPS_WORK/toc.all" >"$OPS_WORK/toc.rest"
	"$MQ_PGBIN/pg_restore" --exit-on-error -L "$OPS_WORK/toc.first" -d "$db" "$OPS_WORK/src.dump" || return 1
	local mid
	mid=$(PGDATABASE=$db "${PSQL[@]}" -At <<'SQL'
SELECT mq.relay() AS moved \gset
SELECT 'outbox ' || count(*) FROM mq.outbox;
UPDATE mq.segment SET created_at = created_at - interval '3 hours';
SELECT 'dropped ' || sum(segments_dropped) FROM mq.maintain();
SELECT pg_sleep(1.5);   -- the worker's passes too
UPDATE mq.segment SET created_at = created_at + interval '3 hours';
SELECT 'segments ' || count(*) FROM mq.segment;
SQL
)
	echo $mid >"$OPS_WORK/staged.mid"
	"$MQ_PGBIN/pg_restore" --exit-on-error -L "$OPS_WORK/toc.rest" -d "$db" "$OPS_WORK/src.dump"
}

# use_features DB: everything works in the restored copy; prints lines
# "name value" to compare with the expected ones.
use_features() {
	PGDATABASE=$1 "${PSQL[@]}" -At -f "$MQ_ROOT/test/ops/use.sql"
}

for way in custom plain single staged; do
	db=mq_dump_$way
	if ! restore_into "$db" "$way" >"$OPS_WORK/restore_$way.log" 2>&1; then
		bad "restore ($way) failed: $(grep -m3 -i error "$OPS_WORK/restore_$way.log" | tr '\n' ' ')"
		continue
	fi
	ok "restore ($way)"
	if [ $way = staged ]; then
		check "staged: half-way, the relay moves nothing, retention drops nothing" \
			"outbox 5 dropped 0 segments $(awk '/^segments /{n += $3} END {print n}' "$OPS_WORK/src.snap")" \
			"$(cat "$OPS_WORK/staged.mid")"
	fi
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
	if diff "$MQ_ROOT/test/ops/use.expected" "$OPS_WORK/$way.use" >"$OPS_WORK/$way.usediff"; then
		ok "$way: every feature works in the copy"
	else
		bad "$way: features in the copy: $(head -c 800 "$OPS_WORK/$way.usediff")"
	fi
done

for way in custom plain single staged; do
	"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS mq_dump_$way" >/dev/null 2>&1
done
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $SRC" -c "DROP ROLE IF EXISTS mq_ops_app" >/dev/null 2>&1
ops_finish "4 restore ways"
