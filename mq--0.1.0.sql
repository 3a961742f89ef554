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
CREATE TABLE mq.queue_message (
    msg_id       bigint NOT NULL,
    queue_id     integer NOT NULL,
    vt           timestamptz NOT NULL,      -- visible from (lease expiry)
    attempt      integer NOT NULL DEFAULT 0,
    enqueued_at  timestamptz NOT NULL,     -- first enqueue, kept across deaths
    payload      jsonb NOT NULL,
    headers      jsonb,
    exhausted    boolean NOT NULL DEFAULT false, -- used its last attempt
    last_error   text,
    deaths       jsonb,                     -- [{queue, reason, attempts, error, time}]
    origin_queue_id integer,                -- where a dead message died
    CONSTRAINT queue_message_pkey PRIMARY KEY (msg_id)
) WITH (fillfactor = 90,
        autovacuum_vacuum_scale_factor = 0,
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

    qid := nextval('mq.queue_id_seq');
    -- the dead-letter queue: created with its queue, has none itself
    SELECT q.queue_id INTO dlqid FROM mq.queue q WHERE q.queue_name = dlq;
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
-- Maintenance (run by the background worker every mq.naptime)
--------------------------------------------------------------------------

CREATE FUNCTION mq.maintain(max_rows integer DEFAULT 1000)
RETURNS TABLE (dead_lettered bigint, expired bigint, dedup_keys_removed bigint,
               inbox_keys_removed bigint)
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
