# test/lib.sh: shared set-up for the demo, the test suite and the benchmarks.
#
# Source it, then call mq_setup.  It installs missing Debian packages (as
# root), builds mq with warnings as errors, installs it, and starts a
# throwaway cluster (initdb in a temp dir, unix socket only, owned by the
# postgres OS user when run as root, shared_preload_libraries = 'mq').
# An EXIT trap always stops the cluster and removes its directory.
#
# After mq_setup: PGHOST, PGPORT, PGUSER, PGDATABASE point at the cluster;
# MQ_PGBIN is the server's bin dir; mq_psql runs psql quietly.

set -euo pipefail

MQ_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MQ_PGVER=${MQ_PGVER:-15}
MQ_PGBIN=${MQ_PGBIN:-/usr/lib/postgresql/$MQ_PGVER/bin}
export PG_CONFIG=${PG_CONFIG:-$MQ_PGBIN/pg_config}
MQ_PORT=${MQ_PORT:-54$((RANDOM % 90 + 10))}
MQ_CLUSTER_DIR=${MQ_CLUSTER_DIR:-}
MQ_RUNAS=()

mq_log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

# mq_packages: install what is missing, when we are root.
mq_packages() {
	local need=(postgresql-$MQ_PGVER postgresql-server-dev-$MQ_PGVER
		postgresql-$MQ_PGVER-pgtap libtap-parser-sourcehandler-pgtap-perl
		postgresql-$MQ_PGVER-pgq3 postgresql-$MQ_PGVER-wal2json pgbouncer make gcc)
	local missing=()
	for p in "${need[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: ${missing[*]} (run as root to install them)" >&2
		return 1
	fi
	mq_log "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	# Debian starts a default cluster on install; the throwaway one is ours.
	pg_ctlcluster "$MQ_PGVER" main stop 2>/dev/null || true
}

# mq_build: compile with warnings as errors and install the extension.
mq_build() {
	mq_log "building mq"
	make -C "$MQ_ROOT" -s PG_CONFIG="$PG_CONFIG" MQ_WERROR=1 >/dev/null
	make -C "$MQ_ROOT" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
}

# mq_stop: stop and remove the throwaway cluster (EXIT trap).
mq_stop() {
	local rc=$?
	if [ -n "$MQ_CLUSTER_DIR" ] && [ -d "$MQ_CLUSTER_DIR" ]; then
		"${MQ_RUNAS[@]}" "$MQ_PGBIN/pg_ctl" -D "$MQ_CLUSTER_DIR/data" -m immediate stop >/dev/null 2>&1 || true
		if [ "${MQ_KEEP_LOG:-}" = 1 ]; then
			cp "$MQ_CLUSTER_DIR/server.log" "$MQ_ROOT/server.log" 2>/dev/null || true
		fi
		rm -rf "$MQ_CLUSTER_DIR"
	fi
	exit $rc
}

# mq_start: initdb + start a cluster on a unix socket in a temp dir.
mq_start() {
	MQ_CLUSTER_DIR=$(mktemp -d /tmp/mq-cluster.XXXXXX)
	trap mq_stop EXIT
	trap 'exit 130' INT TERM
	chmod 755 "$MQ_CLUSTER_DIR"
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$MQ_CLUSTER_DIR"
		MQ_RUNAS=(runuser -u postgres --)
		export PGUSER=postgres
	else
		MQ_RUNAS=()
		export PGUSER=${PGUSER:-$(id -un)}
	fi
	mq_log "starting a throwaway cluster in $MQ_CLUSTER_DIR (port $MQ_PORT)"
	"${MQ_RUNAS[@]}" "$MQ_PGBIN/initdb" -D "$MQ_CLUSTER_DIR/data" -A trust -U "$PGUSER" \
		--no-sync >"$MQ_CLUSTER_DIR/initdb.log" 2>&1 || { cat "$MQ_CLUSTER_DIR/initdb.log"; return 1; }
	cat >>"$MQ_CLUSTER_DIR/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$MQ_CLUSTER_DIR'
port = $MQ_PORT
shared_preload_libraries = 'mq'
max_connections = 60
max_worker_processes = 32
shared_buffers = 512MB
max_wal_size = 4GB
checkpoint_timeout = 15min
max_prepared_transactions = 10
log_min_messages = warning
CONF
	if [ -n "${MQ_EXTRA_CONF:-}" ]; then
		printf '%s\n' "$MQ_EXTRA_CONF" >>"$MQ_CLUSTER_DIR/data/postgresql.conf"
	fi
	"${MQ_RUNAS[@]}" "$MQ_PGBIN/pg_ctl" -D "$MQ_CLUSTER_DIR/data" -l "$MQ_CLUSTER_DIR/server.log" \
		-w -t 60 start >/dev/null || { cat "$MQ_CLUSTER_DIR/server.log"; return 1; }
	export PGHOST=$MQ_CLUSTER_DIR PGPORT=$MQ_PORT PGDATABASE=postgres
	export MQ_PGDATA=$MQ_CLUSTER_DIR/data MQ_CLUSTER_DIR
}

# mq_attach: in a child script, use the cluster the parent started.
mq_attach() {
	: "${MQ_CLUSTER_DIR:?mq_attach needs a cluster started by mq_start}"
	MQ_PGDATA=$MQ_CLUSTER_DIR/data
	if [ "$(id -u)" -eq 0 ]; then MQ_RUNAS=(runuser -u postgres --); else MQ_RUNAS=(); fi
}

# mq_crash: kill -9 the postmaster and all its children, like a power cut.
mq_crash() {
	local pid
	pid=$(head -1 "$MQ_PGDATA/postmaster.pid")
	kill -9 "$pid" 2>/dev/null || true
	pkill -9 -P "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		pgrep -P "$pid" >/dev/null || kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$MQ_PGDATA/postmaster.pid"
}

# mq_server_start: (re)start the server after mq_crash.
mq_server_start() {  # returns once the server accepts connections (pg_ctl -w)
	"${MQ_RUNAS[@]}" "$MQ_PGBIN/pg_ctl" -D "$MQ_PGDATA" -l "$MQ_CLUSTER_DIR/server.log" \
		-w -t 120 start >/dev/null
}

mq_psql() { "$MQ_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

# mq_setup: everything above, in order.
# MQ_SKIP_BUILD=1 uses the mq already installed.
mq_setup() {
	mq_packages
	[ "${MQ_SKIP_BUILD:-}" = 1 ] || mq_build
	mq_start
}
