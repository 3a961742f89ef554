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
END;
$$;
GRANT INSERT (aggregatetype, aggregateid, type, payload, headers) ON mq.outbox TO PUBLIC;
GRANT USAGE ON SEQUENCE mq.outbox_seq TO PUBLIC;

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

ALTER FUNCTION mq.send(text, jsonb, jsonb, interval, text) SECURITY DEFINER;
ALTER FUNCTION mq.send_batch(text, jsonb[], jsonb[], interval, text[]) SECURITY DEFINER;
ALTER FUNCTION mq.poll(text, integer, interval, interval) SECURITY DEFINER;
ALTER FUNCTION mq.pop(text, integer) SECURITY DEFINER;
ALTER FUNCTION mq.ack(text, bigint) SECURITY DEFINER;
ALTER FUNCTION mq.ack(text, bigint[]) SECURITY DEFINER;
ALTER FUNCTION mq.extend(text, bigint, interval) SECURITY DEFINER;
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

-- (end of section: privileges)

--------------------------------------------------------------------------
-- Shared state and input bounds: counters, aborted deliveries, routing
--------------------------------------------------------------------------

-- (end of section: shared state)

--------------------------------------------------------------------------
-- Background worker: status, settings, preload check
--------------------------------------------------------------------------

-- (end of section: worker)

--------------------------------------------------------------------------
-- Queue integrity: lock protocol, receipts, 2PC, wake-ups, plans
--------------------------------------------------------------------------

-- (end of section: queue integrity)

--------------------------------------------------------------------------
-- Topic and outbox integrity: publish buffer, key order, group fencing
--------------------------------------------------------------------------

-- (end of section: topic integrity)
