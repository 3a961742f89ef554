#!/usr/bin/env bash
# test/faults/no_preload.sh: without shared_preload_libraries = 'mq',
# CREATE EXTENSION mq must refuse, with an error and a hint naming the
# setting, and leave nothing behind.
#
# Starts a second throwaway cluster (no preload) next to the suite's,
# runs CREATE EXTENSION mq there, counts: refusals (must be 1), the hint
# (must name shared_preload_libraries), mq objects left (schema, extension:
# must be 0).
NAME=no_preload
source "$(dirname "$0")/common.bash"
D=$(mktemp -d /tmp/mq-nopreload.XXXXXX)
chmod 755 "$D"
[ "$(id -u)" -eq 0 ] && chown postgres: "$D"
PORT=$((PGPORT + 1000))
cleanup() {
	"${MQ_RUNAS[@]}" "$MQ_PGBIN/pg_ctl" -D "$D/data" -m immediate stop >/dev/null 2>&1
	rm -rf "$D"
}
trap cleanup EXIT
"${MQ_RUNAS[@]}" "$MQ_PGBIN/initdb" -D "$D/data" -A trust -U "$PGUSER" --no-sync >"$D/initdb.log" 2>&1 ||
	die "initdb failed"
cat >>"$D/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$D'
port = $PORT
CONF
"${MQ_RUNAS[@]}" "$MQ_PGBIN/pg_ctl" -D "$D/data" -l "$D/server.log" -w -t 60 start >/dev/null ||
	die "cannot start a cluster without preload"

for _ in 1 2 3 4 5; do
	out=$("$MQ_PGBIN/psql" -X -h "$D" -p $PORT -d postgres -v VERBOSITY=default \
		-c "CREATE EXTENSION mq" 2>&1)
	rc=$?
	[ $rc -ne 2 ] && break # 2: could not connect (yet)
	sleep 1
done
[ $rc -eq 2 ] && say "  cannot connect: $out; $(tail -3 "$D/server.log")"
left=$("$MQ_PGBIN/psql" -X -At -h "$D" -p $PORT -d postgres \
	-c "SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'mq')
	         + (SELECT count(*) FROM pg_namespace WHERE nspname = 'mq')")
say "  CREATE EXTENSION mq: exit $rc; $(echo "$out" | grep -m1 ERROR); $left mq objects left"
[ $rc -ne 0 ] || bad "CREATE EXTENSION mq succeeded without shared_preload_libraries"
echo "$out" | grep -q 'ERROR:.*shared_preload_libraries' || bad "the error does not name shared_preload_libraries"
echo "$out" | grep -q "HINT:.*shared_preload_libraries" || bad "no hint naming shared_preload_libraries"
[ "$left" = 0 ] || bad "$left mq objects left behind"
finish
