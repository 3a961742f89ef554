#!/usr/bin/env bash
# test/faults/worker_db_commands.sh: DROP DATABASE, ALTER DATABASE ...
# RENAME and CREATE DATABASE ... TEMPLATE against a database with mq.
#
# 1. A role with no rights (and one with CREATEDB that owns nothing) runs
#    each command 5 times: each fails on permissions, and the worker must
#    stay up (same pid throughout).
# 2. The owner renames the database (the worker comes back, same database),
#    copies it with TEMPLATE (worker back in the source; the copy gets one
#    too), and drops the copy (must not wait on the worker).
# 3. The owner drops the database while a client is connected: PostgreSQL
#    refuses after its 5 s wait, and the worker must be back within 15 s.
# Prints counts; parallel query elsewhere must still get its workers.
NAME=worker_db_commands
source "$(dirname "$0")/common.bash"
DB=mq_f_cmd
new_db $DB mq
sql postgres "DROP DATABASE IF EXISTS mq_f_cmd2 WITH (FORCE)" >/dev/null 2>&1
sql postgres "DROP DATABASE IF EXISTS mq_f_cmd_copy WITH (FORCE)" >/dev/null 2>&1
sql postgres "DROP ROLE IF EXISTS mq_f_evil" >/dev/null 2>&1
sql postgres "DROP ROLE IF EXISTS mq_f_creator" >/dev/null 2>&1
sql postgres "CREATE ROLE mq_f_evil LOGIN; CREATE ROLE mq_f_creator LOGIN CREATEDB" || die "cannot create roles"

pid=$(wait_worker $DB 15) || die "no worker in $DB"

# 1. unprivileged
refused=0
for role in mq_f_evil mq_f_creator; do
	for _ in 1 2 3 4 5; do
		for cmd in "DROP DATABASE $DB" "ALTER DATABASE $DB RENAME TO mq_f_cmd2" \
			"CREATE DATABASE mq_f_cmd_copy TEMPLATE $DB"; do
			if "${PSQL[@]}" -U $role -d postgres -c "$cmd" 2>/dev/null; then
				bad "$role could run: $cmd"
			else
				refused=$((refused + 1))
			fi
			now=$(worker_pid $DB)
			[ "$now" = "$pid" ] || bad "after '$cmd' by $role the worker is ${now:-gone} (was $pid)"
		done
	done
done
say "  1. $refused commands refused; worker $pid -> $(worker_pid $DB)"

# 2. the owner: rename and back, copy, drop the copy
start=$SECONDS
sql postgres "ALTER DATABASE $DB RENAME TO mq_f_cmd2" || bad "rename failed"
p2=$(wait_worker mq_f_cmd2 15) || bad "no worker after RENAME within 15 s"
sql postgres "ALTER DATABASE mq_f_cmd2 RENAME TO $DB" || bad "rename back failed"
p3=$(wait_worker $DB 15) || bad "no worker after the second RENAME within 15 s"
sql postgres "CREATE DATABASE mq_f_cmd_copy TEMPLATE $DB" || bad "copy failed"
p4=$(wait_worker $DB 15 "") || bad "no worker in the source after the copy"
pc=$(wait_worker mq_f_cmd_copy 15) || bad "no worker in the copy within 15 s"
t0=$SECONDS
sql postgres "DROP DATABASE mq_f_cmd_copy" || bad "drop of the copy failed"
tdrop=$((SECONDS - t0))
[ "$tdrop" -le 2 ] || bad "DROP DATABASE took $tdrop s"
say "  2. rename: worker ${p2:-none}, back ${p3:-none}; copy: source ${p4:-none}, copy ${pc:-none}; drop took $tdrop s"

# 3. a command that passes the permission checks, then fails
( "${PSQL[@]}" -d $DB -c "SELECT pg_sleep(8)" >/dev/null 2>&1 ) &
holder=$!
sleep 0.5
if sql postgres "DROP DATABASE $DB" 2>/dev/null; then
	bad "DROP DATABASE succeeded while a client was connected"
fi
p5=$(wait_worker $DB 15) || bad "no worker within 15 s after the failed DROP DATABASE"
kill $holder 2>/dev/null
wait $holder 2>/dev/null
say "  3. failed DROP DATABASE: worker back: ${p5:-none}"

parallel_check "after the database commands"
sql postgres "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
sql postgres "DROP ROLE mq_f_evil; DROP ROLE mq_f_creator" >/dev/null
finish
