-- test/ops/snapshot.sql: everything mq holds in this database, as sorted
-- text lines that do not depend on when or where they were written (no
-- msg_ids or lease times, which a relay pass in another database assigns
-- differently; states instead).  Used to compare a database with its
-- restored copy and an upgraded one with what it held before.
\pset format unaligned
\pset tuples_only on
SELECT line FROM (
    SELECT format('queue %s vt=%s attempts=%s retry=%s/%s dlq=%s ttl=%s dedup=%s', q.queue_name,
                  q.visibility_timeout, q.max_attempts, q.retry_delay, q.retry_delay_max,
                  d.queue_name, q.message_ttl, q.dedup_window) AS line
      FROM mq.queue q LEFT JOIN mq.queue d ON d.queue_id = q.dead_letter_queue_id
    UNION ALL
    SELECT format('msg %s %s %s attempt=%s state=%s err=%s deaths=%s', q.queue_name,
                  m.payload, m.headers, m.attempt,
                  CASE WHEN m.vt <= now() THEN 'ready'
                       WHEN m.attempt > 0 THEN 'in_flight'
                       ELSE 'delayed' END,
                  m.last_error, (SELECT jsonb_agg(d - 'time') FROM jsonb_array_elements(m.deaths) d))
      FROM mq.queue_message m JOIN mq.queue q USING (queue_id)
    UNION ALL
    SELECT format('dedup %s %s', q.queue_name, d.dedup_key)
      FROM mq.dedup d JOIN mq.queue q USING (queue_id)
    UNION ALL
    SELECT format('inbox %s %s', p.consumer, p.message_key) FROM mq.processed p WHERE p.consumer <> 'bulk'
    UNION ALL
    SELECT format('inbox bulk %s', count(*)) FROM mq.processed p WHERE p.consumer = 'bulk'
    UNION ALL
    SELECT format('topic %s %s %s', topic_name, partitions, retention) FROM mq.topic
    UNION ALL
    SELECT format('partition %s %s next=%s', t.topic_name, p.partition, p.next_offset)
      FROM mq.topic_partition p JOIN mq.topic t USING (topic_id)
    UNION ALL
    SELECT format('segments %s %s', t.topic_name, count(s.seg))
      FROM mq.topic t LEFT JOIN mq.segment s USING (topic_id) GROUP BY t.topic_name
    UNION ALL
    SELECT format('record %s %s/%s key=%s %s %s id=%s', t.topic_name, r.partition, r."offset",
                  r.key, r.payload, r.headers, r.message_id)
      FROM mq.topic_record r JOIN mq.topic t USING (topic_id)
    UNION ALL
    SELECT format('group %s %s %s', t.topic_name, g.group_name, g.session_timeout)
      FROM mq.consumer_group g JOIN mq.topic t USING (topic_id)
    UNION ALL
    SELECT format('offset %s %s %s committed=%s', t.topic_name, g.group_name, o.partition, o.committed_offset)
      FROM mq.group_offset o JOIN mq.consumer_group g USING (group_id) JOIN mq.topic t USING (topic_id)
    UNION ALL
    SELECT format('exchange %s %s alt=%s', x.exchange_name, x.type, a.exchange_name)
      FROM mq.exchange x LEFT JOIN mq.exchange a ON a.exchange_id = x.alternate_exchange_id
    UNION ALL
    SELECT format('binding %s -> %s %s %s', x.exchange_name,
                  coalesce(q.queue_name, t.topic_name, y.exchange_name), b.binding_key, b.arguments)
      FROM mq.binding b JOIN mq.exchange x USING (exchange_id)
      LEFT JOIN mq.queue q ON b.dest_kind = 'q' AND q.queue_id = b.dest_id
      LEFT JOIN mq.topic t ON b.dest_kind = 't' AND t.topic_id = b.dest_id
      LEFT JOIN mq.exchange y ON b.dest_kind = 'x' AND y.exchange_id = b.dest_id
    UNION ALL
    SELECT format('outbox %s key=%s %s %s %s id=%s', o.aggregatetype, o.aggregateid, o.type,
                  o.payload, o.headers, o.id)
      FROM mq.outbox o
    UNION ALL
    SELECT format('acl %s %s', c.oid::regclass, c.relacl)
      FROM pg_class c WHERE c.relnamespace = 'mq'::regnamespace AND c.relacl IS NOT NULL
    UNION ALL
    SELECT format('acl %s %s', p.oid::regprocedure, p.proacl)
      FROM pg_proc p WHERE p.pronamespace = 'mq'::regnamespace AND p.proacl IS NOT NULL
) s ORDER BY line COLLATE "C";
