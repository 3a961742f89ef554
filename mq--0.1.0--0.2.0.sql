-- mq--0.1.0--0.2.0.sql: upgrade from 0.1.0 to 0.2.0.
--
-- There is no mq--0.2.0.sql: CREATE EXTENSION mq runs mq--0.1.0.sql and
-- then this script, so a new install and an upgraded one end with the same
-- schema by construction (test/ops checks it against the released 0.1.0).
-- mq--0.1.0.sql is released and never changes; every schema change of 0.2.0
-- goes here, in the section of its area.
\echo Use "ALTER EXTENSION mq UPDATE TO '0.2.0'" to load this file. \quit

--------------------------------------------------------------------------
-- Operations: dump/restore, sequences and segments dumped, restore safety
--------------------------------------------------------------------------

-- The relay lock is mq's own (MQ_LOCK_RELAY, src/mq.h), no longer the
-- user advisory lock (28017, 2) of 0.1.0, so a session holding that one
-- cannot stop relaying and segment maintenance.  The relay and
-- mq._maintain_segments take it with mq._lock_relay().  A pass that found
-- 0.1.0 takes the advisory lock (src/relay.c, mq_relay_lock); this update
-- holds it until it commits, so such a pass either ends before the update
-- or waits for it and then takes the new lock too: no pass of the old lock
-- runs next to one of the new.
SELECT pg_catalog.pg_advisory_xact_lock(28017, 2);

-- pg_dump dumps the rows of these tables and the values of these
-- sequences.  Without them a restored copy hands out topic, group,
-- exchange, segment and outbox ids that the restored rows already hold
-- (23505), and retention, which walks mq.segment, never drops a segment.
-- Consumer group members are dumped too: mq.consumer_group.members lists
-- them, and their last_seen lets them lapse after session_timeout as usual.
SELECT pg_catalog.pg_extension_config_dump('mq.topic_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mq.group_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mq.exchange_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mq.segment_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mq.outbox_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mq.segment', '');
SELECT pg_catalog.pg_extension_config_dump('mq.group_member', '');

-- Topic storage indexes belong to each topic, not to mq.topic_record.  The
-- per-topic partitions are created at run time, so they are not members of
-- the extension and pg_dump dumps them with their indexes; an index on
-- mq.topic_record (a member, created by CREATE EXTENSION before the dump's
-- partitions are attached) made ATTACH PARTITION build each partition's
-- index at once, and the dump's own CREATE INDEX then failed with 42P07.
-- With the index on mq.topic_record_<id> (not a member), a restore
-- attaches bare partitions and builds their indexes after the data.
-- mq.create_topic creates the index of a new topic (its definition is in
-- the queue integrity section).
DROP INDEX mq.topic_record_offset_idx;
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT topic_id FROM mq.topic ORDER BY topic_id LOOP
        EXECUTE format('CREATE INDEX ON mq.%I (topic_id, partition, "offset")',
                       'topic_record_' || t.topic_id);
    END LOOP;
END;
$$;

-- Takes the relay lock until the end of the transaction.
CREATE FUNCTION mq._lock_relay()
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_lock_relay';
REVOKE ALL ON FUNCTION mq._lock_relay() FROM PUBLIC;

-- A restore loads table data in name order, so mq.outbox comes before the
-- queues, topics and exchanges its rows are addressed to, and every
-- sequence is set only after all table data.  Restored outbox rows
-- therefore carry seq values above what mq.outbox_seq has handed out until
-- the restore has finished; an outbox row never does otherwise (seq is
-- nextval('mq.outbox_seq')).  The relay moves only rows at or below the
-- sequence's last value, so a worker that runs while a restore loads
-- leaves the outbox alone instead of routing rows to destinations that are
-- not loaded yet; the outbox trigger accepts a row with an unknown
-- destination when its seq is above the sequence for the same reason (see
-- doc/operations.md, "Backup and restore").
CREATE OR REPLACE FUNCTION mq._relay_sql(max_rows integer)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET jit = off
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    n       bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        -- after waiting for the previous pass, we must see what it committed
        RAISE EXCEPTION 'mq.relay must run in a READ COMMITTED transaction'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF max_rows IS NULL OR max_rows < 1 THEN
        RAISE EXCEPTION 'max_rows must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM mq._lock_relay();
    WITH b AS MATERIALIZED (
        SELECT o.* FROM mq.outbox o
         WHERE o.seq <= (SELECT COALESCE(pg_sequence_last_value('mq.outbox_seq'), 0))
         ORDER BY o.seq LIMIT max_rows),
    -- each destination is looked up once; only exchanges route per message
    dk AS MATERIALIZED (
        SELECT x.aggregatetype, k.kind, k.id
          FROM (SELECT DISTINCT b.aggregatetype FROM b) x
          CROSS JOIN LATERAL mq._kind_of(x.aggregatetype) k),
    d AS MATERIALIZED (
        SELECT b.*, dk.kind AS dest_kind, dk.id AS dest_id
          FROM b JOIN dk ON dk.aggregatetype = b.aggregatetype
         WHERE dk.kind <> 'x'
        UNION ALL
        SELECT b.*, r.dest_kind, r.dest_id
          FROM b JOIN dk ON dk.aggregatetype = b.aggregatetype
          CROSS JOIN LATERAL mq._route(b.aggregatetype, b.aggregateid, b.headers, true) r
         WHERE dk.kind = 'x'),
    -- a destination dropped since the publish: the row is set aside, visible
    gone AS (
        INSERT INTO mq.outbox_dead (seq, id, aggregatetype, aggregateid, type, payload,
                                    headers, created_at, sqlstate, error, detail)
        SELECT b.seq, b.id, b.aggregatetype, b.aggregateid, b.type, b.payload, b.headers,
               b.created_at, '42704',
               format('destination "%s" does not exist', b.aggregatetype),
               'It was dropped after the message was published.'
          FROM b JOIN dk ON dk.aggregatetype = b.aggregatetype
         WHERE dk.kind IS NULL
        RETURNING 1),
    qins AS (
        INSERT INTO mq.queue_message (msg_id, queue_id, vt, enqueued_at, payload, headers)
        SELECT nextval('mq.msg_id_seq'), d.dest_id, clock_timestamp(), clock_timestamp(),
               coalesce(d.payload, 'null'::jsonb),
               coalesce(d.headers, '{}'::jsonb) || jsonb_build_object('mq_event_id', d.id)
          FROM d WHERE d.dest_kind = 'q' ORDER BY d.seq
        RETURNING queue_id),
    qdone AS (
        SELECT mq._count(q.queue_id, 'sent', count(*)), mq._wake(q.queue_id)
          FROM qins q GROUP BY q.queue_id),
    tp AS (
        SELECT d.*, t.current_seg,
               CASE WHEN d.aggregateid IS NULL THEN (d.seq % t.partitions)::integer
                         ELSE (mq.murmur2(mq._key_bytes(d.aggregateid)) & 2147483647) % t.partitions
                    END AS part
          FROM d JOIN mq.topic t ON t.topic_id = d.dest_id
         WHERE d.dest_kind = 't'),
    tn AS (
        SELECT tp.*, p.next_offset + row_number() OVER (PARTITION BY tp.dest_id, tp.part ORDER BY tp.seq) - 1 AS off
          FROM tp JOIN mq.topic_partition p ON p.topic_id = tp.dest_id AND p.partition = tp.part),
    tins AS (
        INSERT INTO mq.topic_record (seg, topic_id, partition, "offset", key, payload, headers, message_id, published_at)
        SELECT tn.current_seg, tn.dest_id, tn.part, tn.off, tn.aggregateid, tn.payload, tn.headers, tn.id, clock_timestamp()
          FROM tn ORDER BY tn.seq
        RETURNING topic_id),
    tupd AS (
        UPDATE mq.topic_partition p SET next_offset = p.next_offset + c.n
          FROM (SELECT tn.dest_id, tn.part, count(*) AS n FROM tn GROUP BY 1, 2) c
         WHERE p.topic_id = c.dest_id AND p.partition = c.part),
    tdone AS (
        SELECT mq._wake(-t.topic_id) FROM tins t GROUP BY t.topic_id),
    del AS (
        DELETE FROM mq.outbox o USING b WHERE o.seq = b.seq RETURNING 1)
    SELECT (SELECT count(*) FROM del) + 0 * (SELECT count(*) FROM qdone) + 0 * (SELECT count(*) FROM tdone)
           + 0 * (SELECT count(*) FROM gone)
      INTO n;
    RETURN n;
END;
$$;

-- Rotates and drops segments; part of mq.maintain().  Returns segments
-- dropped.  Serialized with the relay, which appends to current segments.
-- Opening or dropping a segment needs a brief exclusive lock on the topic's
-- storage; a consumer in a long fetch (wait => ...) holds it off, so each
-- step gives up after 1 s and is retried on the next pass.  Does nothing
-- while a restore is loading (see the operations section).
CREATE OR REPLACE FUNCTION mq._maintain_segments()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET lock_timeout = '1s'
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    t     record;
    r     record;
    span  interval;
    n     integer := 0;
BEGIN
    PERFORM mq._lock_relay();
    -- A restore that has loaded mq.segment but not yet set mq.segment_seq
    -- (pg_dump sets sequences after all table data) may not have loaded
    -- the segments' records either: change nothing until it has.
    IF (SELECT max(s.seg) FROM mq.segment s) > COALESCE(pg_sequence_last_value('mq.segment_seq'), 0) THEN
        RETURN 0;
    END IF;
    FOR t IN SELECT x.topic_id, x.retention, x.current_seg, s.created_at
               FROM mq.topic x JOIN mq.segment s ON s.seg = x.current_seg
    LOOP
        -- a segment covers a quarter of the retention, 1 s to 1 h
        span := greatest(interval '1 second', least(interval '1 hour', t.retention / 4));
        IF clock_timestamp() - t.created_at >= span
           AND EXISTS (SELECT 1 FROM mq.topic_record x
                        WHERE x.topic_id = t.topic_id AND x.seg = t.current_seg) THEN
            BEGIN
                PERFORM mq._new_segment(t.topic_id);
            EXCEPTION WHEN lock_not_available THEN
                CONTINUE;   -- busy: next pass
            END;
        END IF;
        -- a closed segment goes once it closed longer ago than the retention
        FOR r IN SELECT s.seg
                   FROM mq.segment s
                  WHERE s.topic_id = t.topic_id
                    AND (SELECT min(nx.created_at) FROM mq.segment nx
                          WHERE nx.topic_id = t.topic_id AND nx.seg > s.seg)
                        < clock_timestamp() - t.retention
                  ORDER BY s.seg
        LOOP
            BEGIN
                EXECUTE format('DROP TABLE mq.%I', 'topic_record_' || t.topic_id || '_' || r.seg);
                DELETE FROM mq.segment s WHERE s.seg = r.seg;
                n := n + 1;
            EXCEPTION WHEN lock_not_available THEN
                EXIT;   -- busy: next pass
            END;
        END LOOP;
    END LOOP;
    RETURN n;
END;
$$;

-- (end of section: operations)

--------------------------------------------------------------------------
-- Privileges: per-object grants, internal functions, table hardening
--------------------------------------------------------------------------

-- The model (doc/security.md): an application role needs USAGE on schema mq
-- and mq grants, never privileges on mq's tables.  Every entry point is
-- SECURITY DEFINER, owned by the extension's owner, and first checks in C
-- (src/acl.c, against a per-backend cache of mq.acl) that the calling role
-- holds the privilege it needs.  Internal functions (mq._*, trigger
-- functions) are not executable by PUBLIC; the event trigger mq_guard
-- refuses triggers, rules, policies, foreign keys and grants on mq's tables.

-- One row per (object, grantee): object_kind 'q' queue, 't' topic,
-- 'x' exchange, '*' every object (object_id 0); grantee 0 is PUBLIC.
-- privileges is a bit mask: 1 send, 2 receive, 4 publish, 8 consume,
-- 16 manage, 32 create (src/mq.h, MQ_PRIV_*).  grantee is a regrole so
-- that a dump restores grants by role name.
CREATE TABLE mq.acl (
    object_kind  "char" NOT NULL CHECK (object_kind IN ('q', 't', 'x', '*')),
    object_id    integer NOT NULL,
    grantee      regrole NOT NULL,
    privileges   integer NOT NULL CHECK (privileges >= 0 AND privileges < 64),
    PRIMARY KEY (object_kind, object_id, grantee)
);
SELECT pg_catalog.pg_extension_config_dump('mq.acl', '');

CREATE FUNCTION mq._acl_check(object_name text, privilege text)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_acl_check_sql';

CREATE FUNCTION mq._acl_invalidate()
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'mq_acl_invalidate_sql';

CREATE FUNCTION mq._acl_creator()
RETURNS regrole
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_acl_creator';

-- Whether the current role holds privilege (NULL: any) on the queue, topic
-- or exchange called object_name, or on '*'.
CREATE FUNCTION mq.has_privilege(object_name text, privilege text DEFAULT NULL)
RETURNS boolean
LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'mq_acl_has_privilege';

-- The privileges of a kind of object, as a mask and by name.
CREATE FUNCTION mq._acl_mask(kind "char", privileges text[])
RETURNS integer
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p text;
    bit integer;
    mask integer := 0;
    valid integer := CASE kind WHEN 'q' THEN 19 WHEN 't' THEN 28 WHEN 'x' THEN 20 ELSE 63 END;
BEGIN
    IF privileges IS NULL OR cardinality(privileges) = 0 THEN
        RAISE EXCEPTION 'privileges must name at least one privilege'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH p IN ARRAY privileges LOOP
        bit := CASE lower(p) WHEN 'send' THEN 1 WHEN 'receive' THEN 2 WHEN 'publish' THEN 4
                             WHEN 'consume' THEN 8 WHEN 'manage' THEN 16 WHEN 'create' THEN 32 END;
        IF bit IS NULL THEN
            RAISE EXCEPTION 'unknown mq privilege "%"', p
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'The privileges are send, receive, publish, consume, manage and create.';
        END IF;
        IF bit & valid = 0 THEN
            RAISE EXCEPTION 'privilege "%" does not apply to a %', lower(p),
                    CASE kind WHEN 'q' THEN 'queue' WHEN 't' THEN 'topic' ELSE 'exchange' END
                USING ERRCODE = 'invalid_grant_operation',
                      HINT = 'Queues take send, receive, manage; topics publish, consume, manage; exchanges publish, manage; ''*'' all of them and create.';
        END IF;
        mask := mask | bit;
    END LOOP;
    RETURN mask;
END;
$$;

-- The object a grant names: (kind, id), '*' for every object.
CREATE FUNCTION mq._acl_object(object_name text, OUT kind "char", OUT id integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF object_name IS NULL THEN
        RAISE EXCEPTION 'object_name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF object_name = '*' THEN
        kind := '*';
        id := 0;
        RETURN;
    END IF;
    SELECT k.kind, k.id INTO kind, id FROM mq._kind_of(object_name) k;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'no queue, topic or exchange is called "%"', object_name
            USING ERRCODE = 'undefined_object';
    END IF;
END;
$$;

-- The grantee a grant names: 0 for PUBLIC.
CREATE FUNCTION mq._acl_grantee(role_name text)
RETURNS regrole
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r oid;
BEGIN
    IF role_name IS NULL THEN
        RAISE EXCEPTION 'role_name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF lower(role_name) = 'public' THEN
        RETURN 0::oid::regrole;
    END IF;
    SELECT a.oid INTO r FROM pg_catalog.pg_roles a WHERE a.rolname = role_name;
    IF r IS NULL THEN
        RAISE EXCEPTION 'role "%" does not exist', role_name USING ERRCODE = 'undefined_object';
    END IF;
    RETURN r::regrole;
END;
$$;

-- Give role_name privileges on a queue, topic or exchange, or on '*'.
-- Needs manage on the object (on '*' for '*').
CREATE FUNCTION mq.grant(object_name text, role_name text, privileges text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    o record;
    g regrole;
    mask integer;
BEGIN
    o := mq._acl_object(object_name);
    PERFORM mq._acl_check(object_name, 'manage');
    g := mq._acl_grantee(role_name);
    mask := mq._acl_mask(o.kind, privileges);
    INSERT INTO mq.acl AS a (object_kind, object_id, grantee, privileges)
    VALUES (o.kind, o.id, g, mask)
    ON CONFLICT (object_kind, object_id, grantee)
    DO UPDATE SET privileges = a.privileges | EXCLUDED.privileges;
    PERFORM mq._acl_invalidate();
END;
$$;

-- Take privileges (NULL: all of them) back from role_name.
CREATE FUNCTION mq.revoke(object_name text, role_name text, privileges text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    o record;
    g regrole;
    mask integer;
BEGIN
    o := mq._acl_object(object_name);
    PERFORM mq._acl_check(object_name, 'manage');
    g := mq._acl_grantee(role_name);
    mask := CASE WHEN privileges IS NULL THEN 63 ELSE mq._acl_mask(o.kind, privileges) END;
    UPDATE mq.acl a SET privileges = a.privileges & ~mask
     WHERE a.object_kind = o.kind AND a.object_id = o.id AND a.grantee = g;
    DELETE FROM mq.acl a
     WHERE a.object_kind = o.kind AND a.object_id = o.id AND a.grantee = g AND a.privileges = 0;
    PERFORM mq._acl_invalidate();
END;
$$;

-- The grants: on objects the current role manages, to it (or to a role it
-- inherits from, or PUBLIC); members of pg_monitor see all of them.
CREATE VIEW mq.grants AS
SELECT o.object_name, o.object_kind,
       CASE WHEN a.grantee::oid = 0 THEN 'PUBLIC' ELSE r.rolname::text COLLATE "default" END AS role_name,
       ARRAY(SELECT v.n FROM (VALUES (1, 'send'), (2, 'receive'), (4, 'publish'), (8, 'consume'),
                                     (16, 'manage'), (32, 'create')) v(b, n)
              WHERE a.privileges & v.b <> 0 ORDER BY v.b) AS privileges
  FROM mq.acl a
  CROSS JOIN LATERAL (
      SELECT CASE a.object_kind WHEN 'q' THEN (SELECT q.queue_name FROM mq.queue q WHERE q.queue_id = a.object_id)
                                WHEN 't' THEN (SELECT t.topic_name FROM mq.topic t WHERE t.topic_id = a.object_id)
                                WHEN 'x' THEN (SELECT x.exchange_name FROM mq.exchange x WHERE x.exchange_id = a.object_id)
                                ELSE '*' END AS object_name,
             CASE a.object_kind WHEN 'q' THEN 'queue' WHEN 't' THEN 'topic'
                                WHEN 'x' THEN 'exchange' ELSE '*' END AS object_kind) o
  LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee::oid
 WHERE o.object_name IS NOT NULL
   AND (a.grantee::oid = 0 OR r.oid IS NOT NULL)
   AND (pg_catalog.pg_has_role('pg_monitor', 'USAGE')
        OR mq.has_privilege(o.object_name, 'manage')
        OR a.grantee::oid = 0
        OR pg_catalog.pg_has_role(a.grantee::oid, 'USAGE'));

-- The creator of a queue, topic or exchange owns it: every privilege on it,
-- and the right to grant them.  Superusers and the extension's owner hold
-- them anyway and get no row.  A dropped object's grants go with it.
CREATE FUNCTION mq._acl_owned()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    creator regrole := mq._acl_creator();
BEGIN
    IF creator IS NOT NULL THEN
        INSERT INTO mq.acl (object_kind, object_id, grantee, privileges)
        VALUES (TG_ARGV[0]::"char", (to_jsonb(NEW) ->> TG_ARGV[1])::integer, creator,
                CASE TG_ARGV[0] WHEN 'q' THEN 19 WHEN 't' THEN 28 ELSE 20 END)
        ON CONFLICT DO NOTHING;
        PERFORM mq._acl_invalidate();
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION mq._acl_dropped()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM mq.acl a
     WHERE a.object_kind = TG_ARGV[0]::"char"
       AND a.object_id = (to_jsonb(OLD) ->> TG_ARGV[1])::integer;
    IF FOUND THEN
        PERFORM mq._acl_invalidate();
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER queue_acl_owned AFTER INSERT ON mq.queue
    FOR EACH ROW EXECUTE FUNCTION mq._acl_owned('q', 'queue_id');
CREATE TRIGGER queue_acl_dropped AFTER DELETE ON mq.queue
    FOR EACH ROW EXECUTE FUNCTION mq._acl_dropped('q', 'queue_id');
CREATE TRIGGER topic_acl_owned AFTER INSERT ON mq.topic
    FOR EACH ROW EXECUTE FUNCTION mq._acl_owned('t', 'topic_id');
CREATE TRIGGER topic_acl_dropped AFTER DELETE ON mq.topic
    FOR EACH ROW EXECUTE FUNCTION mq._acl_dropped('t', 'topic_id');
CREATE TRIGGER exchange_acl_owned AFTER INSERT ON mq.exchange
    FOR EACH ROW EXECUTE FUNCTION mq._acl_owned('x', 'exchange_id');
CREATE TRIGGER exchange_acl_dropped AFTER DELETE ON mq.exchange
    FOR EACH ROW EXECUTE FUNCTION mq._acl_dropped('x', 'exchange_id');

-- Rows of the views for the calling role: objects it holds a privilege on;
-- members of pg_monitor see everything.  For mq's SECURITY DEFINER
-- functions (a view's own filter uses mq.has_privilege and pg_has_role).
CREATE FUNCTION mq._acl_visible(object_name text)
RETURNS boolean
LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'mq_acl_visible';

--- the guard

CREATE FUNCTION mq._ddl_guard()
RETURNS event_trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'mq_acl_ddl_guard';

CREATE EVENT TRIGGER mq_guard ON ddl_command_end
    WHEN TAG IN ('CREATE TRIGGER', 'CREATE RULE', 'CREATE POLICY', 'ALTER POLICY',
                 'CREATE TABLE', 'ALTER TABLE', 'GRANT', 'ALTER DEFAULT PRIVILEGES',
                 'CREATE FUNCTION')
    EXECUTE FUNCTION mq._ddl_guard();

--- privileges on mq's own objects

-- Tables and sequences are internal: nobody but their owner holds anything
-- on them (a 0.1.0 installation may have granted table privileges).  The
-- one exception is the Debezium-style INSERT into mq.outbox, whose trigger
-- checks the publish privilege.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS rel, CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS what,
               a.grantee
          FROM pg_catalog.pg_class c CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
         WHERE c.relnamespace = 'mq'::regnamespace AND c.relkind IN ('r', 'p', 'S')
           AND a.grantee <> c.relowner
         GROUP BY 1, 2, 3
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s %s FROM %s', r.what, r.rel,
                                  CASE WHEN r.grantee = 0 THEN 'PUBLIC'
                                       ELSE pg_catalog.quote_ident(r.grantee::regrole::text) END);
    END LOOP;
    -- the views are for reading (their rows are filtered by the reader's
    -- privileges)
    FOR r IN
        SELECT DISTINCT c.oid::regclass AS rel, a.grantee
          FROM pg_catalog.pg_class c CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
         WHERE c.relnamespace = 'mq'::regnamespace AND c.relkind = 'v'
           AND a.grantee <> c.relowner AND a.privilege_type <> 'SELECT'
    LOOP
        EXECUTE pg_catalog.format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLE %s FROM %s',
                                  r.rel, CASE WHEN r.grantee = 0 THEN 'PUBLIC'
                                              ELSE pg_catalog.quote_ident(r.grantee::regrole::text) END);
    END LOOP;
END;
$$;
GRANT INSERT (aggregatetype, aggregateid, type, payload, headers) ON mq.outbox TO PUBLIC;

-- Internal functions, trigger functions: not for PUBLIC.  (Functions that
-- later sections and versions create are revoked by mq_guard.)
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'mq'::regnamespace
           AND (p.proname LIKE '\_%' OR p.prorettype IN ('trigger'::regtype, 'event_trigger'::regtype))
    LOOP
        EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END;
$$;

--- the views show a role what it holds a privilege on

CREATE FUNCTION mq.visible_queue_stats()
RETURNS TABLE (queue_name text, ready bigint, in_flight bigint, delayed bigint,
               total bigint, oldest_ready_age interval,
               oldest_enqueued_at timestamptz, total_sent bigint,
               total_acked bigint, total_dead bigint, total_purged bigint,
               dead_letter_queue text)
LANGUAGE sql VOLATILE
ROWS 100
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM mq._queue_stats() s WHERE mq._acl_visible(s.queue_name)
$$;

CREATE OR REPLACE VIEW mq.queue_stats AS
SELECT * FROM mq.visible_queue_stats();

CREATE OR REPLACE VIEW mq.consumer_lag AS
SELECT t.topic_name, g.group_name, o.partition, o.committed_offset,
       p.next_offset AS end_offset,
       p.next_offset - o.committed_offset AS lag,
       o.committed_at AS last_commit_at
  FROM mq.consumer_group g
  JOIN mq.topic t ON t.topic_id = g.topic_id
  JOIN mq.group_offset o ON o.group_id = g.group_id
  JOIN mq.topic_partition p ON p.topic_id = g.topic_id AND p.partition = o.partition
 WHERE pg_catalog.pg_has_role('pg_monitor', 'USAGE') OR mq.has_privilege(t.topic_name);

CREATE OR REPLACE VIEW mq.topic_stats AS
SELECT t.topic_name, p.partition,
       coalesce(f.first_offset, p.next_offset) AS start_offset,
       p.next_offset AS end_offset,
       p.next_offset - coalesce(f.first_offset, p.next_offset) AS records,
       l.published_at AS last_published_at,
       (SELECT count(*) FROM mq.consumer_group g WHERE g.topic_id = t.topic_id) AS groups
  FROM mq.topic t
  JOIN mq.topic_partition p ON p.topic_id = t.topic_id
  LEFT JOIN LATERAL (SELECT r."offset" AS first_offset FROM mq.topic_record r
                      WHERE r.topic_id = t.topic_id AND r.partition = p.partition
                      ORDER BY r."offset" LIMIT 1) f ON true
  LEFT JOIN LATERAL (SELECT r.published_at FROM mq.topic_record r
                      WHERE r.topic_id = t.topic_id AND r.partition = p.partition
                      ORDER BY r."offset" DESC LIMIT 1) l ON true
 WHERE pg_catalog.pg_has_role('pg_monitor', 'USAGE') OR mq.has_privilege(t.topic_name);

GRANT SELECT ON mq.queue_stats, mq.consumer_lag, mq.topic_stats, mq.grants TO PUBLIC;


--- the entry points run as the extension's owner and check the caller
-- (ack and extend are SECURITY DEFINER where the queue section redefines them)

ALTER FUNCTION mq.send(text, jsonb, jsonb, interval, text) SECURITY DEFINER;
ALTER FUNCTION mq.send_batch(text, jsonb[], jsonb[], interval, text[]) SECURITY DEFINER;
ALTER FUNCTION mq.poll(text, integer, interval, interval) SECURITY DEFINER;
ALTER FUNCTION mq.pop(text, integer) SECURITY DEFINER;
ALTER FUNCTION mq.fetch(text, text, integer, text, interval, boolean) SECURITY DEFINER;
ALTER FUNCTION mq.commit(text, text, integer, bigint, text) SECURITY DEFINER;
ALTER FUNCTION mq.publish(text, jsonb, text, jsonb, boolean) SECURITY DEFINER;
ALTER FUNCTION mq.publish_batch(text, jsonb[], text[], jsonb[], boolean) SECURITY DEFINER;
ALTER FUNCTION mq.relay(integer) SECURITY DEFINER;
ALTER FUNCTION mq.run_maintenance() SECURITY DEFINER;
-- the outbox's triggers read mq's catalog for whoever inserts
ALTER FUNCTION mq._outbox_check() SECURITY DEFINER;
ALTER FUNCTION mq._outbox_trigger() SECURITY DEFINER;

CREATE OR REPLACE FUNCTION mq.list_queues()
RETURNS TABLE (queue_name text, created_at timestamptz, settings jsonb)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT q.queue_name, q.created_at,
           jsonb_build_object('visibility_timeout', q.visibility_timeout,
                              'max_attempts', q.max_attempts,
                              'retry_delay', q.retry_delay,
                              'retry_delay_max', q.retry_delay_max,
                              'dead_letter_queue', d.queue_name,
                              'message_ttl', q.message_ttl,
                              'dedup_window', q.dedup_window)
    FROM mq.queue q
    LEFT JOIN mq.queue d ON d.queue_id = q.dead_letter_queue_id
    WHERE mq._acl_visible(q.queue_name)
    ORDER BY q.queue_name
$$;

CREATE OR REPLACE FUNCTION mq.list_topics()
RETURNS TABLE (topic_name text, partitions integer, retention interval, created_at timestamptz)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.topic_name, t.partitions, t.retention, t.created_at FROM mq.topic t
     WHERE mq._acl_visible(t.topic_name)
     ORDER BY 1
$$;

CREATE OR REPLACE FUNCTION mq.list_exchanges()
RETURNS TABLE (exchange_name text, type text, alternate_exchange text, dropped bigint)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT x.exchange_name, x.type, a.exchange_name, x.dropped
      FROM mq.exchange x LEFT JOIN mq.exchange a ON a.exchange_id = x.alternate_exchange_id
     WHERE mq._acl_visible(x.exchange_name)
     ORDER BY 1
$$;

-- The SQL entry points that no other section redefines, with their
-- privilege check (the others carry theirs where they are defined).

CREATE OR REPLACE FUNCTION mq.process_once(consumer text, message_key text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    PERFORM mq._acl_check(consumer, 'receive');
    IF consumer IS NULL OR message_key IS NULL THEN
        RAISE EXCEPTION 'consumer and message_key must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO mq.processed (consumer, message_key)
    VALUES (process_once.consumer, process_once.message_key)
    ON CONFLICT DO NOTHING;
    RETURN FOUND;
END;
$$;

CREATE OR REPLACE FUNCTION mq.recount()
RETURNS void
LANGUAGE sql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT mq._acl_check('*', 'manage');
    UPDATE mq.queue_counter c
       SET depth_adjust = c.depth_adjust + coalesce(m.n, 0) - t.depth
      FROM mq._totals() t
      LEFT JOIN (SELECT x.queue_id, count(*) AS n FROM mq.queue_message x
                 GROUP BY x.queue_id) m ON m.queue_id = t.queue_id
     WHERE c.queue_id = t.queue_id
$$;

CREATE OR REPLACE FUNCTION mq.create_group(
    topic_name       text,
    group_name       text,
    start_at         text DEFAULT 'latest',
    session_timeout  interval DEFAULT '30 seconds')
RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    tid integer := mq._topic_id(topic_name);
    gid integer;
BEGIN
    PERFORM mq._acl_check(topic_name, 'consume');
    IF group_name IS NULL OR start_at IS NULL OR session_timeout IS NULL THEN
        RAISE EXCEPTION 'group_name, start_at and session_timeout must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM mq._check_name(group_name);
    IF start_at NOT IN ('earliest', 'latest') THEN
        RAISE EXCEPTION 'start_at must be ''earliest'' or ''latest'', got "%"', start_at
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF session_timeout <= interval '0' THEN
        RAISE EXCEPTION 'session_timeout must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM mq._check_interval('session_timeout', session_timeout);
    IF EXISTS (SELECT 1 FROM mq.consumer_group g WHERE g.topic_id = tid AND g.group_name = create_group.group_name) THEN
        RAISE EXCEPTION 'consumer group "%" of topic "%" already exists', group_name, topic_name
            USING ERRCODE = 'duplicate_object';
    END IF;
    gid := nextval('mq.group_id_seq');
    INSERT INTO mq.consumer_group (group_id, topic_id, group_name, session_timeout)
    VALUES (gid, tid, group_name, session_timeout);
    INSERT INTO mq.group_offset (group_id, partition, committed_offset)
    SELECT gid, p.partition, CASE WHEN start_at = 'latest' THEN p.next_offset ELSE 0 END
      FROM mq.topic_partition p WHERE p.topic_id = tid;
END;
$$;

CREATE OR REPLACE FUNCTION mq.drop_group(topic_name text, group_name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    gid integer;
BEGIN
    PERFORM mq._acl_check(topic_name, 'consume');
    DELETE FROM mq.consumer_group g
     WHERE g.topic_id = mq._topic_id(topic_name) AND g.group_name = drop_group.group_name
    RETURNING g.group_id INTO gid;
    IF gid IS NULL THEN
        RETURN false;
    END IF;
    DELETE FROM mq.group_offset o WHERE o.group_id = gid;
    DELETE FROM mq.group_member m WHERE m.group_id = gid;
    RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION mq.seek(
    topic_name   text,
    group_name   text,
    partition    integer DEFAULT NULL,
    to_offset    bigint DEFAULT NULL,
    to_time      timestamptz DEFAULT NULL,
    to_position  text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    g mq.consumer_group := mq._group(topic_name, group_name);
    t mq.topic;
BEGIN
    PERFORM mq._acl_check(topic_name, 'consume');
    SELECT * INTO t FROM mq.topic x WHERE x.topic_id = g.topic_id;
    IF (to_offset IS NOT NULL)::int + (to_time IS NOT NULL)::int + (to_position IS NOT NULL)::int <> 1 THEN
        RAISE EXCEPTION 'give exactly one of to_offset, to_time and to_position'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF to_position NOT IN ('earliest', 'latest') THEN
        RAISE EXCEPTION 'to_position must be ''earliest'' or ''latest'', got "%"', to_position
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF partition IS NOT NULL AND (partition < 0 OR partition >= t.partitions) THEN
        RAISE EXCEPTION 'topic "%" has no partition %', topic_name, partition
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF to_offset < 0 THEN
        RAISE EXCEPTION 'to_offset must not be negative' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE mq.group_offset o
       SET committed_offset = CASE
             WHEN to_offset IS NOT NULL THEN least(to_offset, p.next_offset)
             WHEN to_position = 'latest' THEN p.next_offset
             WHEN to_position = 'earliest' THEN 0
             ELSE coalesce((SELECT min(r."offset") FROM mq.topic_record r
                             WHERE r.topic_id = t.topic_id AND r.partition = o.partition
                               AND r.published_at >= to_time), p.next_offset)
           END,
           committed_at = clock_timestamp()
      FROM mq.topic_partition p
     WHERE o.group_id = g.group_id AND p.topic_id = t.topic_id AND p.partition = o.partition
       AND (seek.partition IS NULL OR o.partition = seek.partition);
END;
$$;

CREATE OR REPLACE FUNCTION mq.unbind(exchange_name text, destination text, binding_key text DEFAULT '#')
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    d       record;
    sources integer[];
    depth   integer;
BEGIN
    PERFORM mq._acl_check(exchange_name, 'manage');
    SELECT * INTO d FROM mq._kind_of(destination);
    -- the binding may be the shortest way somewhere (54000)
    IF d.kind = 'x' THEN
        sources := mq._route_sources(mq._exchange_id(exchange_name));
        depth := mq._check_route_depth(sources);
    END IF;
    DELETE FROM mq.binding b
     WHERE b.exchange_id = mq._exchange_id(exchange_name) AND b.dest_kind = d.kind
       AND b.dest_id = d.id AND b.binding_key = unbind.binding_key;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF d.kind = 'x' THEN
        PERFORM mq._check_route_depth(sources, depth);
    END IF;
    RETURN true;
END;
$$;

-- (end of section: privileges)

--------------------------------------------------------------------------
-- Shared state and input bounds: counters, aborted deliveries, routing
--------------------------------------------------------------------------

-- mq's bounded structures in shared memory (server-wide): entries in use,
-- capacity and the setting that sets it, and how many items did not fit
-- since the server started (each such event is also logged as a WARNING).
CREATE FUNCTION mq._shared_state(
    OUT structure text, OUT entries bigint, OUT capacity bigint,
    OUT setting text, OUT overflows bigint)
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_shared_state';
REVOKE ALL ON FUNCTION mq._shared_state() FROM PUBLIC;

CREATE VIEW mq.shared_state AS
SELECT * FROM mq._shared_state();

-- Bounds of every interval an object keeps (retention, message_ttl,
-- session_timeout, visibility_timeout, retry delays, dedup_window): at most
-- 100 years, so that no timestamp the worker or a consumer computes from
-- one (now() - retention, enqueued_at + message_ttl, ...) is ever out of
-- range.  A bad value is refused at the door (22023) and changes nothing.
CREATE FUNCTION mq._check_interval(what text, value interval)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF value > interval '100 years' THEN
        RAISE EXCEPTION '% must be at most 100 years, got %', what, value
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END;
$$;
REVOKE ALL ON FUNCTION mq._check_interval(text, interval) FROM PUBLIC;

-- Checks the policy arguments shared by create_queue and alter_queue.
CREATE OR REPLACE FUNCTION mq._check_policy(
    visibility_timeout interval, max_attempts integer, retry_delay interval,
    retry_delay_max interval, message_ttl interval, dedup_window interval)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    IF visibility_timeout < interval '0' THEN
        RAISE EXCEPTION 'visibility_timeout must not be negative, got %', visibility_timeout
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_attempts < 1 THEN
        RAISE EXCEPTION 'max_attempts must be at least 1, got %', max_attempts
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF retry_delay < interval '0' OR retry_delay_max < interval '0' THEN
        RAISE EXCEPTION 'retry_delay and retry_delay_max must not be negative'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF retry_delay_max < retry_delay THEN
        RAISE EXCEPTION 'retry_delay_max (%) must not be less than retry_delay (%)',
            retry_delay_max, retry_delay
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF message_ttl <= interval '0' THEN
        RAISE EXCEPTION 'message_ttl must be positive, got %', message_ttl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF dedup_window < interval '0' OR dedup_window > interval '30 days' THEN
        RAISE EXCEPTION 'dedup_window must be between 0 and 30 days, got %', dedup_window
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM mq._check_interval('visibility_timeout', visibility_timeout);
    PERFORM mq._check_interval('retry_delay', retry_delay);
    PERFORM mq._check_interval('retry_delay_max', retry_delay_max);
    PERFORM mq._check_interval('message_ttl', message_ttl);
END;
$$;

-- Outbox rows the relay could not move (an error of the row itself: its
-- destination, key, payload or routing), set aside with their error so
-- that the rows behind them go on (mq.relay, doc/design.md "Relay").  The
-- columns of mq.outbox, then when and why.  Move a row back into mq.outbox
-- once its cause is fixed.
CREATE TABLE mq.outbox_dead (
    seq            bigint PRIMARY KEY,
    id             uuid NOT NULL,
    aggregatetype  text NOT NULL,
    aggregateid    text,
    type           text,
    payload        jsonb,
    headers        jsonb,
    created_at     timestamptz NOT NULL,
    failed_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    sqlstate       text NOT NULL,
    error          text NOT NULL,
    detail         text
);
SELECT pg_catalog.pg_extension_config_dump('mq.outbox_dead', '');
REVOKE ALL ON TABLE mq.outbox_dead FROM PUBLIC;

-- The bytes of a key that choose its partition (Kafka's murmur2 of them):
-- its UTF-8 bytes; in a SQL_ASCII database, which stores whatever bytes
-- the client sent and cannot convert them, the bytes as stored.  (0.1.0
-- converted to UTF-8 there too, and a key that was no UTF-8 failed every
-- relay pass.)  The C relay does the same (src/relay.c).
CREATE FUNCTION mq._key_bytes(key text)
RETURNS bytea
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT convert_to(key, CASE WHEN getdatabaseencoding() = 'SQL_ASCII' THEN 'SQL_ASCII' ELSE 'UTF8' END)
$$;
REVOKE ALL ON FUNCTION mq._key_bytes(text) FROM PUBLIC;

--- routing: each exchange visited once per message, routes of bounded depth

-- Where a message sent to destination ends up: its distinct final
-- destinations, queues ('q') and topics ('t').  One breadth-first walk of
-- the exchange graph per message with one visited set for the whole
-- message (the recursive query's UNION): each exchange the message
-- reaches is expanded once, its bindings matched once, however many ways
-- lead to it (diamonds) and whether or not a cycle leads back to it, so
-- the work is linear in the bindings of the exchanges reached, and nothing
-- recurses on the stack.  An exchange routes a message when at least one
-- of its bindings matches it (fanout: any; direct: the binding key is the
-- key, '' for none; topic: the pattern matches the key; headers: the
-- arguments match), whatever the binding leads to (an exchange that
-- routes it no further, or one already visited): as in RabbitMQ.  An
-- exchange that routes nothing yields its alternate exchange if it has
-- one (visited once too), else a row ('d', its id): with count_drops the
-- message is counted as dropped there (mq.exchange.dropped, once per
-- message).  (0.1.0's mq._route_id walked every path, with a visited set
-- per path.)
CREATE OR REPLACE FUNCTION mq._route(destination text, key text, headers jsonb, count_drops boolean)
RETURNS TABLE (dest_kind "char", dest_id integer)
LANGUAGE plpgsql VOLATILE
ROWS 2
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    RETURN QUERY
    WITH RECURSIVE reached(kind, id) AS (
        SELECT d.kind, d.id FROM mq._kind_of(destination) d WHERE d.kind IS NOT NULL
        UNION
        SELECT n.kind, n.id
          FROM reached r
          JOIN mq.exchange x ON r.kind = 'x' AND x.exchange_id = r.id
         -- the destinations of its matching bindings (NULL: none matches)
         CROSS JOIN LATERAL (
             SELECT array_agg(b.dest_kind) AS kinds, array_agg(b.dest_id) AS ids
               FROM mq.binding b
              WHERE b.exchange_id = x.exchange_id
                AND CASE x.type
                        WHEN 'fanout' THEN true
                        WHEN 'direct' THEN b.binding_key = coalesce(key, '')
                        WHEN 'topic' THEN mq._topic_match(b.binding_key, key)
                        WHEN 'headers' THEN mq._headers_match(b.arguments, headers)
                        ELSE false END) m
         CROSS JOIN LATERAL (
             SELECT u.kind, u.id FROM unnest(m.kinds, m.ids) u(kind, id)
             UNION ALL
             SELECT CASE WHEN x.alternate_exchange_id IS NULL THEN 'd' ELSE 'x' END::"char",
                    coalesce(x.alternate_exchange_id, x.exchange_id)
              WHERE m.kinds IS NULL) n),
    dropped AS (
        UPDATE mq.exchange e SET dropped = e.dropped + 1
         WHERE count_drops AND e.exchange_id IN (SELECT r.id FROM reached r WHERE r.kind = 'd'))
    SELECT DISTINCT r.kind, r.id FROM reached r WHERE r.kind IN ('q', 't');
END;
$$;
DROP FUNCTION mq._route_id("char", integer, text, jsonb, integer[], boolean);

-- Serializes the changes of the exchange graph that check the depth of
-- routes, until the end of the transaction (src/catalog.c).
CREATE FUNCTION mq._lock_routes()
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_lock_routes';
REVOKE ALL ON FUNCTION mq._lock_routes() FROM PUBLIC;

-- The edges of the exchange graph: bindings to exchanges, and alternate
-- exchanges (a message can take either).
CREATE FUNCTION mq._exchange_edges()
RETURNS TABLE (from_id integer, to_id integer)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT b.exchange_id, b.dest_id FROM mq.binding b WHERE b.dest_kind = 'x'
    UNION ALL
    SELECT x.exchange_id, x.alternate_exchange_id FROM mq.exchange x
     WHERE x.alternate_exchange_id IS NOT NULL
$$;
REVOKE ALL ON FUNCTION mq._exchange_edges() FROM PUBLIC;

-- The exchanges from which a message can reach exchange xid, xid included:
-- those whose routes a change of xid's edges can lengthen.  Takes the lock
-- of mq._check_route_depth first, so no concurrent change adds one.
CREATE FUNCTION mq._route_sources(xid integer)
RETURNS integer[]
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT mq._lock_routes();
    WITH RECURSIVE s(id) AS (
        SELECT xid
        UNION
        SELECT e.from_id FROM s JOIN mq._exchange_edges() e ON e.to_id = s.id)
    SELECT array_agg(s.id) FROM s
$$;
REVOKE ALL ON FUNCTION mq._route_sources(integer) FROM PUBLIC;

-- The bound on the depth of routes (doc/reference.md, "Exchanges"): a
-- message published to any exchange reaches every exchange it can reach
-- within max_depth exchanges, the first one included, along the shortest
-- way (which is where routing visits each exchange).  Returns the depth of
-- the routes from sources: the most exchanges a message published to one
-- of them passes through to reach one, max_depth + 1 for anything deeper.
-- With before (the depth before a change of the graph: a binding to an
-- exchange, an alternate exchange, an unbind or a dropped exchange, which
-- can remove a shorter way), refuses with 54000 a change that takes the
-- routes from sources from within the bound to beyond it.  (A graph that
-- was deeper before, which only an installation of 0.1.0 can hold, is
-- let be: it can be cut down, and routing does not depend on the bound.)
-- Breadth first from all of sources at once, one step per statement, each
-- (source, exchange) pair once: at most max_depth steps of a scan of the
-- edges each.  The changes that check are serialized (mq._lock_routes), and
-- each step reads the latest committed graph, so two bindings made at once
-- cannot together break the bound.
CREATE FUNCTION mq._check_route_depth(sources integer[], before integer DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    max_depth CONSTANT integer := 64;
    -- (source, exchange) pairs as source << 32 | exchange
    seen     bigint[];
    frontier bigint[];
    depth    integer := 0;
    src_name text;
    far_name text;
BEGIN
    PERFORM mq._lock_routes();
    frontier := ARRAY(SELECT DISTINCT (s::bigint << 32) | s
                        FROM unnest(sources) s
                        JOIN mq.exchange x ON x.exchange_id = s);
    seen := '{}';
    WHILE cardinality(frontier) > 0 LOOP
        -- frontier: the exchanges first reached at depth + 1
        depth := depth + 1;
        EXIT WHEN depth > max_depth;
        seen := seen || frontier;
        frontier := ARRAY(
            SELECT (f >> 32 << 32) | e.to_id
              FROM unnest(frontier) f
              JOIN mq._exchange_edges() e ON e.from_id = (f & 4294967295)::integer
            EXCEPT
            SELECT unnest(seen)
            ORDER BY 1);
    END LOOP;
    IF depth > max_depth AND depth > coalesce(before, depth) THEN
        SELECT x.exchange_name INTO src_name FROM mq.exchange x
         WHERE x.exchange_id = (frontier[1] >> 32)::integer;
        SELECT x.exchange_name INTO far_name FROM mq.exchange x
         WHERE x.exchange_id = (frontier[1] & 4294967295)::integer;
        RAISE EXCEPTION 'a message published to exchange "%" would pass through more than % exchanges',
            src_name, max_depth
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('Exchange "%s" would be %s exchanges away from it.', far_name, depth),
                  HINT = format('Routes through exchanges (bindings to exchanges and alternate exchanges) are limited to %s exchanges; bind to an exchange nearer the start.', max_depth);
    END IF;
    RETURN depth;
END;
$$;
REVOKE ALL ON FUNCTION mq._check_route_depth(integer[], integer) FROM PUBLIC;

-- (end of section: shared state)

--------------------------------------------------------------------------
-- Two-phase commit: what a prepared transaction owes, kept with it
--------------------------------------------------------------------------

-- Just before a transaction prepares, mq writes here what it owes when it
-- ends (src/twophase.c): counter moves, wake-ups of waiters, a relay poke,
-- to be paid when it commits; the deliveries a rollback undoes, to count
-- as attempts if it rolls back.  The rows belong to the prepared
-- transaction, so they survive a crash with it and become visible exactly
-- when it commits.  COMMIT PREPARED deletes the rows of its gid and pays
-- them; ROLLBACK PREPARED reads them before the rollback; the worker's pass
-- pays any committed row left over.  effect: 'c' counter move (object_id
-- queue, item the counter: 0 sent, 1 acked, 2 dead, 3 purged; amount),
-- 'q' wake a queue, 't' wake a topic, 'r' poke the relay, 'l' launch the
-- worker, 'd' a delivery of message item in queue object_id, 's' amount
-- deliveries owed by message item that the transaction applied.  epoch is
-- the installation of mq (items of another one are void).  Not dumped: a
-- logical dump holds no prepared transactions.
CREATE TABLE mq.prepared_effect (
    gid        text NOT NULL,
    effect     "char" NOT NULL
               CONSTRAINT prepared_effect_effect_check
               CHECK (effect IN ('c', 'q', 't', 'r', 'l', 'd', 's')),
    epoch      oid NOT NULL,
    object_id  integer NOT NULL,
    item       bigint NOT NULL,
    amount     bigint NOT NULL
);
CREATE INDEX prepared_effect_gid_idx ON mq.prepared_effect (gid);
REVOKE ALL ON TABLE mq.prepared_effect FROM PUBLIC;

-- (end of section: two-phase commit)

--------------------------------------------------------------------------
-- Background worker: status, settings, preload check
--------------------------------------------------------------------------

-- Refuse to install (or update) mq in a server that did not preload it:
-- nothing would relay, count attempts or dead-letter.
CREATE FUNCTION mq._check_preload()
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_check_preload';
REVOKE ALL ON FUNCTION mq._check_preload() FROM PUBLIC;
SELECT mq._check_preload();

-- The workers as shared memory knows them: one row per database with mq,
-- plus the current database if it has none.
CREATE FUNCTION mq._worker_status(
    OUT dboid oid, OUT pid integer, OUT state text,
    OUT started_at timestamptz, OUT pass_started timestamptz,
    OUT last_pass_started timestamptz, OUT last_pass_duration interval,
    OUT passes bigint, OUT failed_passes bigint,
    OUT consecutive_failures integer, OUT rows_relayed bigint,
    OUT launches bigint, OUT last_error text, OUT last_error_at timestamptz,
    OUT next_retry timestamptz, OUT extension_version text,
    OUT bounds_hit text[])
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_worker_status';
REVOKE ALL ON FUNCTION mq._worker_status() FROM PUBLIC;

-- Health of the background workers; the outbox columns are those of the
-- current database (NULL in the rows of other databases): the backlog, the
-- age of its oldest row, and the rows the relay set aside in
-- mq.outbox_dead (a destination dropped after the publish, a row that
-- cannot be routed).
CREATE VIEW mq.worker_status AS
SELECT d.datname AS database, s.pid, s.state, s.started_at,
       s.pass_started,
       pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) s.pass_started
           AS pass_running_for,
       s.last_pass_started, s.last_pass_duration, s.passes, s.failed_passes,
       s.consecutive_failures, s.rows_relayed, s.launches,
       s.last_error, s.last_error_at, s.next_retry, s.extension_version,
       CASE WHEN s.dboid OPERATOR(pg_catalog.=) o.dboid THEN o.backlog END
           AS outbox_backlog,
       CASE WHEN s.dboid OPERATOR(pg_catalog.=) o.dboid THEN o.oldest_age END
           AS outbox_oldest_age,
       CASE WHEN s.dboid OPERATOR(pg_catalog.=) o.dboid THEN o.dead END
           AS outbox_dead,
       s.bounds_hit
  FROM mq._worker_status() s
  LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.dboid
  CROSS JOIN (SELECT db.oid AS dboid, x.backlog, x.oldest_age,
                     (SELECT pg_catalog.count(*) FROM mq.outbox_dead) AS dead
                FROM pg_catalog.pg_database db,
                     (SELECT pg_catalog.count(*) AS backlog,
                             pg_catalog.clock_timestamp()
                                 OPERATOR(pg_catalog.-)
                                 pg_catalog.min(b.created_at) AS oldest_age
                        FROM mq.outbox b) x
               WHERE db.datname OPERATOR(pg_catalog.=)
                     pg_catalog.current_database()) o;
REVOKE ALL ON mq.worker_status FROM PUBLIC;
GRANT SELECT ON mq.worker_status TO pg_monitor;
GRANT EXECUTE ON FUNCTION mq._worker_status() TO pg_monitor;

-- (end of section: worker)

--------------------------------------------------------------------------
-- Queue integrity: lock protocol, receipts, 2PC, wake-ups, plans
--------------------------------------------------------------------------

-- The lock protocol of mq's objects (doc/design.md, "Lock protocol"): a
-- heavyweight lock per queue, topic and exchange, held until the end of the
-- transaction; shared by whoever uses the object, exclusive in drop, purge
-- and alter.  Creation locks the name.  These take the locks for the
-- functions below (the C hot paths take them themselves).

-- Locks the queue ('q'), topic ('t') or exchange ('x') id; returns whether
-- it exists once the lock is held (latest committed state).
CREATE FUNCTION mq._lock(kind "char", id integer, exclusive boolean)
RETURNS boolean
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_lock';

-- Locks the object of kind called name; its id, or NULL if there is none.
CREATE FUNCTION mq._lock_named(kind "char", name text, exclusive boolean)
RETURNS integer
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_lock_named';

-- Serializes the creators of a name; 42710 if an object of another kind
-- (any kind when kind is NULL) has it, else whether one of kind has it.
CREATE FUNCTION mq._lock_name(name text, kind "char")
RETURNS boolean
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_lock_name';

REVOKE EXECUTE ON FUNCTION mq._lock("char", integer, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION mq._lock_named("char", text, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION mq._lock_name(text, "char") FROM PUBLIC;

-- The queue called queue_name, locked (shared, or exclusive); its id.  The
-- errors of mq._queue_id when there is none.
CREATE FUNCTION mq._use_queue(queue_name text, exclusive boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    qid integer;
BEGIN
    IF queue_name IS NULL THEN
        RAISE EXCEPTION 'queue_name must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    qid := mq._lock_named('q', queue_name, exclusive);
    IF qid IS NULL THEN
        PERFORM mq._check_name(queue_name);
        RAISE EXCEPTION 'queue "%" does not exist', queue_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with mq.create_queue().';
    END IF;
    RETURN qid;
END;
$$;
REVOKE EXECUTE ON FUNCTION mq._use_queue(text, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION mq.create_queue(
    queue_name          text,
    visibility_timeout  interval DEFAULT '30 seconds',
    max_attempts        integer DEFAULT 5,
    if_not_exists       boolean DEFAULT false,
    retry_delay         interval DEFAULT '1 second',
    retry_delay_max     interval DEFAULT '15 minutes',
    dead_letter_queue   text DEFAULT NULL,
    message_ttl         interval DEFAULT NULL,
    dedup_window        interval DEFAULT '5 minutes')
RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    qid   integer;
    dlq   text := dead_letter_queue;
    dlqid integer;
BEGIN
    PERFORM mq._acl_check('*', 'create');
    IF dead_letter_queue IS NOT NULL THEN PERFORM mq._acl_check(dead_letter_queue, 'send'); END IF;
    IF queue_name IS NULL THEN
        RAISE EXCEPTION 'queue_name must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM mq._check_name(queue_name);
    IF visibility_timeout IS NULL OR max_attempts IS NULL OR retry_delay IS NULL
       OR retry_delay_max IS NULL OR dedup_window IS NULL OR if_not_exists IS NULL THEN
        RAISE EXCEPTION 'only dead_letter_queue and message_ttl may be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM mq._check_policy(visibility_timeout, max_attempts, retry_delay,
                             retry_delay_max, message_ttl, dedup_window);
    IF dlq IS NULL THEN
        dlq := queue_name || '_dlq';
        IF octet_length(dlq) > 63 THEN
            -- keep it unique and within 63 bytes: a prefix and a hash
            dlq := left(queue_name, 50) || '_' || left(md5(queue_name), 8) || '_dlq';
        END IF;
    ELSE
        PERFORM mq._check_name(dlq);
        IF dlq = queue_name THEN
            RAISE EXCEPTION 'a queue cannot be its own dead-letter queue'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;

    -- creators of one name are serialized; a topic or exchange of the name
    -- is an error (42710)
    IF mq._lock_name(queue_name, 'q') THEN
        IF if_not_exists THEN
            RAISE NOTICE 'queue "%" already exists, skipping', queue_name;
            RETURN;
        END IF;
        RAISE EXCEPTION 'queue "%" already exists', queue_name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use if_not_exists => true to ignore an existing queue.';
    END IF;

    qid := nextval('mq.queue_id_seq');
    -- the dead-letter queue: created with its queue, has none itself; an
    -- existing one is locked, so that it cannot be dropped before we commit
    PERFORM mq._lock_name(dlq, 'q');
    dlqid := mq._lock_named('q', dlq, false);
    IF dlqid IS NULL THEN
        dlqid := nextval('mq.queue_id_seq');
        INSERT INTO mq.queue (queue_id, queue_name, visibility_timeout, max_attempts,
                              retry_delay, retry_delay_max, dead_letter_queue_id,
                              message_ttl, dedup_window, dlq_owner_id)
        VALUES (dlqid, dlq, create_queue.visibility_timeout, create_queue.max_attempts,
                create_queue.retry_delay, create_queue.retry_delay_max, NULL,
                NULL, create_queue.dedup_window,
                CASE WHEN create_queue.dead_letter_queue IS NULL THEN qid END);
        INSERT INTO mq.queue_counter (queue_id) VALUES (dlqid);
    END IF;

    INSERT INTO mq.queue (queue_id, queue_name, visibility_timeout, max_attempts,
                          retry_delay, retry_delay_max, dead_letter_queue_id,
                          message_ttl, dedup_window)
    VALUES (qid, create_queue.queue_name, create_queue.visibility_timeout,
            create_queue.max_attempts, create_queue.retry_delay,
            create_queue.retry_delay_max, dlqid, create_queue.message_ttl,
            create_queue.dedup_window);
    INSERT INTO mq.queue_counter (queue_id) VALUES (qid);
    PERFORM mq._invalidate_queue_cache();
END;
$$;

CREATE OR REPLACE FUNCTION mq.alter_queue(
    queue_name          text,
    visibility_timeout  interval DEFAULT NULL,
    max_attempts        integer DEFAULT NULL,
    retry_delay         interval DEFAULT NULL,
    retry_delay_max     interval DEFAULT NULL,
    dead_letter_queue   text DEFAULT NULL,
    message_ttl         interval DEFAULT NULL,
    dedup_window        interval DEFAULT NULL,
    clear_message_ttl   boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    q     mq.queue;
    dlqid integer;
BEGIN
    PERFORM mq._acl_check(queue_name, 'manage');
    IF dead_letter_queue IS NOT NULL THEN PERFORM mq._acl_check(dead_letter_queue, 'send'); END IF;
    -- exclusive: waits for the transactions using the queue, and the next
    -- call of any backend sees the new settings
    SELECT * INTO q FROM mq.queue x WHERE x.queue_id = mq._use_queue(queue_name, true);
    q.visibility_timeout := coalesce(visibility_timeout, q.visibility_timeout);
    q.max_attempts := coalesce(max_attempts, q.max_attempts);
    q.retry_delay := coalesce(retry_delay, q.retry_delay);
    q.retry_delay_max := coalesce(retry_delay_max, q.retry_delay_max);
    q.message_ttl := CASE WHEN clear_message_ttl THEN NULL
                          ELSE coalesce(message_ttl, q.message_ttl) END;
    q.dedup_window := coalesce(dedup_window, q.dedup_window);
    PERFORM mq._check_policy(q.visibility_timeout, q.max_attempts, q.retry_delay,
                             q.retry_delay_max, q.message_ttl, q.dedup_window);
    IF dead_letter_queue IS NOT NULL THEN
        -- locked shared: it cannot be dropped before we commit
        dlqid := mq._use_queue(dead_letter_queue);
        IF dlqid = q.queue_id THEN
            RAISE EXCEPTION 'a queue cannot be its own dead-letter queue'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        q.dead_letter_queue_id := dlqid;
    END IF;
    UPDATE mq.queue x SET
        visibility_timeout = q.visibility_timeout, max_attempts = q.max_attempts,
        retry_delay = q.retry_delay, retry_delay_max = q.retry_delay_max,
        message_ttl = q.message_ttl, dedup_window = q.dedup_window,
        dead_letter_queue_id = q.dead_letter_queue_id
    WHERE x.queue_id = q.queue_id;
    -- keep the exhausted flags true to the new max_attempts
    UPDATE mq.queue_message m
       SET exhausted = (q.dead_letter_queue_id IS NOT NULL AND m.attempt >= q.max_attempts)
     WHERE m.queue_id = q.queue_id
       AND m.exhausted <> (q.dead_letter_queue_id IS NOT NULL AND m.attempt >= q.max_attempts);
    -- a higher max_attempts or a longer (or no) message_ttl can make
    -- messages ready: wake the queue's long polls to look again
    PERFORM mq._wake(q.queue_id);
    PERFORM mq._invalidate_queue_cache();
END;
$$;

CREATE OR REPLACE FUNCTION mq.drop_queue(queue_name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    q    mq.queue;
    qid  integer;
    ids  integer[];
    user_name text;
BEGIN
    PERFORM mq._acl_check(queue_name, 'manage');
    IF queue_name IS NULL THEN
        RAISE EXCEPTION 'queue_name must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM mq._check_name(queue_name);
    -- exclusive: waits for every transaction that sends to, consumes from or
    -- points at the queue; what they committed is seen below
    qid := mq._lock_named('q', queue_name, true);
    IF qid IS NULL THEN
        RETURN false;
    END IF;
    SELECT * INTO q FROM mq.queue x WHERE x.queue_id = qid;
    -- the dead-letter queue made for it goes with it, unless another queue
    -- uses it too; locked before the check, so none can start to
    PERFORM mq._lock('q', x.queue_id, true)
       FROM mq.queue x WHERE x.dlq_owner_id = q.queue_id ORDER BY x.queue_id;
    ids := ARRAY[q.queue_id] || ARRAY(
        SELECT x.queue_id FROM mq.queue x
         WHERE x.dlq_owner_id = q.queue_id
           AND NOT EXISTS (SELECT 1 FROM mq.queue y
                            WHERE y.dead_letter_queue_id = x.queue_id
                              AND y.queue_id <> q.queue_id));
    -- a dead-letter queue in use by a queue that stays cannot go
    SELECT x.queue_name INTO user_name FROM mq.queue x
     WHERE x.dead_letter_queue_id = ANY (ids) AND x.queue_id <> ALL (ids)
     ORDER BY x.queue_name LIMIT 1;
    IF user_name IS NOT NULL THEN
        RAISE EXCEPTION 'queue "%" is the dead-letter queue of queue "%"', queue_name, user_name
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Drop that queue first, or point it elsewhere with mq.alter_queue().';
    END IF;
    DELETE FROM mq.queue x WHERE x.queue_id = ANY (ids);
    DELETE FROM mq.queue_message m WHERE m.queue_id = ANY (ids);
    DELETE FROM mq.dedup d WHERE d.queue_id = ANY (ids);
    DELETE FROM mq.queue_counter c WHERE c.queue_id = ANY (ids);
    DELETE FROM mq.binding b WHERE b.dest_kind = 'q' AND b.dest_id = ANY (ids);
    PERFORM mq._invalidate_queue_cache();
    RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION mq.purge_queue(queue_name text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    qid integer;
    n bigint;
BEGIN
    PERFORM mq._acl_check(queue_name, 'manage');
    -- exclusive: no send is in flight, so none commits after the purge
    qid := mq._use_queue(queue_name, true);
    DELETE FROM mq.queue_message m WHERE m.queue_id = qid;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM mq._count(qid, 'purged', n);
    RETURN n;
END;
$$;

-- Moves one message to its queue's dead-letter queue, recording why.
-- The caller holds the row (locked or just updated).  Both queues are
-- locked shared: the dead-letter queue cannot be dropped under us.
CREATE OR REPLACE FUNCTION mq._dead_letter(p_msg_id bigint, p_reason text, p_error text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_variable
DECLARE
    q mq.queue;
    qid integer;
BEGIN
    SELECT m.queue_id INTO qid FROM mq.queue_message m WHERE m.msg_id = p_msg_id;
    IF qid IS NULL OR NOT mq._lock('q', qid, false) THEN
        RETURN false;
    END IF;
    SELECT x.* INTO q FROM mq.queue x WHERE x.queue_id = qid;
    IF q.dead_letter_queue_id IS NULL
       OR NOT mq._lock('q', q.dead_letter_queue_id, false) THEN
        RETURN false;
    END IF;
    UPDATE mq.queue_message m SET
        queue_id = q.dead_letter_queue_id,
        vt = clock_timestamp(),
        attempt = 0,
        exhausted = false,
        last_error = coalesce(p_error, m.last_error),
        origin_queue_id = q.queue_id,
        deaths = coalesce(m.deaths, '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
            'queue', q.queue_name, 'reason', p_reason, 'attempts', m.attempt,
            'error', coalesce(p_error, m.last_error), 'time', clock_timestamp()))
    WHERE m.msg_id = p_msg_id;
    PERFORM mq._count(q.queue_id, 'dead', 1);
    PERFORM mq._count(q.dead_letter_queue_id, 'sent', 1);
    PERFORM mq._wake(q.dead_letter_queue_id);
    RETURN true;
END;
$$;

-- Receipts: a lease's receipt is its visible_at, as mq.poll returned it
-- (or as the last mq.extend of it returned).  With one, ack, extend, nack
-- and reject act only on that lease: once it lapsed and the message was
-- redelivered, released or moved, they change nothing and return false /
-- NULL.  The C functions take the extra argument only when declared.
DROP FUNCTION mq.ack(text, bigint);
CREATE FUNCTION mq.ack(queue_name text, msg_id bigint, receipt timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE C VOLATILE
SECURITY DEFINER
AS 'MODULE_PATHNAME', 'mq_ack';

DROP FUNCTION mq.ack(text, bigint[]);
CREATE FUNCTION mq.ack(queue_name text, msg_ids bigint[], receipts timestamptz[] DEFAULT NULL)
RETURNS bigint
LANGUAGE C VOLATILE
SECURITY DEFINER
AS 'MODULE_PATHNAME', 'mq_ack_batch';

DROP FUNCTION mq.extend(text, bigint, interval);
CREATE FUNCTION mq.extend(
    queue_name          text,
    msg_id              bigint,
    visibility_timeout  interval,
    receipt             timestamptz DEFAULT NULL)
RETURNS timestamptz
LANGUAGE C VOLATILE
SECURITY DEFINER
AS 'MODULE_PATHNAME', 'mq_extend';

DROP FUNCTION mq.nack(text, bigint, interval, text);
CREATE FUNCTION mq.nack(
    queue_name  text,
    msg_id      bigint,
    delay       interval DEFAULT NULL,
    error       text DEFAULT NULL,
    receipt     timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- its row by the primary key whatever the statistics (doc/design.md)
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_variable
DECLARE
    q     mq.queue;
    m     record;
    d     interval;
BEGIN
    PERFORM mq._acl_check(queue_name, 'receive');
    IF msg_id IS NULL THEN
        RAISE EXCEPTION 'msg_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF delay < interval '0' THEN
        RAISE EXCEPTION 'delay must not be negative, got %', delay
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO q FROM mq.queue x WHERE x.queue_id = mq._use_queue(queue_name);
    SELECT x.attempt INTO m FROM mq.queue_message x
     WHERE x.msg_id = nack.msg_id AND x.queue_id + 0 = q.queue_id
       AND (receipt IS NULL OR x.vt = receipt)
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF q.dead_letter_queue_id IS NOT NULL AND m.attempt >= q.max_attempts THEN
        PERFORM mq._dead_letter(nack.msg_id, 'max_attempts', error);
        RETURN 'dead';
    END IF;
    d := coalesce(delay, mq._backoff(q.retry_delay, q.retry_delay_max, m.attempt));
    UPDATE mq.queue_message x SET vt = clock_timestamp() + d,
           last_error = coalesce(error, x.last_error)
     WHERE x.msg_id = nack.msg_id;
    -- waiters sleep no longer than the next message's visibility, which
    -- this changes: wake them to look again
    PERFORM mq._wake(q.queue_id);
    RETURN 'retry';
END;
$$;

DROP FUNCTION mq.reject(text, bigint, text);
CREATE FUNCTION mq.reject(queue_name text, msg_id bigint, error text DEFAULT NULL,
                          receipt timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_variable
DECLARE
    q mq.queue;
BEGIN
    PERFORM mq._acl_check(queue_name, 'receive');
    IF msg_id IS NULL THEN
        RAISE EXCEPTION 'msg_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO q FROM mq.queue x WHERE x.queue_id = mq._use_queue(queue_name);
    IF q.dead_letter_queue_id IS NULL THEN
        RAISE EXCEPTION 'queue "%" has no dead-letter queue', queue_name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Set one with mq.alter_queue(queue_name, dead_letter_queue => ...), or ack the message.';
    END IF;
    PERFORM 1 FROM mq.queue_message x
     WHERE x.msg_id = reject.msg_id AND x.queue_id + 0 = q.queue_id
       AND (receipt IS NULL OR x.vt = receipt)
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN mq._dead_letter(reject.msg_id, 'rejected', error);
END;
$$;

CREATE OR REPLACE FUNCTION mq.redrive(queue_name text, max_messages integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    q mq.queue;
    n bigint;
BEGIN
    PERFORM mq._acl_check(queue_name, 'manage');
    IF max_messages < 1 THEN
        RAISE EXCEPTION 'max_messages must be at least 1, got %', max_messages
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO q FROM mq.queue x WHERE x.queue_id = mq._use_queue(queue_name);
    IF q.dead_letter_queue_id IS NULL
       OR NOT mq._lock('q', q.dead_letter_queue_id, false) THEN
        RAISE EXCEPTION 'queue "%" has no dead-letter queue', queue_name
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    WITH c AS (
        SELECT m.msg_id FROM mq.queue_message m
         WHERE m.queue_id = q.dead_letter_queue_id AND m.origin_queue_id = q.queue_id
         ORDER BY m.enqueued_at, m.msg_id
         LIMIT max_messages
         FOR UPDATE SKIP LOCKED)
    UPDATE mq.queue_message m
       SET queue_id = q.queue_id, vt = clock_timestamp(), attempt = 0,
           exhausted = false, origin_queue_id = NULL
      FROM c WHERE m.msg_id = c.msg_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM mq._wake(q.queue_id);
        PERFORM mq._count(q.dead_letter_queue_id, 'acked', n);
        PERFORM mq._count(q.queue_id, 'sent', n);
    END IF;
    RETURN n;
END;
$$;

-- Wakes the long polls of the queues where a lease (or a delay) ran out
-- within the last `since`: nothing commits when a lease lapses, and a
-- waiter only knew of the leases visible when it went to sleep.
CREATE FUNCTION mq._wake_lapsed(since interval)
RETURNS integer
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(mq._wake(x.queue_id))::integer FROM mq.queue x
     WHERE EXISTS (SELECT 1 FROM mq.queue_message m
                    WHERE m.queue_id = x.queue_id
                      AND m.vt > clock_timestamp() - since
                      AND m.vt <= clock_timestamp()
                      AND m.attempt > 0)
$$;
REVOKE EXECUTE ON FUNCTION mq._wake_lapsed(interval) FROM PUBLIC;

CREATE OR REPLACE FUNCTION mq.maintain(max_rows integer DEFAULT 1000)
RETURNS TABLE (dead_lettered bigint, expired bigint, dedup_keys_removed bigint,
               inbox_keys_removed bigint, segments_dropped integer)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    r record;
    q mq.queue;
    retention interval;
BEGIN
    PERFORM mq._acl_check('*', 'manage');
    dead_lettered := 0;
    expired := 0;
    -- last attempts whose lease lapsed
    FOR r IN SELECT m.msg_id FROM mq.queue_message m
              WHERE m.exhausted AND m.vt <= clock_timestamp()
              ORDER BY m.vt LIMIT max_rows
              FOR UPDATE SKIP LOCKED
    LOOP
        IF mq._dead_letter(r.msg_id, 'max_attempts', NULL) THEN
            dead_lettered := dead_lettered + 1;
        END IF;
    END LOOP;
    -- messages past their queue's message_ttl (not while leased)
    FOR q IN SELECT * FROM mq.queue x WHERE x.message_ttl IS NOT NULL LOOP
        IF NOT mq._lock('q', q.queue_id, false) THEN
            CONTINUE;   -- dropped meanwhile
        END IF;
        FOR r IN SELECT m.msg_id FROM mq.queue_message m
                  WHERE m.queue_id = q.queue_id
                    AND m.enqueued_at < clock_timestamp() - q.message_ttl
                    AND (m.vt <= clock_timestamp() OR m.attempt = 0)
                  LIMIT max_rows
                  FOR UPDATE SKIP LOCKED
        LOOP
            IF q.dead_letter_queue_id IS NOT NULL THEN
                PERFORM mq._dead_letter(r.msg_id, 'expired', NULL);
            ELSE
                DELETE FROM mq.queue_message m WHERE m.msg_id = r.msg_id;
                PERFORM mq._count(q.queue_id, 'dead', 1);
            END IF;
            expired := expired + 1;
        END LOOP;
    END LOOP;
    -- leases that lapsed since about the last pass
    PERFORM mq._wake_lapsed(greatest(interval '2 seconds',
        2 * coalesce(nullif(current_setting('mq.naptime', true), ''), '1s')::interval));
    -- dedup keys past their queue's window
    DELETE FROM mq.dedup d
     WHERE d.ctid = ANY (ARRAY(
        SELECT d2.ctid FROM mq.dedup d2 JOIN mq.queue x ON x.queue_id = d2.queue_id
         WHERE d2.created_at < clock_timestamp() - x.dedup_window
         ORDER BY d2.created_at LIMIT max_rows * 10));
    GET DIAGNOSTICS dedup_keys_removed = ROW_COUNT;
    -- inbox keys past mq.process_once_retention
    retention := coalesce(nullif(current_setting('mq.process_once_retention', true), ''),
                          '7 days')::interval;
    DELETE FROM mq.processed p
     WHERE p.ctid = ANY (ARRAY(
        SELECT p2.ctid FROM mq.processed p2
         WHERE p2.processed_at < clock_timestamp() - retention
         ORDER BY p2.processed_at LIMIT max_rows * 10));
    GET DIAGNOSTICS inbox_keys_removed = ROW_COUNT;
    -- topic segments: open a new one, drop those past retention
    segments_dropped := mq._maintain_segments();
    RETURN NEXT;
END;
$$;

CREATE OR REPLACE FUNCTION mq.create_topic(
    topic_name  text,
    partitions  integer DEFAULT 1,
    retention   interval DEFAULT '7 days')
RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    tid integer;
BEGIN
    PERFORM mq._acl_check('*', 'create');
    IF topic_name IS NULL OR partitions IS NULL OR retention IS NULL THEN
        RAISE EXCEPTION 'topic_name, partitions and retention must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM mq._check_name(topic_name);
    IF partitions < 1 OR partitions > 1024 THEN
        RAISE EXCEPTION 'partitions must be between 1 and 1024, got %', partitions
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF retention <= interval '0' THEN
        RAISE EXCEPTION 'retention must be positive, got %', retention
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM mq._check_interval('retention', retention);
    -- creators of one name are serialized; 42710 if anything has it
    PERFORM mq._lock_name(topic_name, NULL);
    tid := nextval('mq.topic_id_seq');
    INSERT INTO mq.topic (topic_id, topic_name, partitions, retention)
    VALUES (tid, topic_name, partitions, retention);
    INSERT INTO mq.topic_partition (topic_id, partition)
    SELECT tid, p FROM generate_series(0, partitions - 1) p;
    -- the topic's storage: a partition of mq.topic_record, split in segments
    EXECUTE format('CREATE TABLE mq.%I PARTITION OF mq.topic_record FOR VALUES IN (%s) PARTITION BY RANGE (seg)',
                   'topic_record_' || tid, tid);
    -- its index is the topic's own: mq.topic_record has none, so that a
    -- restore attaches bare partitions (see the operations section)
    EXECUTE format('CREATE INDEX ON mq.%I (topic_id, partition, "offset")', 'topic_record_' || tid);
    PERFORM mq._new_segment(tid);
    PERFORM mq._invalidate_queue_cache();
END;
$$;

CREATE OR REPLACE FUNCTION mq.drop_topic(topic_name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    tid integer;
BEGIN
    PERFORM mq._acl_check(topic_name, 'manage');
    IF topic_name IS NULL THEN
        RAISE EXCEPTION 'topic_name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- exclusive: waits for the transactions publishing to the topic
    tid := mq._lock_named('t', topic_name, true);
    IF tid IS NULL THEN
        RETURN false;
    END IF;
    DELETE FROM mq.topic t WHERE t.topic_id = tid;
    DELETE FROM mq.topic_partition p WHERE p.topic_id = tid;
    DELETE FROM mq.group_offset o USING mq.consumer_group g
     WHERE o.group_id = g.group_id AND g.topic_id = tid;
    DELETE FROM mq.group_member m USING mq.consumer_group g
     WHERE m.group_id = g.group_id AND g.topic_id = tid;
    DELETE FROM mq.consumer_group g WHERE g.topic_id = tid;
    DELETE FROM mq.binding b WHERE b.dest_kind = 't' AND b.dest_id = tid;
    DELETE FROM mq.segment s WHERE s.topic_id = tid;
    EXECUTE format('DROP TABLE mq.%I', 'topic_record_' || tid);
    PERFORM mq._invalidate_queue_cache();
    RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION mq.create_exchange(exchange_name text, type text, alternate_exchange text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    alt integer;
    xid integer;
BEGIN
    PERFORM mq._acl_check('*', 'create');
    IF alternate_exchange IS NOT NULL THEN PERFORM mq._acl_check(alternate_exchange, 'publish'); END IF;
    IF exchange_name IS NULL OR type IS NULL THEN
        RAISE EXCEPTION 'exchange_name and type must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM mq._check_name(exchange_name);
    IF type NOT IN ('direct', 'fanout', 'topic', 'headers') THEN
        RAISE EXCEPTION 'exchange type must be direct, fanout, topic or headers, got "%"', type
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- creators of one name are serialized; 42710 if anything has it
    PERFORM mq._lock_name(exchange_name, NULL);
    IF alternate_exchange IS NOT NULL THEN
        -- locked shared: it cannot be dropped before we commit
        alt := mq._lock_named('x', alternate_exchange, false);
        IF alt IS NULL THEN
            RAISE EXCEPTION 'exchange "%" does not exist', alternate_exchange USING ERRCODE = 'undefined_object';
        END IF;
    END IF;
    INSERT INTO mq.exchange (exchange_id, exchange_name, type, alternate_exchange_id)
    VALUES (nextval('mq.exchange_id_seq'), exchange_name, type, alt)
    RETURNING exchange_id INTO xid;
    -- the alternate exchange is an edge: routes within the depth bound (54000)
    IF alt IS NOT NULL THEN
        PERFORM mq._check_route_depth(ARRAY[xid], 0);
    END IF;
    PERFORM mq._invalidate_queue_cache();
END;
$$;

CREATE OR REPLACE FUNCTION mq.drop_exchange(exchange_name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    xid     integer;
    sources integer[];
    depth   integer;
BEGIN
    PERFORM mq._acl_check(exchange_name, 'manage');
    IF exchange_name IS NULL THEN
        RETURN false;
    END IF;
    -- exclusive: waits for the transactions publishing to or binding it
    xid := mq._lock_named('x', exchange_name, true);
    IF xid IS NULL THEN
        RETURN false;
    END IF;
    sources := array_remove(mq._route_sources(xid), xid);
    depth := mq._check_route_depth(sources);
    DELETE FROM mq.exchange x WHERE x.exchange_id = xid;
    DELETE FROM mq.binding b WHERE b.exchange_id = xid OR (b.dest_kind = 'x' AND b.dest_id = xid);
    UPDATE mq.exchange x SET alternate_exchange_id = NULL WHERE x.alternate_exchange_id = xid;
    -- a way through it may have been the shortest to somewhere (54000)
    PERFORM mq._check_route_depth(sources, depth);
    PERFORM mq._invalidate_queue_cache();
    RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION mq.bind(exchange_name text, destination text, binding_key text DEFAULT '#',
                        arguments jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    xid     integer := mq._exchange_id(exchange_name);
    d       record;
    sources integer[];
    depth   integer;
BEGIN
    PERFORM mq._acl_check(exchange_name, 'manage');
    PERFORM mq._acl_check(destination, 'publish');
    -- both ends locked shared: neither can be dropped before we commit
    IF NOT mq._lock('x', xid, false) THEN
        PERFORM mq._exchange_id(exchange_name);
    END IF;
    IF binding_key IS NULL THEN
        RAISE EXCEPTION 'binding_key must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO d FROM mq._kind_of(destination);
    IF d.kind IS NULL OR NOT mq._lock(d.kind, d.id, false) THEN
        RAISE EXCEPTION 'no queue, topic or exchange is called "%"', destination
            USING ERRCODE = 'undefined_object';
    END IF;
    IF arguments IS NOT NULL AND jsonb_typeof(arguments) <> 'object' THEN
        RAISE EXCEPTION 'arguments must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF arguments ? 'x-match' AND arguments->>'x-match' NOT IN ('all', 'any') THEN
        RAISE EXCEPTION 'x-match must be "all" or "any"' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- routes through a new edge must stay within the depth bound (54000)
    IF d.kind = 'x' THEN
        sources := mq._route_sources(xid);
        depth := mq._check_route_depth(sources);
    END IF;
    INSERT INTO mq.binding (exchange_id, dest_kind, dest_id, binding_key, arguments)
    VALUES (xid, d.kind, d.id, binding_key, arguments)
    ON CONFLICT ON CONSTRAINT binding_pkey
    DO UPDATE SET arguments = excluded.arguments;
    IF d.kind = 'x' THEN
        PERFORM mq._check_route_depth(sources, depth);
    END IF;
END;
$$;

-- (end of section: queue integrity)

--------------------------------------------------------------------------
-- Topic and outbox integrity: publish buffer, key order, group fencing
--------------------------------------------------------------------------

-- seq is drawn by the outbox's BEFORE trigger (mq._outbox_check) after it
-- has taken the key lock, not by a column default before it: per-key relay
-- order is then commit order for a plain INSERT as for mq.publish.  A seq
-- given explicitly (a restore) is kept.
ALTER TABLE mq.outbox ALTER COLUMN seq DROP DEFAULT;

-- Is a fetch of member waiting now (a long poll)?  Such a member is live
-- whatever its last heartbeat: it writes nothing while it waits.
CREATE FUNCTION mq._member_waiting(group_id integer, member text)
RETURNS boolean
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_member_waiting';

-- The live members of g, sorted: seen within the session timeout, or
-- waiting in a fetch now; with also, that member too.
CREATE FUNCTION mq._live_members(g mq.consumer_group, also text DEFAULT NULL)
RETURNS text[]
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_agg(s.member ORDER BY s.member) FROM (
        SELECT m.member FROM mq.group_member m
         WHERE m.group_id = g.group_id
           AND (m.last_seen > clock_timestamp() - g.session_timeout
                OR mq._member_waiting(g.group_id, m.member))
        UNION
        SELECT also WHERE also IS NOT NULL) s
$$;

-- The partitions member holds among live members: round-robin over the
-- sorted list.
CREATE FUNCTION mq._share(live text[], member text, partitions integer)
RETURNS integer[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(p ORDER BY p), '{}')
      FROM generate_series(0, partitions - 1) p
     WHERE p % array_length(live, 1) = array_position(live, member) - 1
$$;

-- Returns the partitions member holds.  Live members (seen within the
-- session timeout, or waiting in a fetch), sorted, share the partitions
-- round-robin; a change of the live set starts a new generation.  With
-- join, the call is member's heartbeat (fetch); without (commit), a member
-- whose session lapsed holds nothing until it fetches again, and a live
-- one is kept alive.
CREATE OR REPLACE FUNCTION mq._assign(g mq.consumer_group, member text, partitions integer,
                                      join_group boolean DEFAULT true)
RETURNS integer[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    live text[];
BEGIN
    IF join_group THEN
        INSERT INTO mq.group_member AS m (group_id, member, last_seen)
        VALUES (g.group_id, member, clock_timestamp())
        ON CONFLICT ON CONSTRAINT group_member_pkey DO UPDATE SET last_seen = excluded.last_seen;
    ELSE
        UPDATE mq.group_member m SET last_seen = clock_timestamp()
         WHERE m.group_id = g.group_id AND m.member = member
           AND m.last_seen > clock_timestamp() - g.session_timeout;
        IF NOT FOUND THEN
            RETURN '{}';
        END IF;
    END IF;
    live := mq._live_members(g);
    IF live IS DISTINCT FROM g.members THEN
        UPDATE mq.consumer_group x SET members = live, generation = x.generation + 1
         WHERE x.group_id = g.group_id;
    END IF;
    RETURN mq._share(live, member, partitions);
END;
$$;

-- The partitions member would hold if it joined now; writes nothing (a
-- long-polling fetch reads with it while it waits).
CREATE FUNCTION mq._assign_peek(g mq.consumer_group, member text, partitions integer)
RETURNS integer[]
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT mq._share(mq._live_members(g, member), member, partitions)
$$;

-- (end of section: topic integrity)
