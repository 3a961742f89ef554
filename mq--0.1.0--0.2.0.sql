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
