--
-- routing: each exchange is visited once per message, and routes are
-- bounded at the door.
--
-- Final destinations and drop counts on small graphs (diamonds, cycles,
-- alternate exchanges), the rule of "routes nothing" (an exchange with a
-- matching binding routed the message, whatever that binding leads to),
-- diamonds of 16 and 30 levels (2^16 and 2^30 paths: one visit per
-- exchange, in well under statement_timeout), and the bound of 64
-- exchanges per route at mq.bind, mq.create_exchange, mq.unbind and
-- mq.drop_exchange (54000).
--
\set VERBOSITY terse

-- the destinations a message published now would reach, by name
CREATE FUNCTION rt_route(dest text, k text DEFAULT NULL, h jsonb DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(coalesce(q.queue_name, t.topic_name), ','
                               ORDER BY coalesce(q.queue_name, t.topic_name) COLLATE "C"), '')
      FROM mq._route(dest, k, h, false) r
      LEFT JOIN mq.queue q ON r.dest_kind = 'q' AND q.queue_id = r.dest_id
      LEFT JOIN mq.topic t ON r.dest_kind = 't' AND t.topic_id = r.dest_id
$$;
-- the exchanges with drops counted, and how many
CREATE FUNCTION rt_dropped(prefix text)
RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(exchange_name || '=' || dropped, ',' ORDER BY exchange_name COLLATE "C"), '')
      FROM mq.exchange WHERE exchange_name LIKE prefix || '%' AND dropped > 0
$$;
-- a diamond of n levels: p_x0 -> p_a0, p_b0 -> p_x1 -> ... -> p_xn, fanouts
CREATE FUNCTION rt_diamond(p text, n integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mq.create_exchange(p || '_x0', 'fanout');
    FOR i IN 0 .. n - 1 LOOP
        PERFORM mq.create_exchange(p || '_a' || i, 'fanout');
        PERFORM mq.create_exchange(p || '_b' || i, 'fanout');
        PERFORM mq.create_exchange(p || '_x' || (i + 1), 'fanout');
        PERFORM mq.bind(p || '_x' || i, p || '_a' || i);
        PERFORM mq.bind(p || '_x' || i, p || '_b' || i);
        PERFORM mq.bind(p || '_a' || i, p || '_x' || (i + 1));
        PERFORM mq.bind(p || '_b' || i, p || '_x' || (i + 1));
    END LOOP;
END;
$$;
CREATE FUNCTION rt_drop_exchanges(prefix text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer := 0;
    x text;
BEGIN
    -- from where routes start: each drop has no exchange in front of it
    FOR x IN SELECT exchange_name FROM mq.exchange WHERE exchange_name LIKE prefix || '%'
              ORDER BY exchange_id LOOP
        PERFORM mq.drop_exchange(x);
        n := n + 1;
    END LOOP;
    RETURN n;
END;
$$;

SELECT mq.create_queue(q) FROM unnest(ARRAY['rt_q1', 'rt_q2', 'rt_q3']) q;
SELECT mq.create_topic('rt_t');

--
-- a small diamond: each final destination once, nothing dropped
--
SELECT rt_diamond('rt_d', 2);
SELECT mq.bind('rt_d_x2', 'rt_q1');
SELECT mq.bind('rt_d_a1', 'rt_q2');
SELECT mq.bind('rt_d_b0', 'rt_t');
SELECT rt_route('rt_d_x0') AS from_x0, rt_route('rt_d_x1') AS from_x1, rt_route('rt_d_b1') AS from_b1;

--
-- cycles end; each destination once
--
SELECT mq.create_exchange(x, 'fanout') FROM unnest(ARRAY['rt_c1', 'rt_c2', 'rt_c3', 'rt_self']) x;
SELECT mq.bind('rt_c1', 'rt_c2'), mq.bind('rt_c2', 'rt_c3'), mq.bind('rt_c3', 'rt_c1');
SELECT mq.bind('rt_c2', 'rt_q1'), mq.bind('rt_c3', 'rt_q1'), mq.bind('rt_c3', 'rt_q3');
SELECT mq.bind('rt_self', 'rt_self'), mq.bind('rt_self', 'rt_q2');
SELECT rt_route('rt_c1') AS from_c1, rt_route('rt_c3') AS from_c3, rt_route('rt_self') AS from_self;

--
-- routes nothing: decided per exchange, by its own bindings.  A direct
-- exchange rt_r with a matching binding to rt_r_empty (no bindings) routed
-- the message: its alternate exchange is not used and it drops nothing;
-- rt_r_empty, which routes nothing and has no alternate, counts the drop.
-- A key without a match goes to rt_r's alternate exchange.
--
SELECT mq.create_exchange('rt_r_ae', 'fanout');
SELECT mq.create_exchange('rt_r_empty', 'fanout');
SELECT mq.create_exchange('rt_r', 'direct', alternate_exchange => 'rt_r_ae');
SELECT mq.bind('rt_r', 'rt_r_empty', 'to_empty');
SELECT mq.bind('rt_r', 'rt_q1', 'to_q1');
SELECT mq.bind('rt_r_ae', 'rt_q3');
SELECT rt_route('rt_r', 'to_empty') AS to_empty, rt_route('rt_r', 'to_q1') AS to_q1,
       rt_route('rt_r', 'other') AS other;
SELECT count(*) AS routed FROM mq._route('rt_r', 'to_empty', NULL, true);
SELECT rt_dropped('rt_r') AS dropped;
-- a binding that matches but leads only to an exchange already visited
-- (a cycle) routed the message too: no drop, no alternate
SELECT mq.create_exchange('rt_k_ae', 'fanout');
SELECT mq.create_exchange('rt_k1', 'direct');
SELECT mq.create_exchange('rt_k2', 'direct', alternate_exchange => 'rt_k_ae');
SELECT mq.bind('rt_k1', 'rt_k2', 'k'), mq.bind('rt_k2', 'rt_k1', 'k'), mq.bind('rt_k1', 'rt_q2', 'k');
SELECT mq.bind('rt_k_ae', 'rt_q3');
SELECT rt_route('rt_k1', 'k') AS k_from_k1, rt_route('rt_k2', 'k') AS k_from_k2,
       rt_route('rt_k2', 'j') AS j_from_k2, rt_route('rt_k1', 'j') AS j_from_k1;
SELECT count(*) AS routed FROM mq._route('rt_k1', 'j', NULL, true);
SELECT rt_dropped('rt_k') AS dropped;
-- an alternate exchange reached another way too is visited once: it
-- routes to rt_q3 once, and only the exchange without a match and without
-- an alternate drops
SELECT mq.create_exchange('rt_a_ae', 'direct');
SELECT mq.create_exchange('rt_a', 'fanout');
SELECT mq.create_exchange('rt_a_miss', 'direct', alternate_exchange => 'rt_a_ae');
SELECT mq.bind('rt_a', 'rt_a_miss'), mq.bind('rt_a', 'rt_a_ae');
SELECT mq.bind('rt_a_ae', 'rt_q3', 'hit');
SELECT rt_route('rt_a', 'hit') AS hit, rt_route('rt_a', 'miss') AS miss;
SELECT count(*) AS routed FROM mq._route('rt_a', 'miss', NULL, true);
SELECT rt_dropped('rt_a') AS dropped;
-- through the relay: the same destinations, each once
SELECT mq.purge_queue(q) >= 0 AS purged FROM unnest(ARRAY['rt_q1', 'rt_q2', 'rt_q3']) q;
SELECT mq.publish('rt_d_x0', '{"via": "diamond"}') IS NOT NULL AS published;
SELECT mq.publish('rt_c1', '{"via": "cycle"}') IS NOT NULL AS published;
SELECT mq.publish('rt_r', '{"via": "alternate"}', key => 'other') IS NOT NULL AS published;
SELECT mq.relay() >= 0 AS relayed;
SELECT q AS queue, m.payload->>'via' AS via, count(*) AS copies
  FROM unnest(ARRAY['rt_q1', 'rt_q2', 'rt_q3']) q, mq.poll(q, 10, wait => '5 seconds') m
 GROUP BY 1, 2 ORDER BY 1, 2;

--
-- diamonds of 16 levels (49 exchanges, 2^16 paths) and 30 levels (91
-- exchanges, 2^30 paths): one visit per exchange.  The far end rt_big_x16
-- has no bindings: it counts exactly one drop (a walk of every path counted
-- 2^16 there, and more upstream).
--
SELECT rt_diamond('rt_big', 16);
SELECT count(*) AS exchanges FROM mq.exchange WHERE exchange_name LIKE 'rt\_big\_%';
SET statement_timeout = '5s';
SELECT count(*) AS destinations FROM mq._route('rt_big_x0', NULL, NULL, true);
SELECT rt_dropped('rt_big') AS dropped;
SELECT mq.bind('rt_big_x16', 'rt_q1');
SELECT mq.bind('rt_big_a7', 'rt_q2');
SELECT rt_route('rt_big_x0') AS from_x0, rt_route('rt_big_b9') AS from_b9;
RESET statement_timeout;
SELECT rt_diamond('rt_huge', 30);
SELECT mq.bind('rt_huge_x30', 'rt_q3');
SET statement_timeout = '5s';
SELECT rt_route('rt_huge_x0') AS from_x0;
SELECT mq.publish('rt_huge_x0', '{"via": "huge"}') IS NOT NULL AS published;
SELECT mq.publish('rt_big_x0', '{"via": "big"}') IS NOT NULL AS published;
SELECT mq.relay() >= 0 AS relayed;
RESET statement_timeout;
SELECT q AS queue, m.payload->>'via' AS via, count(*) AS copies
  FROM unnest(ARRAY['rt_q1', 'rt_q2', 'rt_q3']) q, mq.poll(q, 10, wait => '5 seconds') m
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT rt_drop_exchanges('rt_huge_') AS dropped, rt_drop_exchanges('rt_big_') AS dropped;

--
-- the bound: a route passes through at most 64 exchanges (the first one
-- included, along the shortest way).  A chain of 64 is fine; binding a
-- 65th is refused, and so is an alternate exchange in front of it.
--
DO $$
BEGIN
    PERFORM mq.create_exchange('rt_ch1', 'fanout');
    FOR i IN 2 .. 64 LOOP
        PERFORM mq.create_exchange('rt_ch' || i, 'fanout');
        PERFORM mq.bind('rt_ch' || (i - 1), 'rt_ch' || i);
    END LOOP;
END;
$$;
SELECT mq.create_exchange('rt_ch65', 'fanout');
SELECT mq.bind('rt_ch64', 'rt_ch65');
SELECT mq.bind('rt_ch64', 'rt_q1');
SELECT rt_route('rt_ch1') AS from_ch1;
SELECT count(*) AS bindings FROM mq.binding b JOIN mq.exchange x USING (exchange_id)
 WHERE x.exchange_name = 'rt_ch64';
SELECT mq.create_exchange('rt_ch0', 'fanout', alternate_exchange => 'rt_ch1');
SELECT count(*) AS created FROM mq.exchange WHERE exchange_name = 'rt_ch0';
-- the error, with its detail and hint
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT mq.bind('rt_ch64', 'rt_ch65');
\set SHOW_CONTEXT errors
\set VERBOSITY terse
-- a shortcut keeps a route short; removing it (unbind, or dropping the
-- exchange it goes through) would make it 65 long and is refused too
SELECT mq.create_exchange('rt_s', 'fanout');
SELECT mq.create_exchange('rt_s_via', 'fanout');
SELECT mq.bind('rt_s', 'rt_s_via'), mq.bind('rt_s_via', 'rt_ch64');
SELECT mq.bind('rt_s', 'rt_ch1');
SELECT mq.unbind('rt_s_via', 'rt_ch64');
SELECT mq.drop_exchange('rt_s_via');
SELECT mq.unbind('rt_s', 'rt_ch1') AS unbound;
SELECT mq.drop_exchange('rt_s_via') AS dropped;
-- a queue at the end is no exchange: it does not count
SELECT mq.bind('rt_ch64', 'rt_q2');

--
-- a graph deeper than the bound, from before it (a database upgraded from
-- 0.1.0, written here into the catalog directly): 1,000 exchanges in a
-- chain, routed without recursion
--
DO $$
BEGIN
    PERFORM mq.create_exchange('rt_old' || i, 'fanout') FROM generate_series(0, 1000) i;
    INSERT INTO mq.binding (exchange_id, dest_kind, dest_id, binding_key)
    SELECT a.exchange_id, 'x', b.exchange_id, '#'
      FROM generate_series(1, 1000) i
      JOIN mq.exchange a ON a.exchange_name = 'rt_old' || (i - 1)
      JOIN mq.exchange b ON b.exchange_name = 'rt_old' || i;
    INSERT INTO mq.binding (exchange_id, dest_kind, dest_id, binding_key)
    SELECT x.exchange_id, 'q', q.queue_id, '#'
      FROM mq.exchange x, mq.queue q WHERE x.exchange_name = 'rt_old1000' AND q.queue_name = 'rt_q3';
END;
$$;
SELECT rt_route('rt_old0') AS from_old0;

--
-- clean up
--
SELECT rt_drop_exchanges('rt_old') AS dropped;
SELECT rt_drop_exchanges('rt_s') AS dropped;
SELECT rt_drop_exchanges('rt_') AS dropped;
SELECT mq.drop_topic('rt_t');
SELECT mq.drop_queue(q) FROM unnest(ARRAY['rt_q1', 'rt_q2', 'rt_q3']) q;
DROP FUNCTION rt_route(text, text, jsonb), rt_dropped(text), rt_diamond(text, integer),
              rt_drop_exchanges(text);
