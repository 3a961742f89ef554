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
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE SEQUENCE mq.queue_id_seq AS integer OWNED BY mq.queue.queue_id;

-- All messages of all queues live in one table: one set of cached plans
-- serves every queue, and thousands of queues cost no catalog entries.
-- See doc/design.md.
CREATE SEQUENCE mq.msg_id_seq AS bigint;
CREATE TABLE mq.queue_message (
    msg_id       bigint NOT NULL,
    queue_id     integer NOT NULL,
    vt           timestamptz NOT NULL,      -- visible from (lease expiry)
    attempt      integer NOT NULL DEFAULT 0,
    enqueued_at  timestamptz NOT NULL,
    payload      jsonb NOT NULL,
    headers      jsonb,
    CONSTRAINT queue_message_pkey PRIMARY KEY (msg_id)
) WITH (fillfactor = 90,
        autovacuum_vacuum_scale_factor = 0,
        autovacuum_vacuum_threshold = 2000,
        autovacuum_vacuum_insert_scale_factor = 0,
        autovacuum_vacuum_insert_threshold = 20000,
        autovacuum_vacuum_cost_delay = 0,
        autovacuum_analyze_scale_factor = 0.05);
-- poll walks this index: ready rows of one queue, oldest visibility first
CREATE INDEX queue_message_ready_idx ON mq.queue_message (queue_id, vt, msg_id);

SELECT pg_catalog.pg_extension_config_dump('mq.queue', '');
SELECT pg_catalog.pg_extension_config_dump('mq.queue_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mq.queue_message', '');
SELECT pg_catalog.pg_extension_config_dump('mq.msg_id_seq', '');

-- What poll and pop return.
CREATE TYPE mq.message AS (
    msg_id       bigint,
    payload      jsonb,
    headers      jsonb,
    attempt      integer,
    enqueued_at  timestamptz,
    visible_at   timestamptz
);

--------------------------------------------------------------------------
-- Internal helpers (C)
--------------------------------------------------------------------------

-- Raises a clear error unless queue_name is a valid queue name.
CREATE FUNCTION mq._check_name(queue_name text)
RETURNS void
LANGUAGE C STRICT IMMUTABLE
AS 'MODULE_PATHNAME', 'mq_check_name';

-- Tells every backend to drop its cached copy of mq.queue at commit.
CREATE FUNCTION mq._invalidate_queue_cache()
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'mq_invalidate_queue_cache';

--------------------------------------------------------------------------
-- Queue administration
--------------------------------------------------------------------------

CREATE FUNCTION mq.create_queue(
    queue_name          text,
    visibility_timeout  interval DEFAULT '30 seconds',
    max_attempts        integer DEFAULT 5,
    if_not_exists       boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF queue_name IS NULL THEN
        RAISE EXCEPTION 'queue_name must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM mq._check_name(queue_name);
    IF visibility_timeout IS NULL OR visibility_timeout < interval '0' THEN
        RAISE EXCEPTION 'visibility_timeout must be zero or positive, got %',
            coalesce(visibility_timeout::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_attempts IS NULL OR max_attempts < 1 THEN
        RAISE EXCEPTION 'max_attempts must be at least 1, got %',
            coalesce(max_attempts::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    INSERT INTO mq.queue (queue_id, queue_name, visibility_timeout, max_attempts)
    VALUES (nextval('mq.queue_id_seq'), create_queue.queue_name,
            create_queue.visibility_timeout, create_queue.max_attempts)
    ON CONFLICT ON CONSTRAINT queue_queue_name_key DO NOTHING;
    IF NOT FOUND THEN
        IF if_not_exists THEN
            RAISE NOTICE 'queue "%" already exists, skipping', queue_name;
            RETURN;
        END IF;
        RAISE EXCEPTION 'queue "%" already exists', queue_name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use if_not_exists => true to ignore an existing queue.';
    END IF;
    PERFORM mq._invalidate_queue_cache();
END;
$$;

CREATE FUNCTION mq.drop_queue(queue_name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    qid integer;
BEGIN
    DELETE FROM mq.queue q WHERE q.queue_name = drop_queue.queue_name
    RETURNING q.queue_id INTO qid;
    IF qid IS NULL THEN
        RETURN false;
    END IF;
    DELETE FROM mq.queue_message m WHERE m.queue_id = qid;
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
DECLARE
    n bigint;
BEGIN
    DELETE FROM mq.queue_message m WHERE m.queue_id = mq._queue_id(queue_name);
    GET DIAGNOSTICS n = ROW_COUNT;
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
                              'max_attempts', q.max_attempts)
    FROM mq.queue q
    ORDER BY q.queue_name
$$;

--------------------------------------------------------------------------
-- Producing and consuming (C, hot paths)
--------------------------------------------------------------------------

CREATE FUNCTION mq.send(
    queue_name  text,
    payload     jsonb,
    headers     jsonb DEFAULT NULL,
    delay       interval DEFAULT '0')
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_send';

CREATE FUNCTION mq.send_batch(
    queue_name  text,
    payloads    jsonb[],
    headers     jsonb[] DEFAULT NULL,
    delay       interval DEFAULT '0')
RETURNS SETOF bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mq_send_batch';

CREATE FUNCTION mq.poll(
    queue_name          text,
    max_messages        integer DEFAULT 1,
    visibility_timeout  interval DEFAULT NULL)
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

CREATE VIEW mq.queue_stats AS
SELECT q.queue_name,
       coalesce(s.ready, 0)     AS ready,
       coalesce(s.in_flight, 0) AS in_flight,
       coalesce(s.delayed, 0)   AS delayed,
       coalesce(s.ready, 0) + coalesce(s.in_flight, 0) + coalesce(s.delayed, 0) AS total,
       pg_catalog.clock_timestamp() - s.oldest_ready AS oldest_ready_age,
       s.oldest_enqueued_at
FROM mq.queue q
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE m.vt <= pg_catalog.clock_timestamp()) AS ready,
           count(*) FILTER (WHERE m.vt > pg_catalog.clock_timestamp() AND m.attempt > 0) AS in_flight,
           count(*) FILTER (WHERE m.vt > pg_catalog.clock_timestamp() AND m.attempt = 0) AS delayed,
           min(m.enqueued_at) FILTER (WHERE m.vt <= pg_catalog.clock_timestamp()) AS oldest_ready,
           min(m.enqueued_at) AS oldest_enqueued_at
    FROM mq.queue_message m
    WHERE m.queue_id = q.queue_id
) s ON true;
