#!/usr/bin/env bash
# test/ops/upgrade.sh: from the released 0.1.0 to this build.
#
# 0.1.0 is commit ed0c272 (found by commit: a clone may carry no tags).
# mq--0.1.0.sql must be byte-identical to that commit's (it is released)
# and there is no full script for a later version (CREATE EXTENSION runs
# mq--0.1.0.sql, then the upgrade scripts).
#
# The running suite's server must not load another mq library, so the
# test copies PostgreSQL (relocatable: bin, lib, share and include under
# one prefix) into a temp dir, builds and installs 0.1.0 there, and starts
# a throwaway cluster from it (shared_preload_libraries = 'mq').  It fills
# a database with data of every kind (test/ops/fill.sql, plus committed
# outbox rows left pending), stops, installs the current build, starts
# with the worker off, and checks:
#
#   - the database still at 0.1.0 works with the new library;
#   - ALTER EXTENSION mq UPDATE reaches the default version and keeps
#     every row (test/ops/snapshot.sql before = after) and the grants;
#   - the schema equals that of a fresh CREATE EXTENSION mq
#     (test/ops/catalog.sql: functions with definitions and ACLs, tables,
#     columns, indexes, constraints, views, types, sequences, triggers,
#     config-dump settings);
#   - with the worker on, the pending outbox rows are relayed and every
#     feature works (test/ops/use.sql = test/ops/use.expected).
#
# Prints "upgrade: N checks, N violations"; exits 1 on a violation.
source "$(dirname "$0")/../lib.sh"
mq_attach
source "$(dirname "$0")/common.bash"
set +e
ops_init upgrade
RELEASED=ed0c272

# --- the released script ----------------------------------------------------
if git -C "$MQ_ROOT" cat-file -e "$RELEASED^{commit}" 2>/dev/null; then
	if git -C "$MQ_ROOT" show "$RELEASED:mq--0.1.0.sql" | cmp -s - "$MQ_ROOT/mq--0.1.0.sql"; then
		ok "mq--0.1.0.sql is the released one"
	else
		bad "mq--0.1.0.sql differs from $RELEASED's: put schema changes in the upgrade script"
	fi
else
	die "commit $RELEASED is not in this repository (a shallow clone?)"
fi
default=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$MQ_ROOT/mq.control")
full=$(cd "$MQ_ROOT" && ls mq--*.sql | grep -v -- '--.*--' | grep -vx 'mq--0.1.0.sql')
check "no full install script besides mq--0.1.0.sql" "" "$full"
[ -f "$MQ_ROOT/mq--0.1.0--$default.sql" ] || bad "no upgrade script mq--0.1.0--$default.sql for default_version $default"

# --- a private PostgreSQL with 0.1.0 -----------------------------------------
PREFIX=$OPS_WORK/pg
bindir=$("$PG_CONFIG" --bindir)
sharedir=$("$PG_CONFIG" --sharedir)
includedir=$("$PG_CONFIG" --includedir)
mkdir -p "$PREFIX/usr/lib/postgresql" "$PREFIX/usr/share/postgresql" "$PREFIX/usr/include"
cp -a "$(dirname "$bindir")" "$PREFIX/usr/lib/postgresql/" &&
	cp -a "$sharedir" "$PREFIX/usr/share/postgresql/" &&
	cp -a "$includedir" "$PREFIX/usr/include/" || die "cannot copy PostgreSQL"
PGC=$PREFIX/usr/lib/postgresql/$(basename "$(dirname "$bindir")")/bin/pg_config
[ "$("$PGC" --sharedir)" = "$PREFIX${sharedir#${sharedir%/usr/share/*}}" ] ||
	die "the copy's pg_config does not report relocated paths: $("$PGC" --sharedir)"
rm -f "$("$PGC" --pkglibdir)"/mq.so "$("$PGC" --sharedir)"/extension/mq[.-]*

mkdir -p "$OPS_WORK/v010"
git -C "$MQ_ROOT" archive "$RELEASED" | tar -x -C "$OPS_WORK/v010" || die "git archive $RELEASED failed"
make -C "$OPS_WORK/v010" -s -j2 PG_CONFIG="$PGC" >"$OPS_WORK/build010.log" 2>&1 &&
	make -C "$OPS_WORK/v010" -s PG_CONFIG="$PGC" install >>"$OPS_WORK/build010.log" 2>&1 ||
	{ tail -20 "$OPS_WORK/build010.log"; die "cannot build 0.1.0"; }
ok "0.1.0 built from $RELEASED"

C=$OPS_WORK/cluster
ops_cluster "$C" "$(dirname "$PGC")" || die "initdb failed"
echo "mq.naptime = 200" >>"$C/data/postgresql.conf"
ops_pg_start "$C" || die "cannot start the 0.1.0 cluster"
export PGHOST=$C PGPORT=$(cat "$C/port") PGDATABASE=mq_up
PSQL=("$(dirname "$PGC")/psql" -X -q -v ON_ERROR_STOP=1)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE mq_up" -c "CREATE DATABASE mq_fresh" \
	-c "CREATE ROLE mq_ops_app" || die "cannot create databases"
"${PSQL[@]}" -f "$MQ_ROOT/test/ops/fill.sql" >/dev/null || die "cannot fill 0.1.0"
check "installed version before" 0.1.0 "$(sql "SELECT extversion FROM pg_extension WHERE extname = 'mq'")"
# the worker off, so that the outbox rows stay pending across the update
echo "mq.worker_enabled = off" >>"$C/data/postgresql.conf"
sql "SELECT pg_reload_conf()" >/dev/null
wait_for 20 "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'mq worker')" ||
	die "the worker did not stop"
"${PSQL[@]}" -f "$MQ_ROOT/test/ops/pending.sql" >/dev/null || die "cannot write pending outbox rows"
"${PSQL[@]}" -f "$MQ_ROOT/test/ops/snapshot.sql" >"$OPS_WORK/before.snap" || die "snapshot failed"
check "pending outbox rows at shutdown" 5 "$(sql "SELECT count(*) FROM mq.outbox")"
ops_pg_stop "$C" || die "cannot stop the 0.1.0 cluster"

# --- the current build ---------------------------------------------------------
make -C "$MQ_ROOT" -s PG_CONFIG="$PGC" install >"$OPS_WORK/build.log" 2>&1 ||
	{ tail -20 "$OPS_WORK/build.log"; die "cannot install the current build"; }
ops_pg_start "$C" || die "cannot start with the current build"
probe=$(sql "SELECT mq.create_queue('up_probe');
  SELECT mq.send('up_probe', '{\"while\": \"0.1.0\"}') > 0;
  SELECT count(mq.ack('up_probe', msg_id)) FROM mq.poll('up_probe', 5);
  SELECT mq.publish('dr_t1', '{\"while\": \"0.1.0\"}') IS NOT NULL;
  SELECT mq.drop_queue('up_probe')" | tr '\n' ' ')
check "a 0.1.0 database works with the new library (send, poll, ack, publish)" " t 1 t t " "$probe"
sql "DELETE FROM mq.outbox WHERE payload = '{\"while\": \"0.1.0\"}'" >/dev/null
"${PSQL[@]}" -c "ALTER EXTENSION mq UPDATE" || bad "ALTER EXTENSION mq UPDATE failed"
check "installed version after" "$default" "$(sql "SELECT extversion FROM pg_extension WHERE extname = 'mq'")"
"${PSQL[@]}" -f "$MQ_ROOT/test/ops/snapshot.sql" >"$OPS_WORK/after.snap"
# grants are compared below; 0.2.0 may change the extension's own ACLs
if diff <(grep -v '^acl ' "$OPS_WORK/before.snap" | sed 's/"mq_event_id": "[^"]*"//') \
	<(grep -v '^acl ' "$OPS_WORK/after.snap" | sed 's/"mq_event_id": "[^"]*"//') >"$OPS_WORK/snap.diff"; then
	ok "every row survived the update ($(wc -l <"$OPS_WORK/after.snap") lines)"
else
	bad "rows changed by the update: $(head -c 600 "$OPS_WORK/snap.diff")"
fi
check "grants survived" "t t" "$(sql "SELECT has_table_privilege('mq_ops_app', 'mq.queue_stats', 'SELECT'),
  has_function_privilege('mq_ops_app', 'mq.send(text, jsonb, jsonb, interval, text)', 'EXECUTE')" | tr '|' ' ')"

"${PSQL[@]}" -d mq_fresh -c "CREATE EXTENSION mq" || bad "CREATE EXTENSION mq failed"
# the upgraded database's own grants are not part of the schema
sql "REVOKE SELECT ON mq.queue_stats FROM mq_ops_app;
  REVOKE EXECUTE ON FUNCTION mq.send(text, jsonb, jsonb, interval, text) FROM mq_ops_app" >/dev/null
"${PSQL[@]}" -f "$MQ_ROOT/test/ops/catalog.sql" >"$OPS_WORK/upgraded.cat"
"${PSQL[@]}" -d mq_fresh -f "$MQ_ROOT/test/ops/catalog.sql" >"$OPS_WORK/fresh.cat"
if diff "$OPS_WORK/fresh.cat" "$OPS_WORK/upgraded.cat" >"$OPS_WORK/cat.diff"; then
	ok "fresh and upgraded schemas are equal ($(wc -l <"$OPS_WORK/fresh.cat") catalog lines)"
else
	bad "fresh and upgraded schemas differ (< fresh, > upgraded): $(head -c 1500 "$OPS_WORK/cat.diff")"
fi

# --- the worker on: pending rows relayed, every feature works ----------------
sed -i 's/^mq.worker_enabled = off$/mq.worker_enabled = on/' "$C/data/postgresql.conf"
sql "SELECT pg_reload_conf()" >/dev/null
wait_for 20 "SELECT NOT EXISTS (SELECT 1 FROM mq.outbox)" || bad "the worker did not relay the pending rows"
check "pending rows relayed into their destinations (one fans out to two)" 6 "$(sql "SELECT
  (SELECT count(*) FROM mq.queue_message WHERE payload ? 'pending')
  + (SELECT count(*) FROM mq.topic_record WHERE payload ? 'pending')")"
"${PSQL[@]}" -At -f "$MQ_ROOT/test/ops/use.sql" >"$OPS_WORK/use.out" 2>&1
if diff "$MQ_ROOT/test/ops/use.expected" "$OPS_WORK/use.out" >"$OPS_WORK/use.diff"; then
	ok "every feature works after the update"
else
	bad "features after the update: $(head -c 800 "$OPS_WORK/use.diff")"
fi
ops_finish "0.1.0 -> $default"
