-- test/ops/catalog.sql: the schema of the mq extension in this database,
-- as sorted text lines without OIDs: its member objects, functions with
-- their definitions and ACLs, tables with columns, options and ACLs,
-- indexes, constraints (ACLs with defaults spelled out), triggers, views, types, sequences and what
-- pg_dump dumps of it.  A fresh CREATE EXTENSION and an upgraded one must
-- print the same (test/ops/upgrade.sh); objects created at run time (a
-- topic's storage) are not members and are left out.
\pset format unaligned
\pset tuples_only on
WITH ext AS (SELECT oid, extversion, extconfig, extcondition FROM pg_extension WHERE extname = 'mq'),
mem AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
rel AS (   -- member relations, and the row types of member composite types
    SELECT c.* FROM pg_class c
     WHERE c.oid IN (SELECT objid FROM mem WHERE classid = 'pg_class'::regclass)
        OR c.oid IN (SELECT t.typrelid FROM pg_type t JOIN mem ON mem.classid = 'pg_type'::regclass
                                                        AND mem.objid = t.oid))
SELECT line FROM (
    SELECT 'version ' || extversion AS line FROM ext
    UNION ALL
    SELECT 'member ' || pg_describe_object(mem.classid, mem.objid, 0) FROM mem
    UNION ALL
    SELECT format('function %s acl=%s %s', p.oid::regprocedure, coalesce(p.proacl, acldefault('f', p.proowner)),
                  CASE WHEN p.prokind = 'a' THEN 'aggregate' ELSE pg_get_functiondef(p.oid) END)
      FROM pg_proc p JOIN mem ON mem.classid = 'pg_proc'::regclass AND mem.objid = p.oid
    UNION ALL
    SELECT format('relation %s kind=%s persistence=%s options=%s acl=%s', c.oid::regclass, c.relkind,
                  c.relpersistence, c.reloptions,
                  coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)))
      FROM rel c
    UNION ALL
    SELECT format('column %s %s %s %s notnull=%s default=%s acl=%s', a.attrelid::regclass, a.attnum,
                  a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(ad.adbin, ad.adrelid), a.attacl)
      FROM pg_attribute a JOIN rel c ON c.oid = a.attrelid
      LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT format('index %s %s', i.indexrelid::regclass, pg_get_indexdef(i.indexrelid))
      FROM pg_index i JOIN rel c ON c.oid = i.indrelid
    UNION ALL
    SELECT format('constraint %s %s %s', c.oid::regclass, k.conname, pg_get_constraintdef(k.oid))
      FROM pg_constraint k JOIN rel c ON c.oid = k.conrelid
    UNION ALL
    SELECT format('trigger %s %s', c.oid::regclass, pg_get_triggerdef(t.oid))
      FROM pg_trigger t JOIN rel c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal
    UNION ALL
    SELECT format('view %s %s', c.oid::regclass, pg_get_viewdef(c.oid)) FROM rel c WHERE c.relkind IN ('v', 'm')
    UNION ALL
    SELECT format('sequence %s %s start=%s inc=%s min=%s max=%s cache=%s cycle=%s', s.seqrelid::regclass,
                  format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
                  s.seqcache, s.seqcycle)
      FROM pg_sequence s JOIN rel c ON c.oid = s.seqrelid
    UNION ALL
    SELECT format('type %s %s acl=%s', t.oid::regtype, t.typtype, coalesce(t.typacl, acldefault('T', t.typowner)))
      FROM pg_type t JOIN mem ON mem.classid = 'pg_type'::regclass AND mem.objid = t.oid
    UNION ALL
    SELECT format('dumped %s %s', x.rel::regclass, x.cond)
      FROM ext, unnest(ext.extconfig, ext.extcondition) x(rel, cond)
    UNION ALL
    SELECT format('schema %s acl=%s', n.nspname, coalesce(n.nspacl, acldefault('n', n.nspowner))) FROM pg_namespace n WHERE n.nspname = 'mq'
) s ORDER BY line COLLATE "C";
