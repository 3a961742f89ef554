-- mq--0.1.0.sql: the objects of the mq extension.
\echo Use "CREATE EXTENSION mq" to load this file. \quit

--------------------------------------------------------------------------
-- Catalog
--------------------------------------------------------------------------

-- One row per queue.  The C code caches rows of this table per backend and
-- drops the cache on a relcache invalidation of this table, which every
-- change below sends.
CREATE TABLE mq.queue (
    queue_id            integer PRIMARY KEY,
    queue_name          text NOT NULL UNIQUE,
    visibility_timeout  interval NOT NULL,
    max_attempts        integer NOT NULL,
    retry_delay         interval NOT NULL,
    retry_delay_max     interval NOT NULL,
    dead_letter_queue_id integer,          -- NULL: messages never die here
    message_ttl         interval,          -- NULL: no expiry
    dedup_window        interval NOT NULL,
    dlq_owner_id        integer,           -- set on a DLQ created for a queue
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE SEQUENCE mq.queue_id_seq AS integer OWNED BY mq.queue.queue_id;

-- All messages of all queues live in one table: one set of cached plans
-- serves every queue, and thousands of queues cost no catalog entries.
-- See doc/design.md.
-- CACHE: a backend takes ids 128 at a time without locking the sequence;
-- ids are unique, not ordered across backends (nothing relies on that).
CREATE SEQUENCE mq.msg_id_seq AS bigint CACHE 128;
-- Columns are ordered by alignment (8-byte, then 4, then 1, then
-- variable-length) so that a row carries no padding.
CREATE TABLE mq.queue_message (
    msg_id       bigint NOT NULL,
    vt           timestamptz NOT NULL,      -- visible from (lease expiry)
    enqueued_at  timestamptz NOT NULL,     -- first enqueue, kept across deaths
    queue_id     integer NOT NULL,
    attempt      integer NOT NULL DEFAULT 0,
    origin_queue_id integer,                -- where a dead message died
    exhausted    boolean NOT NULL DEFAULT false, -- used its last attempt
    payload      jsonb NOT NULL,
    headers      jsonb,
    last_error   text,
    deaths       jsonb,                     -- [{queue, reason, attempts, error, time}]
    CONSTRAINT queue_message_pkey PRIMARY KEY (msg_id)
) WITH (autovacuum_vacuum_scale_factor = 0,
        autovacuum_vacuum_threshold = 2000,
        autovacuum_vacuum_insert_scale_factor = 0,
        autovacuum_vacuum_insert_threshold = 20000,
        autovacuum_vacuum_cost_delay = 0,
        autovacuum_analyze_scale_factor = 0.05);
-- poll walks this index: ready rows of one queue, oldest visibility first
CREATE INDEX queue_message_ready_idx ON mq.queue_message (queue_id, vt);
-- the worker finds lapsed last attempts here; tiny: only exhausted rows
CREATE INDEX queue_message_exhausted_idx ON mq.queue_message (vt) WHERE exhausted;

-- Dedup keys of senders: one row per (queue, key) seen within the window.
CREATE TABLE mq.dedup (
    queue_id    integer NOT NULL,
    dedup_key   text NOT NULL,
    msg_id      bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (queue_id, dedup_key)
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0,
        autovacuum_vacuum_threshold = 2000, autovacuum_vacuum_cost_delay = 0);
CREATE INDEX dedup_created_idx ON mq.dedup (created_at);

-- The consumer-side inbox of mq.process_once.
CREATE TABLE mq.processed (
    consumer      text NOT NULL,
    message_key   text NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (consumer, message_key)
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0,
        autovacuum_vacuum_threshold = 2000, autovacuum_vacuum_cost_delay = 0);
CREATE INDEX processed_at_idx ON mq.processed (processed_at);

-- Running totals per queue, flushed from shared memory by the worker.
CREATE TABLE mq.queue_counter (
    queue_id     integer PRIMARY KEY,
    total_sent   bigint NOT NULL DEFAULT 0,
    total_acked  bigint NOT NULL DEFAULT 0,
    total_dead   bigint NOT NULL DEFAULT 0,
    total_purged bigint NOT NULL DEFAULT 0,
    depth_adjust bigint NOT NULL DEFAULT 0,  -- set by mq.recount()
    updated_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
) WITH (fillfactor = 50);

SELECT pg_catalog.pg_extension_config_dump('mq.queue', '');
SELECT pg_catalog.pg_extension_config_dump('mq.queue_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mq.queue_message', '');
SELECT pg_catalog.pg_extension_config_dump('mq.msg_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mq.dedup', '');
SELECT pg_catalog.pg_extension_config_dump('mq.processed', '');
SELECT pg_catalog.pg_extension_config_dump('mq.queue_counter', '');

-- What poll and pop return.
CREATE TYPE mq.message AS (
    msg_id       bigint,
    payload      jsonb,
    headers      jsonb,
    attempt      integer,
    enqueued_at  timestamptz,
    visible_at   timestamptz,
    last_error   text,
    deaths       jsonb
);

--------------------------------------------------------------------------
-- Internal helpers (C)
--------------------------------------------------------------------------

-- Raises a clear error unless queue_name is a valid queue name.
CREATE FUNCTION mq._check_name(queue_name text)
RETURNS void
LANGUAGE C STRICT IMMUTABLE
AS 'MODULE_PATHNAME', 'mq_check_name';

-- Wakes the long-poll waiters of a queue when the transaction commits.
CREATE FUNCTION mq._wake(queue_id integer)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_wake';

-- Moves a queue counter ('sent', 'acked', 'dead', 'purged') when the
-- transaction commits.
CREATE FUNCTION mq._count(queue_id integer, kind text, n bigint)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_count';

-- Counter moves committed but not yet written to mq.queue_counter.
CREATE FUNCTION mq._pending_counters(
    OUT queue_id integer, OUT sent bigint, OUT acked bigint, OUT dead bigint,
    OUT purged bigint)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_pending_counters';

-- Starts this database's background worker once the transaction commits.
CREATE FUNCTION mq._launch_worker()
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_launch';

-- Tells every backend to drop its cached copy of mq.queue at commit.
CREATE FUNCTION mq._invalidate_queue_cache()
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'mq_invalidate_queue_cache';

--------------------------------------------------------------------------
-- Queue administration
--------------------------------------------------------------------------

-- Checks the policy arguments shared by create_queue and alter_queue.
CREATE FUNCTION mq._check_policy(
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
END;
$$;

CREATE FUNCTION mq.create_queue(
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

    IF EXISTS (SELECT 1 FROM mq.queue q WHERE q.queue_name = create_queue.queue_name) THEN
        IF if_not_exists THEN
            RAISE NOTICE 'queue "%" already exists, skipping', queue_name;
            RETURN;
        END IF;
        RAISE EXCEPTION 'queue "%" already exists', queue_name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use if_not_exists => true to ignore an existing queue.';
    END IF;

    PERFORM mq._check_name_free(queue_name);
    qid := nextval('mq.queue_id_seq');
    -- the dead-letter queue: created with its queue, has none itself
    SELECT q.queue_id INTO dlqid FROM mq.queue q WHERE q.queue_name = dlq;
    IF dlqid IS NULL THEN
        PERFORM mq._check_name_free(dlq);
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

    BEGIN
        INSERT INTO mq.queue (queue_id, queue_name, visibility_timeout, max_attempts,
                              retry_delay, retry_delay_max, dead_letter_queue_id,
                              message_ttl, dedup_window)
        VALUES (qid, create_queue.queue_name, create_queue.visibility_timeout,
                create_queue.max_attempts, create_queue.retry_delay,
                create_queue.retry_delay_max, dlqid, create_queue.message_ttl,
                create_queue.dedup_window);
    EXCEPTION WHEN unique_violation THEN
        -- a concurrent create_queue won
        IF if_not_exists THEN
            RAISE NOTICE 'queue "%" already exists, skipping', queue_name;
            RETURN;
        END IF;
        RAISE EXCEPTION 'queue "%" already exists', queue_name
            USING ERRCODE = 'duplicate_object';
    END;
    INSERT INTO mq.queue_counter (queue_id) VALUES (qid);
    PERFORM mq._invalidate_queue_cache();
END;
$$;

CREATE FUNCTION mq.alter_queue(
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
    SELECT * INTO q FROM mq.queue x WHERE x.queue_id = mq._queue_id(queue_name) FOR UPDATE;
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
        dlqid := mq._queue_id(dead_letter_queue);
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
    PERFORM mq._invalidate_queue_cache();
END;
$$;

CREATE FUNCTION mq.drop_queue(queue_name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    q    mq.queue;
    ids  integer[];
    user_name text;
BEGIN
    IF queue_name IS NULL THEN
        RAISE EXCEPTION 'queue_name must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM mq._check_name(queue_name);
    SELECT * INTO q FROM mq.queue x WHERE x.queue_name = drop_queue.queue_name FOR UPDATE;
    IF q.queue_id IS NULL THEN
        RETURN false;
    END IF;
    SELECT x.queue_name INTO user_name FROM mq.queue x
     WHERE x.dead_letter_queue_id = q.queue_id AND x.queue_id <> q.queue_id
       AND x.queue_id IS DISTINCT FROM q.dlq_owner_id
     LIMIT 1;
    IF user_name IS NOT NULL THEN
        RAISE EXCEPTION 'queue "%" is the dead-letter queue of queue "%"', queue_name, user_name
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Drop that queue first, or point it elsewhere with mq.alter_queue().';
    END IF;
    -- the queue, and the dead-letter queue made for it
    ids := ARRAY[q.queue_id] || ARRAY(
        SELECT x.queue_id FROM mq.queue x
         WHERE x.dlq_owner_id = q.queue_id
           AND NOT EXISTS (SELECT 1 FROM mq.queue y
                            WHERE y.dead_letter_queue_id = x.queue_id
                              AND y.queue_id <> q.queue_id));
    DELETE FROM mq.queue x WHERE x.queue_id = ANY (ids);
    DELETE FROM mq.queue_message m WHERE m.queue_id = ANY (ids);
    DELETE FROM mq.dedup d WHERE d.queue_id = ANY (ids);
    DELETE FROM mq.queue_counter c WHERE c.queue_id = ANY (ids);
    DELETE FROM mq.binding b WHERE b.dest_kind = 'q' AND b.dest_id = ANY (ids);
    PERFORM mq._invalidate_queue_cache();
    RETURN true;
END;
$$;

-- Looks a queue up by name, with a clear error when it does not exist.
CREATE FUNCTION mq._queue_id(queue_name text)
RETURNS integer
LANGUAGE plpgsql STABLE
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
    SELECT q.queue_id INTO qid FROM mq.queue q WHERE q.queue_name = _queue_id.queue_name;
    IF qid IS NULL THEN
        PERFORM mq._check_name(queue_name);
        RAISE EXCEPTION 'queue "%" does not exist', queue_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with mq.create_queue().';
    END IF;
    RETURN qid;
END;
$$;

CREATE FUNCTION mq.purge_queue(queue_name text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    qid integer;
    n bigint;
BEGIN
    qid := mq._queue_id(queue_name);
    DELETE FROM mq.queue_message m WHERE m.queue_id = qid;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM mq._count(qid, 'purged', n);
    RETURN n;
END;
$$;

CREATE FUNCTION mq.list_queues()
RETURNS TABLE (queue_name text, created_at timestamptz, settings jsonb)
LANGUAGE sql STABLE
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
    ORDER BY q.queue_name
$$;

--------------------------------------------------------------------------
-- Retries and dead letters
--------------------------------------------------------------------------

-- Moves one message to its queue's dead-letter queue, recording why.
-- The caller holds the row (locked or just updated).
CREATE FUNCTION mq._dead_letter(p_msg_id bigint, p_reason text, p_error text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    q mq.queue;
BEGIN
    SELECT x.* INTO q FROM mq.queue x JOIN mq.queue_message m ON m.queue_id = x.queue_id
     WHERE m.msg_id = p_msg_id;
    IF q.queue_id IS NULL OR q.dead_letter_queue_id IS NULL THEN
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

CREATE FUNCTION mq.nack(
    queue_name  text,
    msg_id      bigint,
    delay       interval DEFAULT NULL,
    error       text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
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
    SELECT * INTO q FROM mq.queue x WHERE x.queue_id = mq._queue_id(queue_name);
    SELECT x.attempt INTO m FROM mq.queue_message x
     WHERE x.msg_id = nack.msg_id AND x.queue_id = q.queue_id FOR UPDATE;
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
    PERFORM mq._wake(q.queue_id);
    RETURN 'retry';
END;
$$;

-- The policy's delay before retry number attempt+1: retry_delay doubled per
-- attempt, with +-10 % jitter, capped at retry_delay_max.
CREATE FUNCTION mq._backoff(base interval, cap interval, attempt integer)
RETURNS interval
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT least(cap, base * power(2, least(greatest(attempt - 1, 0), 40))
                            * (0.9 + random() * 0.2))
$$;

CREATE FUNCTION mq.reject(queue_name text, msg_id bigint, error text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    q mq.queue;
BEGIN
    IF msg_id IS NULL THEN
        RAISE EXCEPTION 'msg_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO q FROM mq.queue x WHERE x.queue_id = mq._queue_id(queue_name);
    IF q.dead_letter_queue_id IS NULL THEN
        RAISE EXCEPTION 'queue "%" has no dead-letter queue', queue_name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Set one with mq.alter_queue(queue_name, dead_letter_queue => ...), or ack the message.';
    END IF;
    PERFORM 1 FROM mq.queue_message x
     WHERE x.msg_id = reject.msg_id AND x.queue_id = q.queue_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN mq._dead_letter(reject.msg_id, 'rejected', error);
END;
$$;

CREATE FUNCTION mq.redrive(queue_name text, max_messages integer DEFAULT NULL)
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
    SELECT * INTO q FROM mq.queue x WHERE x.queue_id = mq._queue_id(queue_name);
    IF q.dead_letter_queue_id IS NULL THEN
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

--------------------------------------------------------------------------
-- Exactly-once effects: the consumer's inbox
--------------------------------------------------------------------------

CREATE FUNCTION mq.process_once(consumer text, message_key text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
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

--------------------------------------------------------------------------
-- Producing and consuming (C, hot paths)
--------------------------------------------------------------------------

CREATE FUNCTION mq.send(
    queue_name  text,
    payload     jsonb,
    headers     jsonb DEFAULT NULL,
    delay       interval DEFAULT '0',
    dedup_key   text DEFAULT NULL)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_send';

CREATE FUNCTION mq.send_batch(
    queue_name  text,
    payloads    jsonb[],
    headers     jsonb[] DEFAULT NULL,
    delay       interval DEFAULT '0',
    dedup_keys  text[] DEFAULT NULL)
RETURNS SETOF bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_send_batch';

CREATE FUNCTION mq.poll(
    queue_name          text,
    max_messages        integer DEFAULT 1,
    visibility_timeout  interval DEFAULT NULL,
    wait                interval DEFAULT '0')
RETURNS SETOF mq.message
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_poll';

CREATE FUNCTION mq.pop(
    queue_name    text,
    max_messages  integer DEFAULT 1)
RETURNS SETOF mq.message
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_pop';

CREATE FUNCTION mq.ack(queue_name text, msg_id bigint)
RETURNS boolean
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_ack';

CREATE FUNCTION mq.ack(queue_name text, msg_ids bigint[])
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_ack_batch';

CREATE FUNCTION mq.extend(
    queue_name          text,
    msg_id              bigint,
    visibility_timeout  interval)
RETURNS timestamptz
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_extend';

--------------------------------------------------------------------------
-- Monitoring
--------------------------------------------------------------------------

-- Per-queue running totals: what the worker wrote plus what is pending,
-- and the depth (messages in the queue) they imply.
CREATE FUNCTION mq._totals()
RETURNS TABLE (queue_id integer, total_sent bigint, total_acked bigint,
               total_dead bigint, total_purged bigint, depth bigint)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.queue_id, s.sent, s.acked, s.dead, s.purged,
           s.sent - s.acked - s.dead - s.purged + c.depth_adjust
    FROM mq.queue_counter c
    LEFT JOIN mq._pending_counters() p ON p.queue_id = c.queue_id
    CROSS JOIN LATERAL (SELECT c.total_sent + coalesce(p.sent, 0) AS sent,
                               c.total_acked + coalesce(p.acked, 0) AS acked,
                               c.total_dead + coalesce(p.dead, 0) AS dead,
                               c.total_purged + coalesce(p.purged, 0) AS purged) s
$$;

-- Makes the depth implied by the counters equal to a fresh count of every
-- queue.  The worker runs it once after each server start (counter moves
-- pending in shared memory are lost in a crash).
CREATE FUNCTION mq.recount()
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE mq.queue_counter c
       SET depth_adjust = c.depth_adjust + coalesce(m.n, 0) - t.depth
      FROM mq._totals() t
      LEFT JOIN (SELECT x.queue_id, count(*) AS n FROM mq.queue_message x
                 GROUP BY x.queue_id) m ON m.queue_id = t.queue_id
     WHERE c.queue_id = t.queue_id
$$;

-- Counts come from the ready index.  In-flight and delayed messages (vt in
-- the future) are counted in the short range after "now"; ready messages
-- are counted exactly up to 100,000 and beyond that derived from the depth
-- the counters keep, so the view stays fast on queues of millions.  "now" is
-- the statement's start, so it is an index bound.
CREATE FUNCTION mq._queue_stats()
RETURNS TABLE (queue_name text, ready bigint, in_flight bigint, delayed bigint,
               total bigint, oldest_ready_age interval,
               oldest_enqueued_at timestamptz, total_sent bigint,
               total_acked bigint, total_dead bigint, total_purged bigint,
               dead_letter_queue text)
LANGUAGE sql VOLATILE
ROWS 100
-- the plan looks expensive on paper (one capped count per queue); compiling
-- it would cost more than running it
SET jit = off
SET search_path = pg_catalog, pg_temp
AS $$
SELECT q.queue_name,
       rd.ready,
       f.in_flight,
       f.delayed,
       rd.ready + f.in_flight + f.delayed AS total,
       pg_catalog.statement_timestamp() - o.enqueued_at AS oldest_ready_age,
       o.enqueued_at AS oldest_enqueued_at,
       coalesce(t.total_sent, 0)  AS total_sent,
       coalesce(t.total_acked, 0) AS total_acked,
       coalesce(t.total_dead, 0)  AS total_dead,
       coalesce(t.total_purged, 0) AS total_purged,
       d.queue_name AS dead_letter_queue
FROM mq.queue q
LEFT JOIN mq.queue d ON d.queue_id = q.dead_letter_queue_id
LEFT JOIN mq._totals() t ON t.queue_id = q.queue_id
CROSS JOIN LATERAL (
    SELECT count(*) AS n FROM (
        SELECT 1 FROM mq.queue_message m
        WHERE m.queue_id = q.queue_id AND m.vt <= pg_catalog.statement_timestamp()
        LIMIT 100000) x
) r
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE m.attempt > 0) AS in_flight,
           count(*) FILTER (WHERE m.attempt = 0) AS delayed
    FROM mq.queue_message m
    WHERE m.queue_id = q.queue_id AND m.vt > pg_catalog.statement_timestamp()
) f
CROSS JOIN LATERAL (
    SELECT CASE WHEN r.n < 100000 THEN r.n
                ELSE greatest(r.n, coalesce(t.depth, 0) - f.in_flight - f.delayed)
           END AS ready
) rd
LEFT JOIN LATERAL (
    SELECT m.enqueued_at FROM mq.queue_message m
    WHERE m.queue_id = q.queue_id AND m.vt <= pg_catalog.statement_timestamp()
      AND NOT m.exhausted
    ORDER BY m.vt LIMIT 1
) o ON true
$$;

CREATE VIEW mq.queue_stats AS
SELECT * FROM mq._queue_stats();

--------------------------------------------------------------------------
-- Topics, consumer groups, exchanges and the transactional outbox
--------------------------------------------------------------------------

CREATE FUNCTION mq.murmur2(data bytea)
RETURNS integer
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'mq_murmur2';

CREATE TABLE mq.topic (
    topic_id     integer PRIMARY KEY,
    topic_name   text NOT NULL UNIQUE,
    partitions   integer NOT NULL,
    retention    interval NOT NULL,
    current_seg  bigint,               -- the segment the relay appends to
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE SEQUENCE mq.topic_id_seq AS integer OWNED BY mq.topic.topic_id;

-- Next offset per partition; only the relay writes it.
CREATE TABLE mq.topic_partition (
    topic_id     integer NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition)
) WITH (fillfactor = 50);

-- Records live in segments: mq.topic_record is partitioned by topic, and
-- each topic's partition by segment number.  The relay appends to the
-- topic's current segment; mq.maintain() opens a new one when the current
-- one is old enough and drops a topic's whole segments once every record in
-- them is past the topic's retention: no mass DELETE, no bloat.
CREATE SEQUENCE mq.segment_seq AS bigint;
CREATE TABLE mq.segment (
    seg         bigint PRIMARY KEY,
    topic_id    integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
CREATE INDEX segment_topic_idx ON mq.segment (topic_id, seg);
CREATE TABLE mq.topic_record (
    seg           bigint NOT NULL,
    topic_id      integer NOT NULL,
    partition     integer NOT NULL,
    "offset"      bigint NOT NULL,
    key           text,
    payload       jsonb,
    headers       jsonb,
    message_id    uuid NOT NULL,
    published_at  timestamptz NOT NULL
) PARTITION BY LIST (topic_id);
CREATE INDEX topic_record_offset_idx ON mq.topic_record (topic_id, partition, "offset");

CREATE TABLE mq.consumer_group (
    group_id         integer PRIMARY KEY,
    topic_id         integer NOT NULL,
    group_name       text NOT NULL,
    session_timeout  interval NOT NULL,
    generation       bigint NOT NULL DEFAULT 0,
    members          text[] NOT NULL DEFAULT '{}',   -- live members, sorted
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    UNIQUE (topic_id, group_name)
) WITH (fillfactor = 50);
CREATE SEQUENCE mq.group_id_seq AS integer OWNED BY mq.consumer_group.group_id;

CREATE TABLE mq.group_offset (
    group_id          integer NOT NULL,
    partition         integer NOT NULL,
    committed_offset  bigint NOT NULL,
    committed_at      timestamptz,
    PRIMARY KEY (group_id, partition)
) WITH (fillfactor = 50);

CREATE TABLE mq.group_member (
    group_id   integer NOT NULL,
    member     text NOT NULL,
    last_seen  timestamptz NOT NULL,
    PRIMARY KEY (group_id, member)
) WITH (fillfactor = 50);

CREATE TABLE mq.exchange (
    exchange_id         integer PRIMARY KEY,
    exchange_name       text NOT NULL UNIQUE,
    type                text NOT NULL CHECK (type IN ('direct', 'fanout', 'topic', 'headers')),
    alternate_exchange_id integer,
    dropped             bigint NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE SEQUENCE mq.exchange_id_seq AS integer OWNED BY mq.exchange.exchange_id;

-- dest_kind: 'q' queue, 't' topic, 'x' exchange
CREATE TABLE mq.binding (
    exchange_id  integer NOT NULL,
    dest_kind    "char" NOT NULL,
    dest_id      integer NOT NULL,
    binding_key  text NOT NULL,
    arguments    jsonb,
    PRIMARY KEY (exchange_id, dest_kind, dest_id, binding_key)
);

-- The transactional outbox, with Debezium's outbox columns.
CREATE SEQUENCE mq.outbox_seq AS bigint;
CREATE TABLE mq.outbox (
    id             uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    aggregatetype  text NOT NULL,      -- destination: topic, exchange or queue
    aggregateid    text,               -- key
    type           text,
    payload        jsonb,
    headers        jsonb,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    seq            bigint NOT NULL DEFAULT pg_catalog.nextval('mq.outbox_seq'),
    PRIMARY KEY (seq)   -- relay order; the event id needs no index here
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
        autovacuum_vacuum_cost_delay = 0);

SELECT pg_catalog.pg_extension_config_dump('mq.topic', '');
SELECT pg_catalog.pg_extension_config_dump('mq.topic_partition', '');
SELECT pg_catalog.pg_extension_config_dump('mq.consumer_group', '');
SELECT pg_catalog.pg_extension_config_dump('mq.group_offset', '');
SELECT pg_catalog.pg_extension_config_dump('mq.exchange', '');
SELECT pg_catalog.pg_extension_config_dump('mq.binding', '');
SELECT pg_catalog.pg_extension_config_dump('mq.outbox', '');

-- What kind of object a name is: 'q', 't', 'x', or NULL.
CREATE FUNCTION mq._kind_of(name text, OUT kind "char", OUT id integer)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT k, i FROM (
        SELECT 'q'::"char", q.queue_id FROM mq.queue q WHERE q.queue_name = name
        UNION ALL
        SELECT 't'::"char", t.topic_id FROM mq.topic t WHERE t.topic_name = name
        UNION ALL
        SELECT 'x'::"char", x.exchange_id FROM mq.exchange x WHERE x.exchange_name = name
    ) s(k, i) LIMIT 1
$$;

-- Raises 42710 if a queue, topic or exchange is called name.
CREATE FUNCTION mq._check_name_free(name text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    k "char";
BEGIN
    SELECT kind INTO k FROM mq._kind_of(name);
    IF k IS NOT NULL THEN
        RAISE EXCEPTION '% "%" already exists',
            CASE k WHEN 'q' THEN 'a queue' WHEN 't' THEN 'a topic' ELSE 'an exchange' END, name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Queues, topics and exchanges share one namespace.';
    END IF;
END;
$$;

CREATE FUNCTION mq._topic_id(topic_name text)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    tid integer;
BEGIN
    IF topic_name IS NULL THEN
        RAISE EXCEPTION 'topic_name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT t.topic_id INTO tid FROM mq.topic t WHERE t.topic_name = _topic_id.topic_name;
    IF tid IS NULL THEN
        RAISE EXCEPTION 'topic "%" does not exist', topic_name
            USING ERRCODE = 'undefined_object', HINT = 'Create it with mq.create_topic().';
    END IF;
    RETURN tid;
END;
$$;

-- Opens a new segment of a topic and makes it the topic's current one.
CREATE FUNCTION mq._new_segment(tid integer)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    s bigint := nextval('mq.segment_seq');
BEGIN
    EXECUTE format('CREATE TABLE mq.%I PARTITION OF mq.%I FOR VALUES FROM (%s) TO (%s)',
                   'topic_record_' || tid || '_' || s, 'topic_record_' || tid, s, s + 1);
    INSERT INTO mq.segment (seg, topic_id) VALUES (s, tid);
    UPDATE mq.topic t SET current_seg = s WHERE t.topic_id = tid;
    RETURN s;
END;
$$;

-- Rotates and drops segments; part of mq.maintain().  Returns segments
-- dropped.  Serialized with the relay, which appends to current segments.
-- Opening or dropping a segment needs a brief exclusive lock on the topic's
-- storage; a consumer in a long fetch (wait => ...) holds it off, so each
-- step gives up after 1 s and is retried on the next pass.
CREATE FUNCTION mq._maintain_segments()
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
    PERFORM pg_advisory_xact_lock(28017, 2);
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

CREATE FUNCTION mq.create_topic(
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
    PERFORM mq._check_name_free(topic_name);
    tid := nextval('mq.topic_id_seq');
    INSERT INTO mq.topic (topic_id, topic_name, partitions, retention)
    VALUES (tid, topic_name, partitions, retention);
    INSERT INTO mq.topic_partition (topic_id, partition)
    SELECT tid, p FROM generate_series(0, partitions - 1) p;
    -- the topic's storage: a partition of mq.topic_record, split in segments
    EXECUTE format('CREATE TABLE mq.%I PARTITION OF mq.topic_record FOR VALUES IN (%s) PARTITION BY RANGE (seg)',
                   'topic_record_' || tid, tid);
    PERFORM mq._new_segment(tid);
    PERFORM mq._invalidate_queue_cache();
END;
$$;

CREATE FUNCTION mq.drop_topic(topic_name text)
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
    DELETE FROM mq.topic t WHERE t.topic_name = drop_topic.topic_name RETURNING t.topic_id INTO tid;
    IF tid IS NULL THEN
        RETURN false;
    END IF;
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

CREATE FUNCTION mq.list_topics()
RETURNS TABLE (topic_name text, partitions integer, retention interval, created_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.topic_name, t.partitions, t.retention, t.created_at FROM mq.topic t ORDER BY 1
$$;

--- consumer groups

CREATE FUNCTION mq._group(topic_name text, group_name text)
RETURNS mq.consumer_group
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    g mq.consumer_group;
BEGIN
    IF group_name IS NULL THEN
        RAISE EXCEPTION 'group_name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO g FROM mq.consumer_group x
     WHERE x.topic_id = mq._topic_id(topic_name) AND x.group_name = _group.group_name;
    IF g.group_id IS NULL THEN
        RAISE EXCEPTION 'consumer group "%" of topic "%" does not exist', group_name, topic_name
            USING ERRCODE = 'undefined_object', HINT = 'Create it with mq.create_group().';
    END IF;
    RETURN g;
END;
$$;

CREATE FUNCTION mq.create_group(
    topic_name       text,
    group_name       text,
    start_at         text DEFAULT 'latest',
    session_timeout  interval DEFAULT '30 seconds')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    tid integer := mq._topic_id(topic_name);
    gid integer;
BEGIN
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

CREATE FUNCTION mq.drop_group(topic_name text, group_name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    gid integer;
BEGIN
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

-- Returns the partitions member holds.  Live members (seen within the
-- session timeout), sorted, share the partitions round-robin; a change of
-- the live set starts a new generation.  With join, the call is member's
-- heartbeat (fetch); without (commit), a member whose session lapsed holds
-- nothing until it fetches again, and a live one is kept alive.
CREATE FUNCTION mq._assign(g mq.consumer_group, member text, partitions integer,
                           join_group boolean DEFAULT true)
RETURNS integer[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    live text[];
    n    integer;
    i    integer;
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
    SELECT array_agg(m.member ORDER BY m.member) INTO live FROM mq.group_member m
     WHERE m.group_id = g.group_id AND m.last_seen > clock_timestamp() - g.session_timeout;
    IF live IS DISTINCT FROM g.members THEN
        UPDATE mq.consumer_group x SET members = live, generation = x.generation + 1
         WHERE x.group_id = g.group_id;
    END IF;
    n := array_length(live, 1);
    i := array_position(live, member) - 1;
    RETURN ARRAY(SELECT p FROM generate_series(0, partitions - 1) p WHERE p % n = i);
END;
$$;

CREATE FUNCTION mq.fetch(
    topic_name    text,
    group_name    text,
    max_messages  integer DEFAULT 100,
    member        text DEFAULT NULL,
    wait          interval DEFAULT '0',
    auto_commit   boolean DEFAULT false)
RETURNS TABLE (partition integer, "offset" bigint, key text, payload jsonb,
               headers jsonb, message_id uuid, published_at timestamptz)
LANGUAGE C VOLATILE ROWS 100
AS 'MODULE_PATHNAME', 'mq_fetch';

CREATE FUNCTION mq.commit(
    topic_name   text,
    group_name   text,
    partition    integer,
    next_offset  bigint,
    member       text DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_commit';

CREATE FUNCTION mq.seek(
    topic_name   text,
    group_name   text,
    partition    integer DEFAULT NULL,
    to_offset    bigint DEFAULT NULL,
    to_time      timestamptz DEFAULT NULL,
    to_position  text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    g mq.consumer_group := mq._group(topic_name, group_name);
    t mq.topic;
BEGIN
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

--- exchanges

CREATE FUNCTION mq.create_exchange(exchange_name text, type text, alternate_exchange text DEFAULT NULL)
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
    PERFORM mq._check_name_free(exchange_name);
    IF alternate_exchange IS NOT NULL THEN
        SELECT x.exchange_id INTO alt FROM mq.exchange x WHERE x.exchange_name = alternate_exchange;
        IF alt IS NULL THEN
            RAISE EXCEPTION 'exchange "%" does not exist', alternate_exchange USING ERRCODE = 'undefined_object';
        END IF;
    END IF;
    INSERT INTO mq.exchange (exchange_id, exchange_name, type, alternate_exchange_id)
    VALUES (nextval('mq.exchange_id_seq'), exchange_name, type, alt);
    PERFORM mq._invalidate_queue_cache();
END;
$$;

CREATE FUNCTION mq.drop_exchange(exchange_name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    xid integer;
BEGIN
    DELETE FROM mq.exchange x WHERE x.exchange_name = drop_exchange.exchange_name
    RETURNING x.exchange_id INTO xid;
    IF xid IS NULL THEN
        RETURN false;
    END IF;
    DELETE FROM mq.binding b WHERE b.exchange_id = xid OR (b.dest_kind = 'x' AND b.dest_id = xid);
    UPDATE mq.exchange x SET alternate_exchange_id = NULL WHERE x.alternate_exchange_id = xid;
    PERFORM mq._invalidate_queue_cache();
    RETURN true;
END;
$$;

CREATE FUNCTION mq.list_exchanges()
RETURNS TABLE (exchange_name text, type text, alternate_exchange text, dropped bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT x.exchange_name, x.type, a.exchange_name, x.dropped
      FROM mq.exchange x LEFT JOIN mq.exchange a ON a.exchange_id = x.alternate_exchange_id
     ORDER BY 1
$$;

CREATE FUNCTION mq._exchange_id(exchange_name text)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    xid integer;
BEGIN
    SELECT x.exchange_id INTO xid FROM mq.exchange x WHERE x.exchange_name = _exchange_id.exchange_name;
    IF xid IS NULL THEN
        RAISE EXCEPTION 'exchange "%" does not exist', exchange_name
            USING ERRCODE = 'undefined_object', HINT = 'Create it with mq.create_exchange().';
    END IF;
    RETURN xid;
END;
$$;

CREATE FUNCTION mq.bind(exchange_name text, destination text, binding_key text DEFAULT '#',
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
    IF binding_key IS NULL THEN
        RAISE EXCEPTION 'binding_key must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO d FROM mq._kind_of(destination);
    IF d.kind IS NULL THEN
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

CREATE FUNCTION mq.unbind(exchange_name text, destination text, binding_key text DEFAULT '#')
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    d record;
BEGIN
    SELECT * INTO d FROM mq._kind_of(destination);
    DELETE FROM mq.binding b
     WHERE b.exchange_id = mq._exchange_id(exchange_name) AND b.dest_kind = d.kind
       AND b.dest_id = d.id AND b.binding_key = unbind.binding_key;
    RETURN FOUND;
END;
$$;

-- Does a topic-exchange pattern match a routing key?  Dot-separated words;
-- '*' matches exactly one word, '#' zero or more.
CREATE FUNCTION mq._topic_match(pattern text, key text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    p    text[] := string_to_array(pattern, '.');
    k    text[] := string_to_array(coalesce(key, ''), '.');
    np   integer := coalesce(array_length(p, 1), 0);
    nk   integer := coalesce(array_length(k, 1), 0);
    prev boolean[];
    cur  boolean[];
    i    integer;
    j    integer;
BEGIN
    -- prev[j+1]: the first i pattern words match the first j key words
    prev := array_fill(false, ARRAY[nk + 1]);
    prev[1] := true;
    FOR i IN 1 .. np LOOP
        cur := array_fill(false, ARRAY[nk + 1]);
        cur[1] := (p[i] = '#' AND prev[1]);
        FOR j IN 1 .. nk LOOP
            IF p[i] = '#' THEN
                cur[j + 1] := prev[j + 1] OR cur[j];
            ELSIF p[i] = '*' OR p[i] = k[j] THEN
                cur[j + 1] := prev[j];
            END IF;
        END LOOP;
        prev := cur;
    END LOOP;
    RETURN prev[nk + 1];
END;
$$;

-- Does a headers binding match?  x-match all (default) or any, over the
-- arguments not starting with "x-".
CREATE FUNCTION mq._headers_match(arguments jsonb, headers jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN coalesce(arguments->>'x-match', 'all') = 'any'
                THEN coalesce(bool_or(headers->a.key = a.value), false)
                ELSE coalesce(bool_and(coalesce(headers->a.key = a.value, false)), true) END
      FROM jsonb_each(coalesce(arguments, '{}')) a
     WHERE a.key NOT LIKE 'x-%'
$$;

-- Where a message sent to (kind, id) ends up: queues ('q') and topics ('t').
-- Exchanges route by type; each final destination appears once; a cycle of
-- exchanges ends where it closes.  With count_drops, an exchange that routes
-- nothing and has no alternate exchange counts the message as dropped.
CREATE FUNCTION mq._route_id(kind "char", id integer, key text, headers jsonb,
                             visited integer[], count_drops boolean)
RETURNS TABLE (dest_kind "char", dest_id integer)
LANGUAGE plpgsql VOLATILE
ROWS 2
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    x     mq.exchange;
    b     record;
    found_any boolean := false;
BEGIN
    IF kind <> 'x' THEN
        dest_kind := kind;
        dest_id := id;
        RETURN NEXT;
        RETURN;
    END IF;
    IF id = ANY (visited) THEN
        RETURN;
    END IF;
    SELECT * INTO x FROM mq.exchange e WHERE e.exchange_id = id;
    FOR b IN SELECT * FROM mq.binding bb WHERE bb.exchange_id = id LOOP
        IF (x.type = 'fanout')
           OR (x.type = 'direct' AND b.binding_key = coalesce(key, ''))
           OR (x.type = 'topic' AND mq._topic_match(b.binding_key, key))
           OR (x.type = 'headers' AND mq._headers_match(b.arguments, headers)) THEN
            FOR dest_kind, dest_id IN
                SELECT r.dest_kind, r.dest_id
                  FROM mq._route_id(b.dest_kind, b.dest_id, key, headers, visited || id, count_drops) r
            LOOP
                found_any := true;
                RETURN NEXT;
            END LOOP;
        END IF;
    END LOOP;
    IF NOT found_any THEN
        IF x.alternate_exchange_id IS NOT NULL THEN
            RETURN QUERY SELECT r.dest_kind, r.dest_id
              FROM mq._route_id('x', x.alternate_exchange_id, key, headers, visited || id, count_drops) r;
        ELSIF count_drops THEN
            UPDATE mq.exchange e SET dropped = e.dropped + 1 WHERE e.exchange_id = id;
        END IF;
    END IF;
END;
$$;

-- The distinct final destinations of a message sent to a named destination.
CREATE FUNCTION mq._route(destination text, key text, headers jsonb, count_drops boolean)
RETURNS TABLE (dest_kind "char", dest_id integer)
LANGUAGE sql VOLATILE
ROWS 2
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT DISTINCT r.dest_kind, r.dest_id
      FROM mq._kind_of(destination) d,
           mq._route_id(d.kind, d.id, key, headers, '{}', count_drops) r
$$;

--- the outbox

-- BEFORE INSERT on mq.outbox (C): the destination must exist, and writers
-- of one (destination, key) are serialized until commit, so that per-key
-- order (by seq) is commit order.
CREATE FUNCTION mq._outbox_check()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'mq_outbox_check';
CREATE TRIGGER outbox_check BEFORE INSERT ON mq.outbox
    FOR EACH ROW EXECUTE FUNCTION mq._outbox_check();

-- AFTER INSERT (statement): wake the relay when the transaction commits.
CREATE FUNCTION mq._outbox_trigger()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'mq_outbox_trigger';
CREATE TRIGGER outbox_wake AFTER INSERT ON mq.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION mq._outbox_trigger();

CREATE FUNCTION mq.publish(
    destination  text,
    payload      jsonb,
    key          text DEFAULT NULL,
    headers      jsonb DEFAULT NULL,
    mandatory    boolean DEFAULT false)
RETURNS uuid
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_publish';

-- Many messages to one destination in one multi-row insert: one outbox row
-- per payload (keys and headers, if given, one per payload; NULL elements
-- for none); the event ids come back in input order.
CREATE FUNCTION mq.publish_batch(
    destination  text,
    payloads     jsonb[],
    keys         text[] DEFAULT NULL,
    headers      jsonb[] DEFAULT NULL,
    mandatory    boolean DEFAULT false)
RETURNS SETOF uuid
LANGUAGE C VOLATILE ROWS 100
AS 'MODULE_PATHNAME', 'mq_publish_batch';

-- One relay pass: moves up to max_rows committed outbox rows, in seq order,
-- to their destinations, in this transaction.  Passes are serialized, so
-- offsets are assigned in the order records become visible.
CREATE FUNCTION mq._relay_sql(max_rows integer)
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
        SELECT o.* FROM mq.outbox o ORDER BY o.seq LIMIT max_rows),
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

-- One relay pass (C): batches that go to topics only are moved in C;
-- anything else is passed to mq._relay_sql.  Returns the rows moved.
CREATE FUNCTION mq.relay(max_rows integer DEFAULT 10000)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_relay';

CREATE VIEW mq.consumer_lag AS
SELECT t.topic_name, g.group_name, o.partition, o.committed_offset,
       p.next_offset AS end_offset,
       p.next_offset - o.committed_offset AS lag,
       o.committed_at AS last_commit_at
  FROM mq.consumer_group g
  JOIN mq.topic t ON t.topic_id = g.topic_id
  JOIN mq.group_offset o ON o.group_id = g.group_id
  JOIN mq.topic_partition p ON p.topic_id = g.topic_id AND p.partition = o.partition;

CREATE VIEW mq.topic_stats AS
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
                      ORDER BY r."offset" DESC LIMIT 1) l ON true;

--------------------------------------------------------------------------
-- Maintenance (run by the background worker every mq.naptime)
--------------------------------------------------------------------------

CREATE FUNCTION mq.maintain(max_rows integer DEFAULT 1000)
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

-- One pass of the background worker, in the calling session: counts the
-- deliveries of aborted transactions as attempts, writes pending counters,
-- then runs mq.maintain().  Returns the attempts counted.
CREATE FUNCTION mq.run_maintenance()
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_sql_worker_tick';

-- Start the background worker of this database when CREATE EXTENSION commits.
SELECT mq._launch_worker();
