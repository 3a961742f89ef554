#!/usr/bin/env bash
# test/lint/sql_qualified.sh: the SQL that mq's C code issues names nothing
# through search_path.  mq's entry points run as the extension's owner, with
# the caller's search_path; an unqualified operator, function or type in a
# statement string would resolve to whatever the caller put first in the
# path (a planted public.= runs as the owner).  So every operator is
# OPERATOR(pg_catalog.x), every function and type is schema-qualified.
#
# Checked: the string literals of src/*.c that are SQL (the lines of a
# statement: they start with a keyword or continue one), outside messages.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 - <<'PY'
import re, sys, glob

KEYWORDS = {'select', 'from', 'where', 'and', 'or', 'not', 'in', 'exists', 'any', 'all',
            'values', 'lateral', 'over', 'filter', 'cast', 'row', 'array', 'join', 'on',
            'as', 'using', 'coalesce', 'greatest', 'least', 'nullif', 'returning', 'set',
            'into', 'update', 'insert', 'delete', 'with', 'case', 'when', 'then', 'else',
            'limit', 'offset', 'order', 'by', 'group', 'conflict', 'do', 'nothing', 'key',
            'share', 'of', 'for', 'union', 'distinct', 'is', 'null', 'table', 'only'}
SQL_START = re.compile(r'^\s*(SELECT|UPDATE|INSERT|DELETE|WITH|FROM|WHERE|AND|OR|JOIN|LEFT|CROSS|SET|ON|ORDER|LIMIT|RETURNING|VALUES|GROUP|UNION|FOR|INNER|ALTER|CREATE|DROP|REVOKE|GRANT)\b', re.I)
bad = []
for path in sorted(glob.glob('src/*.c')):
    text = open(path).read()
    # drop comments
    text = re.sub(r'/\*.*?\*/', lambda m: '\n' * m.group(0).count('\n'), text, flags=re.S)
    in_msg = False
    depth = 0
    for no, line in enumerate(text.split('\n'), 1):
        if re.search(r'\b(errmsg|errdetail|errhint|errmsg_internal|elog|errcontext|appendStringInfo\w*\(\s*\w+\s*,\s*_?\(?)\b', line) and 'SPI' not in line:
            in_msg = True
        lits = re.findall(r'"((?:[^"\\]|\\.)*)"', line)
        if in_msg:
            depth += line.count('(') - line.count(')')
            if depth <= 0:
                in_msg = False
                depth = 0
            continue
        if not lits:
            continue
        sql = ' '.join(lits)
        if not (SQL_START.search(sql) or re.search(r'\bmq\.\w+', sql) or 'OPERATOR(' in sql):
            continue
        s = re.sub(r'OPERATOR\(pg_catalog\.[^)]+\)', ' ', sql)
        s = re.sub(r"'[^']*'", "''", s)            # string constants
        s = re.sub(r'\\"[^"\\]*\\"', 'ident', s)   # quoted identifiers
        s = re.sub(r'%[ds]', '0', s)
        # assignments of an UPDATE's SET list are not operators
        s = re.sub(r'(^|\bSET\s+|\bUPDATE\s+SET\s+|,)\s*[a-z_][a-z0-9_.]*\s*=(?!=)', r'\1 ', s, flags=re.I)
        s = re.sub(r'\bAS\s+[a-z_]\w*\s*\(', 'AS x ', s, flags=re.I)
        problems = []
        for op in re.findall(r'(<>|<=|>=|!=|\|\||@>|<@|&&|(?<![:<>!=])=(?!>)|(?<![<-])<(?![=>@])|(?<![-<>=])>(?![=])|(?<!\w)\+|(?<=[\s)])-(?=[\s(]))', s):
            problems.append('operator ' + op.strip())
        for t in re.findall(r'::\s*(?!pg_catalog\.|mq\.)([a-z_]+)', s, re.I):
            problems.append('type ::' + t)
        for fn in re.findall(r'(?<![\w.])([a-z_][a-z0-9_]*)\s*\(', s, re.I):
            if fn.lower() not in KEYWORDS:
                problems.append('function ' + fn)
        if problems:
            bad.append('%s:%d: %s   [%s]' % (path, no, ', '.join(sorted(set(problems))), line.strip()))
if bad:
    print('unqualified names in SQL issued by C (qualify them: OPERATOR(pg_catalog.=), pg_catalog.now(), ::pg_catalog.text):')
    print('\n'.join(bad))
    sys.exit(1)
print('sql_qualified: ok')
PY
