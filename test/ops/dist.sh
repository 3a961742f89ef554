#!/usr/bin/env bash
# test/ops/dist.sh: META.json and the release tarball (make dist).
#
# META.json must be valid JSON in PGXN's meta spec 1.0.0 (the required
# keys; version and provides.mq.version equal to mq.control's
# default_version; the provided file exists).  make dist must produce
# mq-<version>.tar.gz with one top directory and the files the build and
# the install need, and no build products; the tarball must build with
# warnings as errors and install (into a staging DESTDIR, so that the
# suite's own installation is left alone) the library, the control file
# and every SQL script, identical to the tree's.
#
# Prints "dist: N checks, N violations"; exits 1 on a violation.
source "$(dirname "$0")/../lib.sh"
mq_attach
source "$(dirname "$0")/common.bash"
set +e
ops_init dist
cd "$MQ_ROOT"
version=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" mq.control)

meta=$(sql "SELECT pg_catalog.jsonb_pretty(\$m\$$(cat META.json)\$m\$::jsonb) IS NOT NULL") ||
	die "META.json is not valid JSON"
check "META.json is JSON" t "$meta"
keys=$(sql "WITH m AS (SELECT \$m\$$(cat META.json)\$m\$::jsonb AS j)
  SELECT string_agg(k, ' ' ORDER BY k) FROM m, unnest(ARRAY['name', 'abstract', 'version', 'maintainer',
    'license', 'provides', 'meta-spec']) k WHERE NOT m.j ? k")
check "META.json has the required keys" "" "$keys"
check "META.json: meta-spec 1.0.0, name, versions" "1.0.0 mq $version $version mq--0.1.0.sql" \
	"$(sql "WITH m AS (SELECT \$m\$$(cat META.json)\$m\$::jsonb AS j)
  SELECT concat_ws(' ', j#>>'{meta-spec,version}', j->>'name', j->>'version',
                   j#>>'{provides,mq,version}', j#>>'{provides,mq,file}') FROM m")"

if ! git rev-parse --git-dir >/dev/null 2>&1; then
	ok "not a git checkout: make dist skipped"
	ops_finish
fi
make -s dist DISTDIR="$OPS_WORK" >"$OPS_WORK/dist.log" 2>&1 || { cat "$OPS_WORK/dist.log"; die "make dist failed"; }
tarball=$OPS_WORK/mq-$version.tar.gz
[ -f "$tarball" ] || die "make dist did not write mq-$version.tar.gz"
ok "make dist wrote mq-$version.tar.gz ($(du -k "$tarball" | cut -f1) kB)"
tops=$(tar -tzf "$tarball" | cut -d/ -f1 | sort -u | tr '\n' ' ')
check "one top directory" "mq-$version " "$tops"
for f in META.json Makefile mq.control mq--0.1.0.sql "mq--0.1.0--$version.sql" README.md src/mq.h \
	doc/operations.md doc/reference.md; do
	tar -tzf "$tarball" "mq-$version/$f" >/dev/null 2>&1 || bad "the tarball lacks $f"
done
check "no build products in the tarball" "" "$(tar -tzf "$tarball" | grep -E '\.(o|so|bc)$' | tr '\n' ' ')"

tar -xzf "$tarball" -C "$OPS_WORK" || die "cannot unpack the tarball"
B=$OPS_WORK/mq-$version
if make -C "$B" -s -j2 PG_CONFIG="$PG_CONFIG" MQ_WERROR=1 >"$OPS_WORK/build.log" 2>&1; then
	ok "the tarball builds with -Werror"
else
	bad "the tarball does not build: $(tail -5 "$OPS_WORK/build.log" | tr '\n' ' ')"
fi
if make -C "$B" -s PG_CONFIG="$PG_CONFIG" DESTDIR="$OPS_WORK/stage" install >>"$OPS_WORK/build.log" 2>&1; then
	ok "the tarball installs"
else
	bad "the tarball does not install: $(tail -5 "$OPS_WORK/build.log" | tr '\n' ' ')"
fi
lib=$OPS_WORK/stage$("$PG_CONFIG" --pkglibdir)
ext=$OPS_WORK/stage$("$PG_CONFIG" --sharedir)/extension
[ -f "$lib/mq.so" ] && ok "installed mq.so" || bad "mq.so not installed in $lib"
for f in mq.control mq--*.sql; do
	cmp -s "$f" "$ext/$f" && ok "installed $f" || bad "$f not installed as in the tree"
done
ops_finish "mq-$version.tar.gz"
