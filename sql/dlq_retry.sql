--
-- dlq_retry: nack (retry / dead), reject, retry backoff, dead-lettering of
-- lapsed last attempts and expired messages, the deaths history, redrive,
-- alter_queue, and the error cases of all of these.
--
-- The background worker of this database runs mq.maintain() every
-- mq.naptime, concurrently with this script: every check below holds
-- whether the worker or the explicit mq.run_maintenance() got there first.
-- Output is deterministic: ids and times are only ever compared.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
-- err(sql): runs sql, returns 'ok' or 'SQLSTATE: message'
CREATE FUNCTION pg_temp.err(cmd text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE cmd;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- where(id): the queue a message is in, or 'gone'
CREATE FUNCTION pg_temp.loc(id bigint) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce((SELECT q.queue_name FROM mq.queue_message m
                     JOIN mq.queue q USING (queue_id) WHERE m.msg_id = id), 'gone')
$$;
-- the dead-letter record of a message, without ids and times
CREATE FUNCTION pg_temp.dead(id bigint)
RETURNS TABLE (in_queue text, payload jsonb, headers jsonb, attempt integer,
               last_error text, n_deaths integer, deaths jsonb)
LANGUAGE sql AS $$
    SELECT q.queue_name, m.payload, m.headers, m.attempt, m.last_error,
           jsonb_array_length(m.deaths),
           (SELECT jsonb_agg(d - 'time' ORDER BY o) FROM jsonb_array_elements(m.deaths)
                   WITH ORDINALITY AS x(d, o))
    FROM mq.queue_message m JOIN mq.queue q USING (queue_id)
    WHERE m.msg_id = id
$$;
-- nack without a delay n times (the attempt does not move) and check every
-- resulting delay against [lo * expected, hi * expected].  The delay of a
-- nack lies in [vt - t1, vt - t0] where t0/t1 are read around the call.
-- spread: (max - min) / expected over the samples.
CREATE FUNCTION pg_temp.backoff(q text, id bigint, expected interval, n integer,
                                lo float8, hi float8)
RETURNS TABLE (all_retry boolean, within_bounds boolean, spread numeric,
               some_low boolean, some_high boolean)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    t1 timestamptz;
    v timestamptz;
    r text;
    e float8 := extract(epoch FROM expected);
    mn float8 := 'Infinity';
    mx float8 := '-Infinity';
BEGIN
    all_retry := true;
    within_bounds := true;
    FOR i IN 1..n LOOP
        t0 := clock_timestamp();
        r := mq.nack(q, id);
        t1 := clock_timestamp();
        SELECT m.vt INTO v FROM mq.queue_message m WHERE m.msg_id = id;
        all_retry := all_retry AND r IS NOT DISTINCT FROM 'retry';
        within_bounds := within_bounds
            AND extract(epoch FROM v - t0) >= lo * e
            AND extract(epoch FROM v - t1) <= hi * e;
        mn := least(mn, extract(epoch FROM v - t0));
        mx := greatest(mx, extract(epoch FROM v - t1));
    END LOOP;
    spread := round(((mx - mn) / e)::numeric, 1);
    some_low := mn < 0.97 * e;
    some_high := mx > 1.03 * e;
    RETURN NEXT;
END $$;

--
-- a queue comes with its dead-letter queue <name>_dlq
--
SELECT mq.create_queue('dr_q', max_attempts => 3, retry_delay => '10 seconds',
                       retry_delay_max => '25 seconds');
SELECT queue_name, settings->>'dead_letter_queue' AS dlq,
       settings->>'max_attempts' AS max_attempts,
       settings->>'retry_delay' AS retry_delay,
       settings->>'retry_delay_max' AS retry_delay_max,
       settings->>'message_ttl' AS message_ttl
FROM mq.list_queues() WHERE queue_name LIKE 'dr\_q%' ORDER BY 1;
SELECT queue_name, dead_letter_queue, total FROM mq.queue_stats
WHERE queue_name LIKE 'dr\_q%' ORDER BY 1;
-- the DLQ has no DLQ of its own
SELECT dead_letter_queue IS NULL AS dlq_has_none FROM mq.queue_stats WHERE queue_name = 'dr_q_dlq';

--
-- nack: retry, visible again after the delay, until the last attempt
--
SELECT mq.send('dr_q', '{"job": "poison"}', '{"trace": "t1"}') AS p_id \gset
SELECT enqueued_at AS p_enq FROM mq.queue_message WHERE msg_id = :p_id \gset
SELECT msg_id = :p_id AS is_p, attempt FROM mq.poll('dr_q');
SELECT mq.nack('dr_q', :p_id, delay => '0', error => 'boom 1') AS nack1;
-- visible again at once, attempt 2, with the error of the last nack
SELECT msg_id = :p_id AS is_p, attempt, last_error, deaths FROM mq.poll('dr_q');
-- a nack with a delay: not visible before it
SELECT mq.nack('dr_q', :p_id, delay => '1 hour', error => 'boom 2') AS nack2;
SELECT vt > clock_timestamp() + interval '59 minutes'
       AND vt <= clock_timestamp() + interval '1 hour' AS vt_in_1h
FROM mq.queue_message WHERE msg_id = :p_id;
SELECT count(*) AS polled FROM mq.poll('dr_q');
SELECT ready, in_flight, delayed, total FROM mq.queue_stats WHERE queue_name = 'dr_q';
SELECT mq.extend('dr_q', :p_id, '0') IS NOT NULL AS released;
SELECT msg_id = :p_id AS is_p, attempt, last_error FROM mq.poll('dr_q');
-- attempt 3 of 3: nack dead-letters it
SELECT mq.nack('dr_q', :p_id, delay => '0', error => 'boom 3') AS nack3;
SELECT pg_temp.loc(:p_id) AS now_in;
SELECT * FROM pg_temp.dead(:p_id);
-- first enqueue time kept; the death's time is the time of the nack
SELECT enqueued_at = :'p_enq' AS enqueued_at_kept,
       (deaths->0->>'time')::timestamptz BETWEEN :'p_enq' AND clock_timestamp() AS death_time_ok,
       origin_queue_id = (SELECT queue_id FROM mq.queue WHERE queue_name = 'dr_q') AS origin_ok
FROM mq.queue_message WHERE msg_id = :p_id;
-- never delivered from dr_q again
SELECT count(*) AS polled FROM mq.poll('dr_q');
-- nack of a message that is not there (any more): NULL
SELECT mq.nack('dr_q', :p_id) IS NULL AS nack_gone;
SELECT mq.nack('dr_q', -1) IS NULL AS nack_unknown;

--
-- the DLQ is an ordinary queue: poll shows deaths, ack removes
--
SELECT ready, in_flight, delayed, total FROM mq.queue_stats WHERE queue_name = 'dr_q_dlq';
SELECT msg_id = :p_id AS is_p, payload, headers, attempt, last_error,
       deaths->0->>'reason' AS reason, enqueued_at = :'p_enq' AS enqueued_at_kept
FROM mq.poll('dr_q_dlq');
SELECT mq.ack('dr_q_dlq', :p_id) AS acked;
SELECT total FROM mq.queue_stats WHERE queue_name = 'dr_q_dlq';

--
-- reject: dead-letter now, reason 'rejected'
--
SELECT mq.send('dr_q', '{"job": "bad"}') AS r_id \gset
SELECT mq.reject('dr_q', :r_id, 'unparseable') AS rejected;
SELECT * FROM pg_temp.dead(:r_id);
-- a polled message: the death records the attempts made
SELECT mq.send('dr_q', '{"job": "bad2"}') AS r2_id \gset
SELECT attempt FROM mq.poll('dr_q');
SELECT mq.reject('dr_q', :r2_id) AS rejected;
SELECT * FROM pg_temp.dead(:r2_id);
-- not there (any more): false
SELECT mq.reject('dr_q', :r_id, 'again') AS reject_gone;
SELECT mq.reject('dr_q', -1, 'x') AS reject_unknown;
SELECT mq.ack('dr_q_dlq', ARRAY[:r_id, :r2_id]) AS acked;

--
-- backoff: nack without a delay waits retry_delay * 2^(attempt-1), +-10 %,
-- capped at retry_delay_max (here 10 s, 20 s, then 25 s instead of 40 s)
--
SELECT mq.create_queue('dr_backoff', max_attempts => 10, retry_delay => '10 seconds',
                       retry_delay_max => '25 seconds');
SELECT mq.send('dr_backoff', '{"job": "slow"}') AS b_id \gset
SELECT attempt FROM mq.poll('dr_backoff');
SELECT * FROM pg_temp.backoff('dr_backoff', :b_id, '10 seconds', 200, 0.9, 1.1);
SELECT count(*) AS polled FROM mq.poll('dr_backoff');
SELECT mq.extend('dr_backoff', :b_id, '0') IS NOT NULL AS released;
SELECT attempt FROM mq.poll('dr_backoff');
SELECT * FROM pg_temp.backoff('dr_backoff', :b_id, '20 seconds', 200, 0.9, 1.1);
SELECT mq.extend('dr_backoff', :b_id, '0') IS NOT NULL AS released;
SELECT attempt FROM mq.poll('dr_backoff');
-- capped: never more than retry_delay_max
SELECT all_retry, within_bounds
FROM pg_temp.backoff('dr_backoff', :b_id, '25 seconds', 50, 0.9, 1.0);
-- a never-polled message (attempt 0) waits retry_delay too
SELECT mq.send('dr_backoff', '{"job": "fresh"}') AS b0_id \gset
SELECT all_retry, within_bounds
FROM pg_temp.backoff('dr_backoff', :b0_id, '10 seconds', 50, 0.9, 1.1);
-- an explicit delay overrides the backoff
SELECT mq.nack('dr_backoff', :b_id, delay => '2 seconds') AS nack;
SELECT vt > clock_timestamp() + interval '1.9 seconds'
       AND vt <= clock_timestamp() + interval '2 seconds' AS vt_in_2s
FROM mq.queue_message WHERE msg_id = :b_id;
SELECT mq.drop_queue('dr_backoff');

--
-- a lapsed lease of the last attempt: never delivered again; the worker
-- (or run_maintenance) dead-letters it with reason max_attempts
--
SELECT mq.create_queue('dr_lapse', max_attempts => 2);
SELECT mq.send('dr_lapse', '{"job": "hang"}') AS l_id \gset
SELECT attempt FROM mq.poll('dr_lapse', 1, '0.2 seconds');
SELECT pg_sleep(0.3);
SELECT attempt FROM mq.poll('dr_lapse', 1, '0.2 seconds');
SELECT pg_sleep(0.3);
SELECT count(*) AS polled FROM mq.poll('dr_lapse', 1, '0.2 seconds');
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT pg_temp.loc(:l_id) AS now_in;
SELECT * FROM pg_temp.dead(:l_id);
SELECT count(*) AS polled FROM mq.poll('dr_lapse');
-- a lapsed lease of an earlier attempt is simply delivered again
SELECT mq.send('dr_lapse', '{"job": "retry"}') AS l2_id \gset
SELECT attempt FROM mq.poll('dr_lapse', 1, '0.2 seconds');
SELECT pg_sleep(0.3);
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT pg_temp.loc(:l2_id) AS still_in;
SELECT msg_id = :l2_id AS is_l2, attempt FROM mq.poll('dr_lapse');
SELECT mq.drop_queue('dr_lapse');

--
-- message_ttl: past it, never delivered; dead-lettered with reason expired
--
SELECT mq.create_queue('dr_ttl', message_ttl => '1 second');
SELECT settings->>'message_ttl' AS message_ttl FROM mq.list_queues() WHERE queue_name = 'dr_ttl';
SELECT mq.send('dr_ttl', '{"job": "stale"}', '{"h": 1}') AS t_id \gset
SELECT pg_sleep(1.1);
SELECT mq.send('dr_ttl', '{"job": "fresh"}') AS t2_id \gset
SELECT payload FROM mq.poll('dr_ttl', 10);
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT pg_temp.loc(:t_id) AS stale_in, pg_temp.loc(:t2_id) AS fresh_in;
SELECT * FROM pg_temp.dead(:t_id);
SELECT mq.drop_queue('dr_ttl');
SELECT pg_temp.loc(:t_id) AS stale_in_after_drop;

--
-- deaths history: dead, redriven, dead again -> two entries, in order
--
SELECT mq.send('dr_q', '{"job": "twice"}', '{"k": "v"}') AS h_id \gset
SELECT enqueued_at AS h_enq FROM mq.queue_message WHERE msg_id = :h_id \gset
SELECT attempt FROM mq.poll('dr_q');
SELECT mq.reject('dr_q', :h_id, 'first death') AS rejected;
SELECT mq.redrive('dr_q') AS redriven;
-- back with attempts reset; the history travels with it
SELECT pg_temp.loc(:h_id) AS now_in;
SELECT msg_id = :h_id AS is_h, attempt, last_error, jsonb_array_length(deaths) AS n_deaths
FROM mq.poll('dr_q');
SELECT mq.nack('dr_q', :h_id, '0', 'e2') AS n1;
SELECT attempt FROM mq.poll('dr_q');
SELECT mq.nack('dr_q', :h_id, '0', 'e3') AS n2;
SELECT attempt FROM mq.poll('dr_q');
SELECT mq.nack('dr_q', :h_id, '0', 'second death') AS n3;
SELECT * FROM pg_temp.dead(:h_id);
SELECT enqueued_at = :'h_enq' AS enqueued_at_kept,
       (deaths->0->>'time')::timestamptz < (deaths->1->>'time')::timestamptz AS times_ordered
FROM mq.queue_message WHERE msg_id = :h_id;
SELECT mq.ack('dr_q_dlq', :h_id) AS acked;

--
-- redrive: count, oldest first, attempts reset, only this queue's dead
--
SELECT mq.send('dr_q', '{"r": "a"}') AS ra \gset
SELECT mq.send('dr_q', '{"r": "b"}') AS rb \gset
SELECT mq.send('dr_q', '{"r": "c"}') AS rc \gset
SELECT count(*) AS polled FROM mq.poll('dr_q', 10);
SELECT mq.reject('dr_q', :ra) AND mq.reject('dr_q', :rb) AND mq.reject('dr_q', :rc) AS rejected;
-- a message of another queue dead-lettered into the same DLQ
SELECT mq.create_queue('dr_other');
SELECT mq.alter_queue('dr_other', dead_letter_queue => 'dr_q_dlq');
SELECT dead_letter_queue FROM mq.queue_stats WHERE queue_name = 'dr_other';
SELECT mq.send('dr_other', '{"r": "other"}') AS ro \gset
SELECT mq.reject('dr_other', :ro) AS rejected;
SELECT total FROM mq.queue_stats WHERE queue_name = 'dr_q_dlq';
SELECT mq.redrive('dr_q', 2) AS redriven;
SELECT pg_temp.loc(:ra) AS a, pg_temp.loc(:rb) AS b, pg_temp.loc(:rc) AS c, pg_temp.loc(:ro) AS o;
SELECT payload, attempt FROM mq.poll('dr_q', 10) ORDER BY payload->>'r';
SELECT mq.redrive('dr_q') AS redriven;
SELECT mq.redrive('dr_q') AS redriven_none;
SELECT pg_temp.loc(:rc) AS c, pg_temp.loc(:ro) AS o;
SELECT mq.redrive('dr_other') AS redriven_other;
SELECT pg_temp.loc(:ro) AS o;
SELECT payload, attempt, deaths->0->>'queue' AS died_in FROM mq.poll('dr_other');
SELECT mq.ack('dr_q', ARRAY[:ra, :rb, :rc]) AS acked;
-- dr_q_dlq is dr_other's dead-letter queue too: it cannot be dropped alone
SELECT pg_temp.err($$SELECT mq.drop_queue('dr_q_dlq')$$) AS drop_dlq;

--
-- alter_queue
--
SELECT mq.create_queue('dr_alt', max_attempts => 5);
-- lower max_attempts: the next nack of attempt 1 is the last
SELECT mq.send('dr_alt', '{"a": 1}') AS a1 \gset
SELECT attempt FROM mq.poll('dr_alt');
SELECT mq.nack('dr_alt', :a1, '0') AS nack_at_5;
SELECT attempt FROM mq.poll('dr_alt');
SELECT mq.alter_queue('dr_alt', max_attempts => 2);
SELECT mq.nack('dr_alt', :a1, '0') AS nack_at_2;
SELECT pg_temp.loc(:a1) AS now_in;
-- raise max_attempts: a leased last attempt gets more attempts
SELECT mq.send('dr_alt', '{"a": 2}') AS a2 \gset
SELECT attempt FROM mq.poll('dr_alt', 1, '0.2 seconds');
SELECT mq.extend('dr_alt', :a2, '0') IS NOT NULL AS released;
SELECT attempt FROM mq.poll('dr_alt', 1, '0.2 seconds');
SELECT mq.alter_queue('dr_alt', max_attempts => 4);
SELECT pg_sleep(0.3);
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT pg_temp.loc(:a2) AS still_in;
SELECT attempt FROM mq.poll('dr_alt');
-- retry_delay / retry_delay_max change the backoff
SELECT mq.alter_queue('dr_alt', retry_delay => '1 hour', retry_delay_max => '1 day');
SELECT all_retry, within_bounds
FROM pg_temp.backoff('dr_alt', :a2, '4 hours', 20, 0.9, 1.1);
-- message_ttl set, then cleared before it bites
SELECT mq.send('dr_alt', '{"a": 3}') AS a3 \gset
SELECT mq.alter_queue('dr_alt', message_ttl => '1 second');
SELECT settings->>'message_ttl' AS ttl FROM mq.list_queues() WHERE queue_name = 'dr_alt';
SELECT mq.alter_queue('dr_alt', clear_message_ttl => true);
SELECT settings->>'message_ttl' AS ttl FROM mq.list_queues() WHERE queue_name = 'dr_alt';
SELECT pg_sleep(1.1);
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT pg_temp.loc(:a3) AS still_in;
SELECT payload FROM mq.poll('dr_alt');
-- message_ttl set on a queue holding an old message: expires it
SELECT mq.send('dr_alt', '{"a": 4}') AS a4 \gset
SELECT pg_sleep(1.1);
SELECT mq.alter_queue('dr_alt', message_ttl => '1 second');
SELECT count(*) AS polled FROM mq.poll('dr_alt');
SELECT mq.run_maintenance() >= 0 AS ran;
SELECT in_queue, n_deaths, deaths FROM pg_temp.dead(:a4);
SELECT mq.alter_queue('dr_alt', clear_message_ttl => true);
-- another dead-letter queue
SELECT mq.create_queue('dr_sink');
SELECT mq.alter_queue('dr_alt', dead_letter_queue => 'dr_sink');
SELECT dead_letter_queue FROM mq.queue_stats WHERE queue_name = 'dr_alt';
SELECT mq.reject('dr_alt', :a2, 'to the sink') AS rejected;
SELECT pg_temp.loc(:a2) AS now_in;
SELECT mq.redrive('dr_alt') AS redriven;
SELECT pg_temp.loc(:a2) AS now_in;
-- settings not named are kept
SELECT settings - 'dead_letter_queue' AS settings FROM mq.list_queues() WHERE queue_name = 'dr_alt';

--
-- counters
--
SELECT queue_name, total_sent, total_acked, total_dead
FROM mq.queue_stats WHERE queue_name IN ('dr_q', 'dr_q_dlq', 'dr_other') ORDER BY 1;

--
-- errors
--
-- unknown queue: 42704
SELECT pg_temp.err($$SELECT mq.nack('dr_nope', 1)$$) AS nack;
SELECT pg_temp.err($$SELECT mq.reject('dr_nope', 1, 'x')$$) AS reject;
SELECT pg_temp.err($$SELECT mq.redrive('dr_nope')$$) AS redrive;
SELECT pg_temp.err($$SELECT mq.alter_queue('dr_nope', max_attempts => 2)$$) AS alter_queue;
SELECT pg_temp.err($$SELECT mq.alter_queue('dr_q', dead_letter_queue => 'dr_nope')$$) AS alter_dlq;
-- NULL arguments: 22004
SELECT pg_temp.err($$SELECT mq.nack('dr_q', NULL)$$) AS nack_null;
SELECT pg_temp.err($$SELECT mq.reject('dr_q', NULL, 'x')$$) AS reject_null;
SELECT pg_temp.err($$SELECT mq.nack(NULL, 1)$$) AS nack_null_queue;
-- bad arguments: 22023
SELECT pg_temp.err($$SELECT mq.nack('dr_q', 1, delay => '-1 second')$$) AS nack_negative;
SELECT pg_temp.err($$SELECT mq.redrive('dr_q', 0)$$) AS redrive_zero;
-- a queue without a dead-letter queue (a DLQ): 55000
SELECT mq.send('dr_q_dlq', '{"in": "dlq"}') AS d_id \gset
SELECT pg_temp.err(format('SELECT mq.reject(%L, %s, %L)', 'dr_q_dlq', :d_id, 'x')) AS reject_no_dlq;
SELECT pg_temp.err($$SELECT mq.redrive('dr_q_dlq')$$) AS redrive_no_dlq;
SELECT pg_temp.loc(:d_id) AS still_in;
-- invalid policies: 22023 (22004 for NULL)
SELECT pg_temp.err($$SELECT mq.create_queue('dr_bad', max_attempts => 0)$$) AS max_attempts_0;
SELECT pg_temp.err($$SELECT mq.create_queue('dr_bad', retry_delay => '-1 second')$$) AS retry_delay_neg;
SELECT pg_temp.err($$SELECT mq.create_queue('dr_bad', retry_delay_max => '-1 second')$$) AS retry_delay_max_neg;
SELECT pg_temp.err($$SELECT mq.create_queue('dr_bad', retry_delay => '1 hour', retry_delay_max => '1 minute')$$) AS max_below_delay;
SELECT pg_temp.err($$SELECT mq.create_queue('dr_bad', message_ttl => '0')$$) AS ttl_zero;
SELECT pg_temp.err($$SELECT mq.create_queue('dr_bad', message_ttl => '-1 minute')$$) AS ttl_neg;
SELECT pg_temp.err($$SELECT mq.create_queue('dr_bad', dedup_window => '-1 second')$$) AS window_neg;
SELECT pg_temp.err($$SELECT mq.create_queue('dr_bad', dedup_window => '31 days')$$) AS window_big;
SELECT pg_temp.err($$SELECT mq.create_queue('dr_bad', retry_delay => NULL)$$) AS retry_delay_null;
SELECT pg_temp.err($$SELECT mq.create_queue('dr_bad', dead_letter_queue => 'dr_bad')$$) AS own_dlq;
SELECT pg_temp.err($$SELECT mq.create_queue('dr_bad', dead_letter_queue => 'bad name')$$) AS dlq_name;
SELECT pg_temp.err($$SELECT mq.alter_queue('dr_q', max_attempts => 0)$$) AS alter_max_attempts;
SELECT pg_temp.err($$SELECT mq.alter_queue('dr_q', retry_delay => '1 hour')$$) AS alter_above_max;
SELECT pg_temp.err($$SELECT mq.alter_queue('dr_q', message_ttl => '0')$$) AS alter_ttl;
SELECT pg_temp.err($$SELECT mq.alter_queue('dr_q', dedup_window => '-1 second')$$) AS alter_window;
SELECT pg_temp.err($$SELECT mq.alter_queue('dr_q', dead_letter_queue => 'dr_q')$$) AS alter_own_dlq;
-- nothing was created or changed
SELECT count(*) AS bad_queues FROM mq.list_queues() WHERE queue_name LIKE 'dr\_bad%';
SELECT settings - 'dead_letter_queue' AS settings, settings->>'dead_letter_queue' AS dlq
FROM mq.list_queues() WHERE queue_name = 'dr_q';

--
-- clean up
--
SELECT mq.drop_queue('dr_alt');
SELECT mq.drop_queue('dr_sink');
SELECT mq.drop_queue('dr_other');
SELECT mq.drop_queue('dr_q');
-- the DLQs made for dr_alt and dr_other before they were re-pointed
-- (whether drop_queue takes them along is not specified here)
SELECT count(mq.drop_queue(queue_name)) >= 0 AS dropped
FROM mq.list_queues() WHERE queue_name LIKE 'dr\_%';
SELECT count(*) AS left_over FROM mq.list_queues() WHERE queue_name LIKE 'dr\_%';
