#!/usr/bin/env bash
# test/run_tests.sh: the whole test suite, on a throwaway cluster.
#
#   lint       (test/lint/*.sh)     static checks of the scripts
#   pg_regress (make installcheck)  the API contract, every error case
#   pg_prove   (test/pgtap/*.sql)   finer checks with pgTAP
#   isolation  (test/isolation)     concurrency specs
#   crash      (test/crash/*.sh)    kill -9 under load, then count
#   faults     (test/faults/*.sh)   hostile settings, inputs and roles vs the worker
#   ops        (test/ops/*.sh)      dump/restore, upgrade, standby, pooler, decoding
#
# Prints a pass/fail line per suite and a closing "N passed, N failed"
# line; exits non-zero if anything failed.  MQ_SUITES="regress tap" runs a
# subset.
source "$(dirname "$0")/lib.sh"
cd "$MQ_ROOT"
set +e

mq_setup || exit 1
passed=0
failed=0
failures=()

suite() {
	local name=$1
	shift
	case " ${MQ_SUITES:-lint regress tap isolation crash faults ops} " in
	*" $name "*) ;;
	*) return 0 ;;
	esac
	mq_log "suite: $name"
	if "$@"; then
		passed=$((passed + 1))
		echo "suite $name: ok"
	else
		failed=$((failed + 1))
		failures+=("$name")
		echo "suite $name: FAILED"
	fi
}

run_regress() {
	make -s PG_CONFIG="$PG_CONFIG" installcheck || {
		[ -f regression.diffs ] && head -200 regression.diffs
		return 1
	}
}

run_tap() {
	local db=mq_tap
	mq_psql -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" || return 1
	mq_psql -d $db -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION mq" || return 1
	pg_prove --ext .sql -d $db -U "$PGUSER" -h "$PGHOST" -p "$PGPORT" test/pgtap/
}

run_isolation() {
	local specs out=/tmp/mq-isolation.$$
	specs=$(cd test/isolation/specs && ls *.spec | sed 's/\.spec$//')
	rm -rf "$out"
	mkdir -p "$out"
	"$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/isolation/pg_isolation_regress" \
		--inputdir=test/isolation --outputdir="$out" \
		--bindir="$MQ_PGBIN" --load-extension=mq --dbname=mq_isolation \
		$specs
	local rc=$?
	if [ $rc -ne 0 ]; then
		cat "$out/regression.diffs" 2>/dev/null | head -300
	fi
	rm -rf "$out"
	return $rc
}

# run_scripts DIR: every DIR/*.sh against the running cluster; MQ_SCRIPTS
# (a space-separated list of base names) runs only those.
run_scripts() {
	local rc=0 s
	for s in "$1"/*.sh; do
		[ -e "$s" ] || continue
		if [ -n "${MQ_SCRIPTS:-}" ]; then
			case " $MQ_SCRIPTS " in
			*" $(basename "$s" .sh) "*) ;;
			*) continue ;;
			esac
		fi
		mq_log "script: $s"
		bash "$s" || { rc=1; echo "script $s: FAILED"; }
	done
	return $rc
}

suite lint run_scripts test/lint
suite regress run_regress
suite tap run_tap
suite isolation run_isolation
suite crash run_scripts test/crash
suite faults run_scripts test/faults
suite ops run_scripts test/ops

echo
if [ $failed -gt 0 ]; then
	echo "failed suites: ${failures[*]}"
fi
echo "suites: $passed passed, $failed failed"
[ $failed -eq 0 ]
