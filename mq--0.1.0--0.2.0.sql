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
    PERFORM pg_advisory_xact_lock(28017, 2);
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
                         ELSE (mq.murmur2(convert_to(d.aggregateid, 'UTF8')) & 2147483647) % t.partitions
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
      INTO n;
    RETURN n;
END;
$$;

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
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    qid   integer;
    dlq   text := dead_letter_queue;
    dlqid integer;
BEGIN
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
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    q     mq.queue;
    dlqid integer;
BEGIN
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
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    q    mq.queue;
    qid  integer;
    ids  integer[];
    user_name text;
BEGIN
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
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    qid integer;
    n bigint;
BEGIN
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
AS 'MODULE_PATHNAME', 'mq_ack';

DROP FUNCTION mq.ack(text, bigint[]);
CREATE FUNCTION mq.ack(queue_name text, msg_ids bigint[], receipts timestamptz[] DEFAULT NULL)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_ack_batch';

DROP FUNCTION mq.extend(text, bigint, interval);
CREATE FUNCTION mq.extend(
    queue_name          text,
    msg_id              bigint,
    visibility_timeout  interval,
    receipt             timestamptz DEFAULT NULL)
RETURNS timestamptz
LANGUAGE C VOLATILE
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
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_variable
DECLARE
    q mq.queue;
BEGIN
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
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    q mq.queue;
    n bigint;
BEGIN
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
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    r record;
    q mq.queue;
    retention interval;
BEGIN
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
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    tid integer;
BEGIN
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
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    tid integer;
BEGIN
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
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    alt integer;
BEGIN
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
    VALUES (nextval('mq.exchange_id_seq'), exchange_name, type, alt);
    PERFORM mq._invalidate_queue_cache();
END;
$$;

CREATE OR REPLACE FUNCTION mq.drop_exchange(exchange_name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    xid integer;
BEGIN
    IF exchange_name IS NULL THEN
        RETURN false;
    END IF;
    -- exclusive: waits for the transactions publishing to or binding it
    xid := mq._lock_named('x', exchange_name, true);
    IF xid IS NULL THEN
        RETURN false;
    END IF;
    DELETE FROM mq.exchange x WHERE x.exchange_id = xid;
    DELETE FROM mq.binding b WHERE b.exchange_id = xid OR (b.dest_kind = 'x' AND b.dest_id = xid);
    UPDATE mq.exchange x SET alternate_exchange_id = NULL WHERE x.alternate_exchange_id = xid;
    PERFORM mq._invalidate_queue_cache();
    RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION mq.bind(exchange_name text, destination text, binding_key text DEFAULT '#',
                        arguments jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    xid integer := mq._exchange_id(exchange_name);
    d   record;
BEGIN
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
    INSERT INTO mq.binding (exchange_id, dest_kind, dest_id, binding_key, arguments)
    VALUES (xid, d.kind, d.id, binding_key, arguments)
    ON CONFLICT ON CONSTRAINT binding_pkey
    DO UPDATE SET arguments = excluded.arguments;
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
