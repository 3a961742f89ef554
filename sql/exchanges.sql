--
-- exchanges: direct, fanout, topic and headers routing; exchange to
-- exchange (with cycles); alternate exchanges; the dropped count;
-- mandatory publishing; unbind and drop.
--
-- The worker is switched off so that mq.relay() does every relay (see
-- outbox_topics).  Errors are shown as their SQLSTATE only.
--
\set VERBOSITY sqlstate
\set SHOW_CONTEXT never
ALTER SYSTEM SET mq.worker_enabled = off;
SELECT pg_reload_conf();
DO $$
BEGIN
    FOR i IN 1..200 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity
                              WHERE backend_type = 'mq worker' AND datname = current_database());
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT count(*) AS mq_workers FROM pg_stat_activity
WHERE backend_type = 'mq worker' AND datname = current_database();
SELECT mq.relay() >= 0 AS relayed_leftovers;

-- ex_pub(exchange, key, headers): publish {"k": key}
CREATE FUNCTION ex_pub(dest text, k text, h jsonb DEFAULT NULL) RETURNS boolean
LANGUAGE sql AS $$ SELECT mq.publish(dest, jsonb_build_object('k', k), key => k, headers => h) IS NOT NULL $$;
-- ex_got(queues...): what each queue holds (read and deleted), as the
-- message keys in C order ("-" for no key), and how many carry an event id
CREATE FUNCTION ex_got(VARIADIC qs text[]) RETURNS TABLE (queue text, n bigint, keys text, with_event_id bigint)
LANGUAGE sql AS $$
    SELECT q, count(m.msg_id),
           string_agg(coalesce(m.payload->>'k', '-'), ' ' ORDER BY m.payload->>'k' COLLATE "C")
               FILTER (WHERE m.msg_id IS NOT NULL),
           count(m.headers->>'mq_event_id')
    FROM unnest(qs) q LEFT JOIN LATERAL mq.pop(q, 100) m ON true
    GROUP BY q ORDER BY q COLLATE "C"
$$;
-- ex_mandatory(dest, key, headers): 'published', or 'unroutable' when the
-- mandatory publish raised an error that says so (else the error itself)
CREATE FUNCTION ex_mandatory(dest text, k text, h jsonb DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mq.publish(dest, jsonb_build_object('k', k), key => k, headers => h, mandatory => true);
    RETURN 'published';
EXCEPTION WHEN OTHERS THEN
    IF SQLERRM ILIKE '%unroutable%' THEN
        RETURN 'unroutable';
    END IF;
    RETURN 'other error: ' || SQLSTATE || ' ' || SQLERRM;
END $$;
-- the same, but the error is raised in the caller's transaction (with a
-- fixed message, so the output does not depend on mq's wording)
CREATE FUNCTION ex_mandatory_raise(dest text, k text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    res text := ex_mandatory(dest, k);
BEGIN
    IF res = 'unroutable' THEN
        RAISE EXCEPTION 'unroutable' USING ERRCODE = 'P0002';
    END IF;
    RETURN res;
END $$;

SELECT mq.create_exchange('ex_direct', 'direct');
SELECT mq.create_exchange('ex_fanout', 'fanout');
SELECT mq.create_exchange('ex_topic', 'topic');
SELECT mq.create_exchange('ex_headers', 'headers');
SELECT exchange_name, type, alternate_exchange, dropped
FROM mq.list_exchanges() WHERE exchange_name LIKE 'ex\_%' ORDER BY exchange_name;

--
-- direct: the key equals the binding key; a queue bound twice gets one
-- copy; keys are case-sensitive; no match is dropped
--
SELECT mq.create_queue(q) FROM unnest(ARRAY['ex_qa', 'ex_qb', 'ex_qab']) q;
SELECT mq.bind('ex_direct', 'ex_qa', 'a');
SELECT mq.bind('ex_direct', 'ex_qb', 'b');
SELECT mq.bind('ex_direct', 'ex_qab', 'a');
SELECT mq.bind('ex_direct', 'ex_qab', 'b');
SELECT ex_pub('ex_direct', k) FROM unnest(ARRAY['a', 'b', 'c', 'A']) k;
SELECT ex_pub('ex_direct', NULL);
SELECT dropped AS dropped_before_relay FROM mq.list_exchanges() WHERE exchange_name = 'ex_direct';
SELECT mq.relay() AS relayed;
SELECT * FROM ex_got('ex_qa', 'ex_qb', 'ex_qab');
SELECT dropped FROM mq.list_exchanges() WHERE exchange_name = 'ex_direct';

--
-- fanout: every binding, whatever the key; one copy per queue
--
SELECT mq.create_queue(q) FROM unnest(ARRAY['ex_qf1', 'ex_qf2']) q;
SELECT mq.bind('ex_fanout', 'ex_qf1');
SELECT mq.bind('ex_fanout', 'ex_qf1', 'x');
SELECT mq.bind('ex_fanout', 'ex_qf2', 'y');
SELECT ex_pub('ex_fanout', 'k1'), ex_pub('ex_fanout', NULL);
SELECT mq.relay() AS relayed;
SELECT * FROM ex_got('ex_qf1', 'ex_qf2');

--
-- topic: dot-separated words, "*" exactly one word, "#" zero or more
--
SELECT mq.create_queue(q) FROM unnest(ARRAY['ex_t1', 'ex_t2', 'ex_t3', 'ex_t4', 'ex_t5', 'ex_t6', 'ex_t7', 'ex_t8']) q;
SELECT mq.bind('ex_topic', 'ex_t1', 'a.*.c');
SELECT mq.bind('ex_topic', 'ex_t2', '#');
SELECT mq.bind('ex_topic', 'ex_t3', 'a.#');
SELECT mq.bind('ex_topic', 'ex_t4', '#.c');
SELECT mq.bind('ex_topic', 'ex_t5', '*');
SELECT mq.bind('ex_topic', 'ex_t6', 'a.b.c');
SELECT mq.bind('ex_topic', 'ex_t7', 'a.#.c');
-- two patterns that overlap: still one copy
SELECT mq.bind('ex_topic', 'ex_t8', 'a.#');
SELECT mq.bind('ex_topic', 'ex_t8', '#.c');
SELECT count(*) FILTER (WHERE ex_pub('ex_topic', k)) AS published
FROM unnest(ARRAY['a.b.c', 'a.c', 'a', 'a.b.b.c', 'x.y.c', 'c', 'ab.x.c', 'a.x.c.d']) k;
SELECT mq.relay() AS relayed;
-- expected: t1 a.b.c | t2 all 8 | t3 a a.b.b.c a.b.c a.c a.x.c.d |
-- t4 a.b.b.c a.b.c a.c ab.x.c c x.y.c | t5 a c | t6 a.b.c |
-- t7 a.b.b.c a.b.c a.c | t8 all 8
SELECT * FROM ex_got('ex_t1', 'ex_t2', 'ex_t3', 'ex_t4', 'ex_t5', 'ex_t6', 'ex_t7', 'ex_t8');
SELECT dropped FROM mq.list_exchanges() WHERE exchange_name = 'ex_topic';

--
-- headers: x-match all / any against the message headers; the key does
-- not matter
--
SELECT mq.create_queue(q) FROM unnest(ARRAY['ex_h_all', 'ex_h_any']) q;
SELECT mq.bind('ex_headers', 'ex_h_all', arguments => jsonb_build_object('x-match', 'all', 'format', 'pdf', 'type', 'report'));
SELECT mq.bind('ex_headers', 'ex_h_any', arguments => jsonb_build_object('x-match', 'any', 'format', 'pdf', 'type', 'report'));
SELECT ex_pub('ex_headers', 'm1', '{"format": "pdf", "type": "report"}'),
       ex_pub('ex_headers', 'm2', '{"format": "pdf", "type": "log"}'),
       ex_pub('ex_headers', 'm3', '{"format": "zip"}'),
       ex_pub('ex_headers', 'm4', '{"type": "report", "format": "pdf", "extra": "1"}'),
       ex_pub('ex_headers', 'm5', NULL),
       ex_pub('ex_headers', 'm6', '{"type": "report"}');
SELECT mq.relay() AS relayed;
SELECT * FROM ex_got('ex_h_all', 'ex_h_any');
SELECT dropped FROM mq.list_exchanges() WHERE exchange_name = 'ex_headers';

--
-- exchange to exchange, and to a topic
--
SELECT mq.create_exchange('ex_up', 'fanout');
SELECT mq.create_exchange('ex_down', 'direct');
SELECT mq.create_queue('ex_e2e');
SELECT mq.create_topic('ex_tdest', 2);
SELECT mq.create_group('ex_tdest', 'g', 'earliest');
SELECT mq.bind('ex_up', 'ex_down');
SELECT mq.bind('ex_up', 'ex_tdest');
SELECT mq.bind('ex_down', 'ex_e2e', 'k');
SELECT mq.publish('ex_up', '{"k": "k"}', key => 'k') AS eid_up \gset
SELECT mq.relay() AS relayed;
SELECT * FROM ex_got('ex_e2e');
SELECT key, payload, message_id = :'eid_up' AS is_event_id FROM mq.fetch('ex_tdest', 'g', 100);
SELECT mq.seek('ex_tdest', 'g', to_position => 'latest');

--
-- a cycle delivers at most once per final destination
--
SELECT mq.create_exchange('ex_c1', 'fanout');
SELECT mq.create_exchange('ex_c2', 'fanout');
SELECT mq.create_exchange('ex_self', 'fanout');
SELECT mq.create_queue(q) FROM unnest(ARRAY['ex_qcyc', 'ex_qcyc2', 'ex_qself']) q;
SELECT mq.bind('ex_c1', 'ex_c2');
SELECT mq.bind('ex_c2', 'ex_c1');
SELECT mq.bind('ex_c1', 'ex_qcyc');
SELECT mq.bind('ex_c2', 'ex_qcyc');
SELECT mq.bind('ex_c2', 'ex_qcyc2');
SELECT mq.bind('ex_c1', 'ex_tdest');
SELECT mq.bind('ex_c2', 'ex_tdest');
SELECT mq.bind('ex_self', 'ex_self');
SELECT mq.bind('ex_self', 'ex_qself');
SELECT ex_pub('ex_c1', 'cyc1'), ex_pub('ex_c2', 'cyc2'), ex_pub('ex_self', 'self');
SELECT mq.relay() AS relayed;
SELECT * FROM ex_got('ex_qcyc', 'ex_qcyc2', 'ex_qself');
SELECT key, count(*) AS records FROM mq.fetch('ex_tdest', 'g', 100) GROUP BY key ORDER BY key;

--
-- alternate exchange: what the exchange cannot route goes there, and is
-- not counted as dropped; an alternate exchange that cannot route either
-- drops it
--
SELECT mq.create_exchange('ex_ae', 'fanout');
SELECT mq.create_exchange('ex_main', 'direct', alternate_exchange => 'ex_ae');
SELECT mq.create_exchange('ex_empty', 'fanout');
SELECT mq.create_exchange('ex_main2', 'direct', 'ex_empty');
SELECT mq.create_queue(q) FROM unnest(ARRAY['ex_qmain', 'ex_qae']) q;
SELECT mq.bind('ex_main', 'ex_qmain', 'k');
SELECT mq.bind('ex_ae', 'ex_qae');
SELECT ex_pub('ex_main', 'k'), ex_pub('ex_main', 'other'), ex_pub('ex_main2', 'z');
SELECT mq.relay() AS relayed;
SELECT * FROM ex_got('ex_qmain', 'ex_qae');
SELECT exchange_name, type, alternate_exchange, dropped
FROM mq.list_exchanges() WHERE exchange_name IN ('ex_main', 'ex_ae') ORDER BY exchange_name;
SELECT sum(dropped) AS dropped FROM mq.list_exchanges() WHERE exchange_name IN ('ex_main2', 'ex_empty');

--
-- dropped: counted when relayed, not when published
--
SELECT mq.create_exchange('ex_drop', 'direct');
SELECT ex_pub('ex_drop', 'a'), ex_pub('ex_drop', 'b'), ex_pub('ex_drop', NULL);
SELECT dropped AS dropped_before_relay FROM mq.list_exchanges() WHERE exchange_name = 'ex_drop';
SELECT mq.relay() AS relayed;
SELECT dropped FROM mq.list_exchanges() WHERE exchange_name = 'ex_drop';
SELECT count(*) AS in_outbox FROM mq.outbox;

--
-- mandatory: an unroutable publish is an error in the caller's
-- transaction; a routable one is fine
--
SELECT d.dest, d.k, ex_mandatory(d.dest, d.k, d.h) AS result
FROM (VALUES ('ex_drop', 'a', NULL::jsonb),
             ('ex_direct', 'a', NULL),
             ('ex_direct', 'nomatch', NULL),
             ('ex_main', 'other', NULL),
             ('ex_main2', 'z', NULL),
             ('ex_headers', 'h1', '{"format": "pdf"}'),
             ('ex_headers', 'h2', '{"format": "zip"}'),
             ('ex_topic', 'q.r.s', NULL),
             ('ex_up', 'k', NULL),
             ('ex_empty', 'e', NULL),
             ('ex_qa', 'queue', NULL),
             ('ex_tdest', 'topic', NULL),
             ('ex_nowhere', 'x', NULL)) d(dest, k, h)
ORDER BY d.dest COLLATE "C", d.k COLLATE "C";
-- only the routable ones reached the outbox
SELECT aggregatetype AS dest, aggregateid AS key FROM mq.outbox
ORDER BY aggregatetype COLLATE "C", aggregateid COLLATE "C";
SELECT mq.relay() AS relayed;
SELECT * FROM ex_got('ex_qa', 'ex_qab', 'ex_qae', 'ex_h_any', 'ex_t2', 'ex_e2e');
SELECT mq.seek('ex_tdest', 'g', to_position => 'latest');
-- the error aborts the caller's transaction: its other writes go too
CREATE TABLE ex_biz (i integer);
BEGIN;
INSERT INTO ex_biz VALUES (1);
SELECT ex_pub('ex_direct', 'a');
SELECT ex_mandatory_raise('ex_drop', 'a');
SELECT count(*) FROM ex_biz;
ROLLBACK;
SELECT count(*) AS biz_rows FROM ex_biz;
SELECT count(*) AS in_outbox FROM mq.outbox;
SELECT mq.relay() AS relayed;
SELECT * FROM ex_got('ex_qa');
-- caught in a savepoint: the transaction goes on, without that outbox row
BEGIN;
INSERT INTO ex_biz VALUES (2);
SELECT ex_mandatory('ex_drop', 'a') AS result;
SELECT ex_mandatory('ex_direct', 'a') AS result;
SELECT aggregatetype AS dest, aggregateid AS key FROM mq.outbox;
COMMIT;
SELECT count(*) AS biz_rows FROM ex_biz;
SELECT mq.relay() AS relayed;
SELECT * FROM ex_got('ex_qa', 'ex_qab');
SELECT dropped FROM mq.list_exchanges() WHERE exchange_name = 'ex_drop';

--
-- unbind; dropping an exchange or a queue removes its bindings
--
SELECT mq.unbind('ex_direct', 'ex_qa', 'a') AS unbound;
SELECT mq.unbind('ex_direct', 'ex_qa', 'a') AS unbound_again;
SELECT mq.unbind('ex_direct', 'ex_qab', 'zzz') AS unbound_unknown_key;
SELECT mq.unbind('ex_fanout', 'ex_qf2', 'y') AS unbound;
SELECT mq.unbind('ex_fanout', 'ex_qf1') AS unbound_default_key;
SELECT ex_pub('ex_direct', 'a'), ex_pub('ex_fanout', 'f');
SELECT mq.relay() AS relayed;
SELECT * FROM ex_got('ex_qa', 'ex_qab', 'ex_qf1', 'ex_qf2');
SELECT mq.drop_exchange('ex_c2') AS dropped;
SELECT mq.drop_queue('ex_qb') AS dropped;
SELECT ex_pub('ex_c1', 'after_drop'), ex_pub('ex_direct', 'b');
SELECT mq.relay() AS relayed;
SELECT * FROM ex_got('ex_qcyc', 'ex_qcyc2', 'ex_qab');
SELECT exchange_name FROM mq.list_exchanges() WHERE exchange_name LIKE 'ex\_c%' ORDER BY exchange_name;

--
-- errors
--
-- bad type: 22023
SELECT mq.create_exchange('ex_bad', 'fancy');
SELECT mq.create_exchange('ex_bad', NULL);
-- a bad x-match: 22023
SELECT mq.bind('ex_headers', 'ex_h_all', arguments => jsonb_build_object('x-match', 'some', 'a', 'b'));
-- name taken by an exchange, a queue or a topic: 42710
SELECT mq.create_exchange('ex_direct', 'direct');
SELECT mq.create_exchange('ex_qa', 'direct');
SELECT mq.create_exchange('ex_tdest', 'direct');
SELECT mq.create_queue('ex_direct');
SELECT mq.create_topic('ex_direct');
-- unknown exchange, destination or alternate exchange: 42704
SELECT mq.bind('ex_nope', 'ex_qa', 'a');
SELECT mq.bind('ex_direct', 'ex_nope', 'a');
SELECT mq.create_exchange('ex_bad', 'direct', alternate_exchange => 'ex_nope');
-- bad names: 22004, 42602
SELECT mq.create_exchange(NULL, 'direct');
SELECT mq.create_exchange('ex bad', 'direct');
SELECT mq.drop_exchange('ex_nope') AS dropped;
SELECT exchange_name, type, alternate_exchange FROM mq.list_exchanges()
WHERE exchange_name LIKE 'ex\_%' ORDER BY exchange_name COLLATE "C";

--
-- clean up
--
SELECT count(*) FILTER (WHERE mq.drop_exchange(exchange_name)) AS exchanges_dropped
FROM mq.list_exchanges() WHERE exchange_name LIKE 'ex\_%';
SELECT count(*) FILTER (WHERE mq.drop_queue(queue_name)) AS queues_dropped
FROM mq.list_queues() WHERE queue_name LIKE 'ex\_%' AND queue_name NOT LIKE '%\_dlq';
SELECT mq.drop_topic('ex_tdest') AS dropped;
SELECT count(*) AS in_outbox FROM mq.outbox;
DROP TABLE ex_biz;
DROP FUNCTION ex_pub(text, text, jsonb), ex_got(text[]), ex_mandatory(text, text, jsonb), ex_mandatory_raise(text, text);
ALTER SYSTEM RESET mq.worker_enabled;
SELECT pg_reload_conf();
