#!/usr/bin/env bash
# test/ops/reference.sh: doc/reference.md documents the installed API.
#
# In a database with a fresh CREATE EXTENSION mq, every function of schema
# mq whose name does not start with "_" and every view of schema mq must
# have an entry in doc/reference.md (a heading "### mq.<name>"), and the
# entry must mention each of its argument names (functions) or columns
# (views); every "### mq.<name>" heading must name an installed function
# or view.  So the reference cannot drift from the catalog.
#
# Prints "reference: N checks, N violations"; exits 1 on a violation.
source "$(dirname "$0")/../lib.sh"
mq_attach
source "$(dirname "$0")/common.bash"
set +e
ops_init reference
export PGDATABASE=mq_reference
DOC=$MQ_ROOT/doc/reference.md
[ -f "$DOC" ] || die "doc/reference.md is missing"
PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -d postgres \
	-c "DROP DATABASE IF EXISTS $PGDATABASE" -c "CREATE DATABASE $PGDATABASE" || die "cannot create the database"
sql "CREATE EXTENSION mq" >/dev/null || die "CREATE EXTENSION mq failed"

"${PSQL[@]}" -At -v doc="$(cat "$DOC")" >"$OPS_WORK/problems" <<'SQL'
WITH sec AS (
    SELECT (regexp_match(s, '^mq\.([a-z_0-9]+)'))[1] AS name, s AS body
      FROM regexp_split_to_table(:'doc', E'\n### ') s
     WHERE s ~ '^mq\.[a-z_0-9]+'),
api AS (   -- name, kind, the names an entry must mention
    SELECT p.proname::text AS name, 'function' AS kind,
           array(SELECT a.n FROM unnest(coalesce(p.proargnames, '{}'),
                                       coalesce(p.proargmodes, array_fill('i'::"char", ARRAY[coalesce(cardinality(p.proargnames), 0)]))) a(n, m)
                  WHERE a.m IN ('i', 'b', 'v') AND a.n <> '') AS words
      FROM pg_proc p
     WHERE p.pronamespace = 'mq'::regnamespace AND p.proname !~ '^_'
    UNION ALL
    SELECT c.relname::text, 'view',
           array(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
      FROM pg_class c WHERE c.relnamespace = 'mq'::regnamespace AND c.relkind IN ('v', 'm'))
SELECT format('%s mq.%s has no entry (### mq.%s) in doc/reference.md', a.kind, a.name, a.name)
  FROM (SELECT DISTINCT name, kind FROM api) a
 WHERE NOT EXISTS (SELECT 1 FROM sec WHERE sec.name = a.name)
UNION ALL
SELECT DISTINCT format('the entry of mq.%s does not mention %s', a.name, w)
  FROM api a CROSS JOIN unnest(a.words) w JOIN sec ON sec.name = a.name
 WHERE NOT EXISTS (SELECT 1 FROM sec s2 WHERE s2.name = a.name AND s2.body ~ ('\m' || w || '\M'))
UNION ALL
SELECT format('doc/reference.md has an entry for mq.%s, which is not installed', s.name)
  FROM sec s WHERE NOT EXISTS (SELECT 1 FROM api WHERE api.name = s.name)
ORDER BY 1;
SQL
[ $? -eq 0 ] || die "the check query failed"
n=$(sql "SELECT count(DISTINCT proname) FROM pg_proc WHERE pronamespace = 'mq'::regnamespace AND proname !~ '^_'")
v=$(sql "SELECT count(*) FROM pg_class WHERE relnamespace = 'mq'::regnamespace AND relkind IN ('v', 'm')")
while IFS= read -r line; do
	[ -n "$line" ] && bad "$line"
done <"$OPS_WORK/problems"
[ -s "$OPS_WORK/problems" ] || ok "all documented"
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $PGDATABASE" >/dev/null 2>&1
ops_finish "$n functions and $v views in the catalog"
