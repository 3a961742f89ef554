#!/usr/bin/env bash
# test/lint/upgrade_dups.sh: every object is (re)defined at most once in
# the upgrade script.  Two CREATE OR REPLACE FUNCTION of one function in
# different sections would both run, and the later one would silently
# undo the earlier one's change; so a second definition is an error.
# Overloads (same name, other argument types) are told apart by the
# argument list as written.
set -euo pipefail
cd "$(dirname "$0")/../.."
rc=0
for f in mq--*--*.sql; do
	dups=$(grep -ioE '^CREATE( OR REPLACE)? (FUNCTION|PROCEDURE|VIEW|TABLE|SEQUENCE|TYPE|TRIGGER) +[a-z0-9_."]+( *\([^)]*\))?' "$f" |
		sed -E 's/^CREATE( OR REPLACE)? //I; s/ +/ /g' | tr 'A-Z' 'a-z' | sort | uniq -d || true)
	if [ -n "$dups" ]; then
		echo "$f defines these more than once (merge them into one definition):"
		echo "$dups" | sed 's/^/  /'
		rc=1
	fi
done
[ $rc -eq 0 ] && echo "upgrade_dups: ok"
exit $rc
